package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	client "github.com/gitstate/gitstate/clients/go"
)

// putOptions are the options of "gitstate put".
type putOptions struct {
	g       *globalOptions
	ifMatch string
	create  bool
	message string
}

func newPutCmd(g *globalOptions) *cobra.Command {
	o := &putOptions{g: g}
	cmd := &cobra.Command{
		Use:   "put KEY VALUE|-",
		Short: "Set a key's value in one commit",
		Long: `Set a key's value in one commit. The value is the second argument, or
standard input when it is "-". Writing the value the key already has makes no
commit ("unchanged").

With --txn (or $GITSTATE_TXN) the commit is made on the transaction's branch
and main is untouched until "gitstate txn commit"; the output names the
transaction and the branch's new head instead of a revision.`,
		Example: `  gitstate put apps/web/replicas 3
  gitstate put apps/web/deployment.yaml - < deployment.yaml
  gitstate put apps/web/replicas 4 --if-match "$(gitstate get apps/web/replicas -o json | jq -r .etag)"`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: o.g.runE(o.run),
	}
	f := cmd.Flags()
	f.StringVar(&o.ifMatch, "if-match", "", `write only if the key's etag is this one ("*": only if it exists)`)
	f.BoolVar(&o.create, "create", false, "write only if the key does not exist (If-None-Match: *)")
	f.StringVarP(&o.message, "message", "m", "", "commit message")
	return cmd
}

func (o *putOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	if o.create && o.ifMatch != "" {
		return usageErrorf("--create and --if-match cannot be used together")
	}
	value := []byte(args[1])
	if args[1] == "-" {
		if value, err = io.ReadAll(cmd.InOrStdin()); err != nil {
			return fmt.Errorf("read value from stdin: %w", err)
		}
	}
	kv, err := o.g.keyValues()
	if err != nil {
		return err
	}
	res, err := kv.Put(cmd.Context(), args[0], value, &client.PutOptions{IfMatch: o.ifMatch, Create: o.create, Message: o.message})
	if err != nil {
		return err
	}
	return p.write(res)
}
