package main

import (
	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// getOptions are the options of "gitstate get".
type getOptions struct {
	g   *globalOptions
	rev string
}

func newGetCmd(g *globalOptions) *cobra.Command {
	o := &getOptions{g: g}
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Print a key's value",
		Long: `Print a key's value, as raw bytes (-o text), or with its etag and revisions
(-o json; the value is "value" when it is UTF-8, else "value_base64").`,
		Example: `  gitstate get apps/web/deployment.yaml
  gitstate get apps/web/deployment.yaml --rev 12 > old.yaml`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: runE(o.run),
	}
	cmd.Flags().StringVar(&o.rev, "rev", "", "read at this revision (number or commit id)")
	return cmd
}

func (o *getOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	kv, err := o.g.repoClient()
	if err != nil {
		return err
	}
	v, err := kv.Get(cmd.Context(), args[0], &client.GetOptions{Rev: wire.Rev(o.rev)})
	if err != nil {
		return err
	}
	return p.value(v)
}
