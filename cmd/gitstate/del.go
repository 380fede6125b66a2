package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate"
	client "github.com/gitstate/gitstate/clients/go"
)

// delOptions are the options of "gitstate del".
type delOptions struct {
	g       *globalOptions
	prefix  bool
	ifMatch string
	message string
}

func newDelCmd(g *globalOptions) *cobra.Command {
	o := &delOptions{g: g}
	cmd := &cobra.Command{
		Use:     "del KEY",
		Aliases: []string{"delete", "rm"},
		Short:   "Delete a key, or every key under it, in one commit",
		Long: `Delete a key, or with --prefix every key under it, in one commit. With --txn
(or $GITSTATE_TXN) the commit is made on the transaction's branch.`,
		Example: `  gitstate del apps/web/replicas
  gitstate del apps/web --prefix    # every key under apps/web/`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: o.g.runE(o.run),
	}
	f := cmd.Flags()
	f.BoolVar(&o.prefix, "prefix", false, "delete every key under KEY/")
	f.StringVar(&o.ifMatch, "if-match", "", "delete only if the key's etag is this one")
	f.StringVarP(&o.message, "message", "m", "", "commit message")
	return cmd
}

func (o *delOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	kv, err := o.g.keyValues()
	if err != nil {
		return err
	}
	res, err := kv.Delete(cmd.Context(), args[0], &client.DeleteOptions{Prefix: o.prefix, IfMatch: o.ifMatch, Message: o.message})
	if err != nil {
		return o.directoryHint(cmd, kv, args[0], err)
	}
	return p.deleted(res)
}

// directoryHint returns err, the error of deleting key, with a hint when key
// does not exist but keys exist under key/: the caller meant the directory,
// which --prefix deletes. The exit status stays not found's.
func (o *delOptions) directoryHint(cmd *cobra.Command, kv keyValues, key string, err error) error {
	if o.prefix || !errors.Is(err, gitstate.ErrKeyNotFound) {
		return err
	}
	l, lerr := kv.ListAll(cmd.Context(), &client.ListOptions{Prefix: key + "/", Limit: 1}, 1)
	if lerr != nil || len(l.Items) == 0 {
		return err
	}
	return &exitErr{code: exitNotFound, err: err,
		hint: fmt.Sprintf("%s is a directory; use --prefix to delete the keys under it", key)}
}
