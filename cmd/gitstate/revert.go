package main

import (
	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// revertOptions are the options of "gitstate revert".
type revertOptions struct {
	g       *globalOptions
	force   bool
	message string
}

func newRevertCmd(g *globalOptions) *cobra.Command {
	o := &revertOptions{g: g}
	cmd := &cobra.Command{
		Use:   "revert REV",
		Short: "Undo one revision in a new commit",
		Long: `Make a new commit that undoes revision REV (a number or a commit id). When
keys REV changed have changed since, the revert is refused (exit status 4)
naming them, unless --force.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: o.g.runE(o.run),
	}
	f := cmd.Flags()
	f.BoolVar(&o.force, "force", false, "revert even keys that changed since REV")
	f.StringVarP(&o.message, "message", "m", "", "commit message")
	return cmd
}

func (o *revertOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	kv, err := o.g.repoClient()
	if err != nil {
		return err
	}
	res, err := kv.Revert(cmd.Context(), wire.Rev(args[0]), &client.RevertOptions{Force: o.force, Message: o.message})
	if err != nil {
		return err
	}
	return p.commit(res)
}
