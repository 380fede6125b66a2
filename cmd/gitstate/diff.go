package main

import (
	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// diffOptions are the options of "gitstate diff".
type diffOptions struct {
	g      *globalOptions
	prefix string
	patch  bool
}

func newDiffCmd(g *globalOptions) *cobra.Command {
	o := &diffOptions{g: g}
	cmd := &cobra.Command{
		Use:   "diff FROM [TO]",
		Short: "Show the keys that differ between two revisions",
		Long: `Show the keys that differ between revisions FROM and TO (the head when
omitted), as "A", "M" or "D" and the key, like git diff --name-status; with
--patch, a unified diff for each text value. Revision 0 is the empty state
before the first commit.`,
		Example: `  gitstate diff 12
  gitstate diff 12 15 --prefix apps/web/ --patch`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: o.g.runE(o.run),
	}
	f := cmd.Flags()
	f.StringVar(&o.prefix, "prefix", "", "only keys under this prefix")
	f.BoolVar(&o.patch, "patch", false, "show a unified diff of each text value")
	return cmd
}

func (o *diffOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	kv, err := o.g.repoClient()
	if err != nil {
		return err
	}
	var to wire.Rev
	if len(args) == 2 {
		to = wire.Rev(args[1])
	}
	res, err := kv.Diff(cmd.Context(), wire.Rev(args[0]), to, &client.DiffOptions{Prefix: o.prefix, Patch: o.patch})
	if err != nil {
		return err
	}
	return p.diff(res)
}
