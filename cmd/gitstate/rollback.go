package main

import (
	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// rollbackOptions are the options of "gitstate rollback".
type rollbackOptions struct {
	g       *globalOptions
	prefix  string
	message string
}

func newRollbackCmd(g *globalOptions) *cobra.Command {
	o := &rollbackOptions{g: g}
	cmd := &cobra.Command{
		Use:   "rollback REV",
		Short: "Set the state back to a past revision in a new commit",
		Long: `Make a new commit that sets every key (under --prefix) back to what it was at
revision REV: keys changed since get their old values, keys added since are
deleted, keys deleted since come back. History is kept; nothing is rewritten.`,
		Example: `  gitstate rollback 12
  gitstate rollback 12 --prefix apps/web/`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: o.g.runE(o.run),
	}
	f := cmd.Flags()
	f.StringVar(&o.prefix, "prefix", "", "roll back only the keys under this prefix")
	f.StringVarP(&o.message, "message", "m", "", "commit message")
	return cmd
}

func (o *rollbackOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	kv, err := o.g.repoClient()
	if err != nil {
		return err
	}
	res, err := kv.Rollback(cmd.Context(), wire.Rev(args[0]), &client.RollbackOptions{Prefix: o.prefix, Message: o.message})
	if err != nil {
		return err
	}
	return p.commit(res)
}
