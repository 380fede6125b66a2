package main

import (
	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// lsOptions are the options of "gitstate ls".
type lsOptions struct {
	g        *globalOptions
	rev      string
	values   bool
	limit    int
	after    string
	pageSize int
}

func newLsCmd(g *globalOptions) *cobra.Command {
	o := &lsOptions{g: g}
	cmd := &cobra.Command{
		Use:     "ls [PREFIX]",
		Aliases: []string{"list"},
		Short:   "List keys in key order",
		Long: `List the keys that start with PREFIX (every key when it is omitted), in key
order. The listing follows the server's pages, all read at the revision of the
first one, so it is one consistent snapshot even while others write.

With --limit the listing stops after that many keys; with -o json its "next"
is then the --after that continues it.

With --txn (or $GITSTATE_TXN) the transaction's keys are listed at its head:
its own writes over its base. A transaction has no revisions: --rev is
refused there, and each page is read at the head when it is read.`,
		Example: `  gitstate ls apps/web/
  gitstate ls --values --rev 12
  gitstate ls -o json | jq -r '.items[].key'`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: o.g.runE(o.run),
	}
	f := cmd.Flags()
	f.StringVar(&o.rev, "rev", "", "list at this revision (number or commit id)")
	f.BoolVar(&o.values, "values", false, "print each key's value too")
	f.IntVar(&o.limit, "limit", 0, "list at most this many keys (0: all)")
	f.StringVar(&o.after, "after", "", "list the keys after this one")
	f.IntVar(&o.pageSize, "page-size", 0, "keys per request (0: the server's default)")
	return cmd
}

func (o *lsOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	if o.limit < 0 || o.pageSize < 0 {
		return usageErrorf("--limit and --page-size must not be negative")
	}
	if o.rev != "" && o.g.txn != "" {
		return usageErrorf("--rev lists main's history: transaction %s is listed at its head (give --txn= for main)", o.g.txn)
	}
	kv, err := o.g.keyValues()
	if err != nil {
		return err
	}
	opts := &client.ListOptions{After: o.after, Limit: o.pageSize, Values: o.values, Rev: wire.Rev(o.rev)}
	if len(args) == 1 {
		opts.Prefix = args[0]
	}
	res, err := kv.ListAll(cmd.Context(), opts, o.limit)
	if err != nil {
		return err
	}
	return p.list(res)
}
