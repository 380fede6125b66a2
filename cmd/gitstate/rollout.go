package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
)

// rolloutOptions are the options of "gitstate rollout".
type rolloutOptions struct{ g *globalOptions }

func newRolloutCmd(g *globalOptions) *cobra.Command {
	o := &rolloutOptions{g: g}
	return &cobra.Command{
		Use:   "rollout REV",
		Short: "Show which reconcilers have applied a revision",
		Long: `Answer "is the fleet converged on revision REV?": which reconcilers have
applied REV (a number or a commit id) or a later revision, and which not yet,
with their state, lag and staleness. -o json has "converged" for scripts.`,
		Example: `  gitstate rollout 42
  gitstate rollout 42 -o json | jq -e .converged`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: g.runE(o.run),
	}
}

func (o *rolloutOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	repo, err := o.g.repoClient()
	if err != nil {
		return err
	}
	r, err := repo.Rollout(cmd.Context(), wire.Rev(args[0]))
	if err != nil {
		return err
	}
	return p.rollout(r)
}

// rollout prints a summary line, then a reconciler a line, pending ones
// first.
func (p *textPrinter) rollout(r *wire.Rollout) error {
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	state := "converged"
	if !r.Converged {
		state = fmt.Sprintf("not converged: %d of %d reconcilers pending", len(r.Pending), len(r.Pending)+len(r.Applied))
	}
	commit := ""
	if r.Commit != "" {
		commit = " (" + shortID(r.Commit) + ")"
	}
	fmt.Fprintf(tw, "revision %d%s, head %d: %s\n", r.Revision, commit, r.Head, state)
	if len(r.Pending)+len(r.Applied) == 0 {
		return tw.Flush()
	}
	fmt.Fprintln(tw, "RECONCILER\tROLLOUT\tSTATE\tAPPLIED\tLAG\tLAST REPORT\tSTALE")
	for _, set := range []struct {
		name string
		rs   []wire.Reconciler
	}{{"pending", r.Pending}, {"applied", r.Applied}} {
		for _, rc := range set.rs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", rc.Name, set.name, rc.State, rc.AppliedRevision,
				lagText(rc), timeText(rc.LastReport), yesNo(rc.Stale))
		}
	}
	return tw.Flush()
}
