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
(-o json; the value is "value" when it is UTF-8, else "value_base64").

With --txn (or $GITSTATE_TXN) the value is read at the transaction's head: its
own writes over its base. A transaction has no revisions, so --rev is refused
there, and -o json gives revision 0 and the head's commit.`,
		Example: `  gitstate get apps/web/deployment.yaml
  gitstate get apps/web/deployment.yaml --rev 12 > old.yaml
  GITSTATE_TXN=k3v7q2mxa9bd gitstate get apps/web/deployment.yaml`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: o.g.runE(o.run),
	}
	cmd.Flags().StringVar(&o.rev, "rev", "", "read at this revision (number or commit id)")
	return cmd
}

func (o *getOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	if o.rev != "" && o.g.txn != "" {
		return usageErrorf("--rev reads main's history: transaction %s is read at its head (give --txn= for main)", o.g.txn)
	}
	kv, err := o.g.keyValues()
	if err != nil {
		return err
	}
	v, err := kv.Get(cmd.Context(), args[0], &client.GetOptions{Rev: wire.Rev(o.rev)})
	if err != nil {
		return err
	}
	return p.value(v)
}
