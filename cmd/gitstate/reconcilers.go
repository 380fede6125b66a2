package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
)

// newReconcilersCmd is "gitstate reconcilers": what each reconciler has
// applied, and forgetting one.
func newReconcilersCmd(g *globalOptions) *cobra.Command {
	o := &reconcilersLsOptions{g: g}
	cmd := &cobra.Command{
		Use:   "reconcilers",
		Short: "List reconcilers: applied revision, lag, staleness",
		Long: `List the reconcilers that report their status to the repo: their last state
and revision, the newest revision they applied, how far that is behind main's
head (in revisions, and in time since the first revision they lack was
committed), when they last reported, and whether they are stale (silent for
more than twice the interval they declared).

"gitstate reconcilers rm NAME" forgets a retired reconciler (administrators),
so that it no longer holds a rollout back.`,
		Example: `  gitstate reconcilers
  gitstate reconcilers -o json | jq '.reconcilers[] | select(.stale)'
  gitstate reconcilers rm old-cluster`,
		Args: usageArgs(cobra.NoArgs),
		RunE: g.runE(o.run),
	}
	cmd.AddCommand(newReconcilersLsCmd(g), newReconcilersRmCmd(g))
	return cmd
}

// reconcilersLsOptions are the options of "gitstate reconcilers [ls]".
type reconcilersLsOptions struct{ g *globalOptions }

func newReconcilersLsCmd(g *globalOptions) *cobra.Command {
	o := &reconcilersLsOptions{g: g}
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List reconcilers (the default)",
		Args:    usageArgs(cobra.NoArgs),
		RunE:    g.runE(o.run),
	}
}

func (o *reconcilersLsOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	repo, err := o.g.repoClient()
	if err != nil {
		return err
	}
	l, err := repo.Reconcilers(cmd.Context())
	if err != nil {
		return err
	}
	return p.reconcilers(l)
}

// reconcilersRmOptions are the options of "gitstate reconcilers rm".
type reconcilersRmOptions struct{ g *globalOptions }

func newReconcilersRmCmd(g *globalOptions) *cobra.Command {
	o := &reconcilersRmOptions{g: g}
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"delete"},
		Short:   "Forget a retired reconciler (administrators)",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE:    g.runE(o.run),
	}
}

func (o *reconcilersRmOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	repo, err := o.g.repoClient()
	if err != nil {
		return err
	}
	if err := repo.DeleteReconciler(cmd.Context(), args[0]); err != nil {
		return err
	}
	return p.reconcilerDeleted(args[0])
}

// reconcilers prints main's head, then a reconciler a line.
func (p *textPrinter) reconcilers(l *wire.ReconcilerList) error {
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "head: revision %d\n", l.Revision)
	fmt.Fprintln(tw, "NAME\tSTATE\tREVISION\tAPPLIED\tLAG\tLAST REPORT\tSTALE")
	for _, r := range l.Reconcilers {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", r.Name, r.State, r.Revision, r.AppliedRevision,
			lagText(r), timeText(r.LastReport), yesNo(r.Stale))
	}
	return tw.Flush()
}

func (p *textPrinter) reconcilerDeleted(name string) error {
	return p.printf("deleted reconciler %s\n", name)
}

// lagText is a reconciler's lag: "0", or "3 (1m5s)".
func lagText(r wire.Reconciler) string {
	if r.LagRevisions == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", r.LagRevisions, time.Duration(r.LagSeconds*float64(time.Second)).Round(time.Second))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
