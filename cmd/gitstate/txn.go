package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// newTxnCmd is "gitstate txn": the life of a transaction.
func newTxnCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "txn",
		Aliases: []string{"transaction"},
		Short:   "Begin, preview, approve, commit or abort transactions",
		Long: `A transaction is a provisional change on a branch of main (txn/<id>): its
writes are invisible on main until it is committed, in one merge commit, or
dropped when it is aborted or expires.

Begin one, and make get, put, del and ls act inside it with --txn or
$GITSTATE_TXN:

  export GITSTATE_TXN=$(gitstate txn begin -m "scale web")
  gitstate put apps/web/replicas 5      # a commit on the transaction's branch
  gitstate get apps/web/replicas        # 5: its own writes over its base
  gitstate txn diff --patch             # the preview
  gitstate txn commit                   # one merge commit on main
  unset GITSTATE_TXN

The other txn commands take the transaction's id as their argument, or
default to the one --txn or $GITSTATE_TXN names. Commands that work on main
only (log, diff, revert, rollback, watch, rollout) refuse to run while a
transaction is named, so that nothing meant for the transaction lands on main:
give --txn= to run them on main. The others (repo, token, webhook,
reconcilers) ignore it.

A transaction touching a protected prefix of the repo's policy
(.gitstate/policy.yaml) commits only with enough valid approvals by someone
else ("gitstate txn approve") and the "ok" reports it asks for; a write after
an approval voids it. Committing fails with exit status 4 when main changed a
key the transaction changes, to another value, since its base: the keys are
named; "gitstate txn show" lists them as conflicts.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTxnBeginCmd(g), newTxnLsCmd(g), newTxnShowCmd(g), newTxnDiffCmd(g), newTxnApproveCmd(g),
		newTxnReportCmd(g), newTxnCommitCmd(g), newTxnRebaseCmd(g), newTxnAbortCmd(g))
	return cmd
}

// txnBeginOptions are the options of "gitstate txn begin".
type txnBeginOptions struct {
	g       *globalOptions
	message string
	ttl     time.Duration
	base    string
}

func newTxnBeginCmd(g *globalOptions) *cobra.Command {
	o := &txnBeginOptions{g: g}
	cmd := &cobra.Command{
		Use:   "begin",
		Short: "Open a transaction and print its id",
		Long: `Open a transaction on main's head (or --base) and print its id alone on
stdout, for $(...); a note goes to stderr. You become its author: only you or
an administrator may write in it, commit, rebase or abort it.`,
		Example: `  export GITSTATE_TXN=$(gitstate txn begin -m "scale web" --ttl 4h)
  gitstate txn begin --base 41 -o json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: g.runE(o.run),
	}
	f := cmd.Flags()
	f.StringVarP(&o.message, "message", "m", "", "what the change is for: the message of its merge commit")
	f.DurationVar(&o.ttl, "ttl", 0, "how long it stays open before it expires (default: the server's, 24h)")
	f.StringVar(&o.base, "base", "", "the revision of main to start from (default: the head)")
	return cmd
}

func (o *txnBeginOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	if cmd.Flags().Changed("ttl") && o.ttl <= 0 {
		// 0 would be sent as no ttl, the server's default: refuse it as the
		// server refuses "0s".
		return usageErrorf("--ttl must be positive (from 1s to the server's maximum); omit it for the server's default")
	}
	repo, err := o.g.repoClient()
	if err != nil {
		return err
	}
	t, err := repo.BeginTxn(cmd.Context(), &client.BeginTxnOptions{Message: o.message, TTL: o.ttl, Base: wire.Rev(o.base)})
	if err != nil {
		return err
	}
	if err := p.txnBegun(t); err != nil {
		return err
	}
	if o.g.output == "text" {
		fmt.Fprintf(cmd.ErrOrStderr(), "opened transaction %s on revision %d of %s, open until %s; work in it with:\n  export GITSTATE_TXN=%s\n",
			t.ID, t.BaseRevision, repo.Name(), timeText(t.ExpiresAt), t.ID)
	}
	return nil
}

// txnLsOptions are the options of "gitstate txn ls".
type txnLsOptions struct {
	g      *globalOptions
	status string
	author string
}

func newTxnLsCmd(g *globalOptions) *cobra.Command {
	o := &txnLsOptions{g: g}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List transactions, newest first",
		Example: `  gitstate txn ls --status open
  gitstate txn ls --author alice -o json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: g.runE(o.run),
	}
	f := cmd.Flags()
	f.StringVar(&o.status, "status", "", "only transactions in this state: open, committed, aborted or expired")
	f.StringVar(&o.author, "author", "", "only transactions this principal opened")
	return cmd
}

func (o *txnLsOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	switch o.status {
	case "", client.TxnOpen, client.TxnCommitted, client.TxnAborted, client.TxnExpired:
	default:
		return usageErrorf("--status must be open, committed, aborted or expired, not %q", o.status)
	}
	repo, err := o.g.repoClient()
	if err != nil {
		return err
	}
	l, err := repo.ListTxns(cmd.Context(), &client.ListTxnsOptions{Status: o.status, Author: o.author})
	if err != nil {
		return err
	}
	return p.txns(l)
}

// txnShowOptions are the options of "gitstate txn show".
type txnShowOptions struct{ g *globalOptions }

func newTxnShowCmd(g *globalOptions) *cobra.Command {
	o := &txnShowOptions{g: g}
	return &cobra.Command{
		Use:   "show [ID]",
		Short: "Show a transaction: status, keys, conflicts, approvals, reports",
		Long: `Show a transaction: its status, author, base and head, the keys it changes,
its conflicts with main (keys main changed since its base, to other values:
committing fails until they are resolved), its approvals (valid, or voided by
a later write), the reports of dry-runs, and what the repo's policy requires
before it may commit.`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: g.runE(o.run),
	}
}

func (o *txnShowOptions) run(cmd *cobra.Command, args []string) error {
	p, repo, id, err := o.g.txnCommand(cmd, args)
	if err != nil {
		return err
	}
	t, err := repo.GetTxn(cmd.Context(), id)
	if err != nil {
		return err
	}
	return p.txn(t)
}

// txnDiffOptions are the options of "gitstate txn diff".
type txnDiffOptions struct {
	g       *globalOptions
	against string
	patch   bool
}

func newTxnDiffCmd(g *globalOptions) *cobra.Command {
	o := &txnDiffOptions{g: g}
	cmd := &cobra.Command{
		Use:   "diff [ID]",
		Short: "Preview what a transaction changes",
		Long: `Show the keys a transaction changes, as "A", "M" or "D" and the key: against
its base (the default), or with --against head against main as it is now,
which is what committing it would change. --patch shows a unified diff of
each text value.`,
		Example: `  gitstate txn diff --patch
  gitstate txn diff k3v7q2mxa9bd --against head`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: g.runE(o.run),
	}
	f := cmd.Flags()
	f.StringVar(&o.against, "against", "base", "base (the transaction's base revision) or head (main now)")
	f.BoolVar(&o.patch, "patch", false, "show a unified diff of each text value")
	return cmd
}

func (o *txnDiffOptions) run(cmd *cobra.Command, args []string) error {
	if o.against != "base" && o.against != "head" {
		return usageErrorf("--against must be base or head, not %q", o.against)
	}
	p, repo, id, err := o.g.txnCommand(cmd, args)
	if err != nil {
		return err
	}
	d, err := repo.TxnDiff(cmd.Context(), id, &client.TxnDiffOptions{AgainstHead: o.against == "head", Patch: o.patch})
	if err != nil {
		return err
	}
	return p.txnDiff(d)
}

// txnApproveOptions are the options of "gitstate txn approve".
type txnApproveOptions struct {
	g       *globalOptions
	comment string
}

func newTxnApproveCmd(g *globalOptions) *cobra.Command {
	o := &txnApproveOptions{g: g}
	cmd := &cobra.Command{
		Use:   "approve [ID]",
		Short: "Approve a transaction's current head (not your own)",
		Long: `Approve a transaction as it is now. The approval holds while its head is the
one approved: a later write, or a rebase, voids it. Its author cannot approve
it. Needs a token with scope approve.`,
		Example: `  gitstate txn approve k3v7q2mxa9bd -m "checked the plan"`,
		Args:    usageArgs(cobra.MaximumNArgs(1)),
		RunE:    g.runE(o.run),
	}
	cmd.Flags().StringVarP(&o.comment, "message", "m", "", "a comment on the approval")
	return cmd
}

func (o *txnApproveOptions) run(cmd *cobra.Command, args []string) error {
	p, repo, id, err := o.g.txnCommand(cmd, args)
	if err != nil {
		return err
	}
	t, err := repo.ApproveTxn(cmd.Context(), id, o.comment)
	if err != nil {
		return err
	}
	return p.txnApproved(t)
}

// txnReportOptions are the options of "gitstate txn report".
type txnReportOptions struct {
	g        *globalOptions
	reporter string
	status   string
	summary  string
	details  string
	commit   string
}

func newTxnReportCmd(g *globalOptions) *cobra.Command {
	o := &txnReportOptions{g: g}
	cmd := &cobra.Command{
		Use:   "report [ID] --status ok|failed|pending [--reporter NAME]",
		Short: "Record a dry-run report on a transaction",
		Long: `Record what a reconciler's dry-run of the transaction's branch found: ok,
failed or pending, a summary for people and details as JSON (--details, a file
with @FILE, or standard input with -). The report replaces the reporter's
previous one and is bound to the head it was made for (--commit, default the
current head): it counts for the policy only while that is still the head.
The reporter is your token's name unless --reporter names a sub-name of it
(NAME/SUB, as flux/prod); only an administrator may report for others.`,
		Example: `  gitstate txn report --status ok --summary "1 deployment changes" --details @plan.json
  gitstate txn report --reporter flux/prod --status failed --summary "prod would lose a volume"`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: g.runE(o.run),
	}
	f := cmd.Flags()
	f.StringVar(&o.reporter, "reporter", "", "the reporter's name (default: your token's name): it, or NAME/SUB under it (only an administrator may report for others)")
	f.StringVar(&o.status, "status", "", "ok, failed or pending (required)")
	f.StringVar(&o.summary, "summary", "", "a summary for people")
	f.StringVar(&o.details, "details", "", "details as JSON, @FILE, or - for standard input")
	f.StringVar(&o.commit, "commit", "", "the head the dry-run was made for (a full commit id; default the current head)")
	return cmd
}

func (o *txnReportOptions) run(cmd *cobra.Command, args []string) error {
	switch o.status {
	case client.ReportOK, client.ReportFailed, client.ReportPending:
	default:
		return usageErrorf("--status must be ok, failed or pending, not %q", o.status)
	}
	details, err := o.readDetails(cmd.InOrStdin())
	if err != nil {
		return err
	}
	p, repo, id, err := o.g.txnCommand(cmd, args)
	if err != nil {
		return err
	}
	t, err := repo.ReportTxn(cmd.Context(), id, &wire.ReportRequest{Reporter: o.reporter, Status: o.status,
		Summary: o.summary, Details: details, Commit: o.commit})
	if err != nil {
		return err
	}
	return p.txnReported(t, o.reporter)
}

// readDetails returns --details as JSON: the flag's value, a file's
// (@FILE) or standard input's (-).
func (o *txnReportOptions) readDetails(stdin io.Reader) (json.RawMessage, error) {
	var b []byte
	var err error
	switch {
	case o.details == "":
		return nil, nil
	case o.details == "-":
		b, err = io.ReadAll(stdin)
	case strings.HasPrefix(o.details, "@"):
		b, err = os.ReadFile(o.details[1:])
	default:
		b = []byte(o.details)
	}
	if err != nil {
		return nil, fmt.Errorf("read --details: %w", err)
	}
	if !json.Valid(b) {
		return nil, usageErrorf("--details must be JSON")
	}
	return json.RawMessage(b), nil
}

// txnCommitOptions are the options of "gitstate txn commit".
type txnCommitOptions struct{ g *globalOptions }

func newTxnCommitCmd(g *globalOptions) *cobra.Command {
	o := &txnCommitOptions{g: g}
	return &cobra.Command{
		Use:   "commit [ID]",
		Short: "Commit a transaction to main in one merge commit",
		Long: `Apply a transaction's changes to main's head in one merge commit (or nothing)
and print its revision. It fails with exit status 4, naming the keys, when
main changed a key the transaction changes to another value since its base
(keys changed only on main are no conflict), and with exit status 1 when the
policy's approvals or reports are missing.`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: g.runE(o.run),
	}
}

func (o *txnCommitOptions) run(cmd *cobra.Command, args []string) error {
	p, repo, id, err := o.g.txnCommand(cmd, args)
	if err != nil {
		return err
	}
	res, err := repo.CommitTxn(cmd.Context(), id)
	if err != nil {
		return err
	}
	return p.commit(res)
}

// txnRebaseOptions are the options of "gitstate txn rebase".
type txnRebaseOptions struct{ g *globalOptions }

func newTxnRebaseCmd(g *globalOptions) *cobra.Command {
	o := &txnRebaseOptions{g: g}
	return &cobra.Command{
		Use:   "rebase [ID]",
		Short: "Move a transaction onto main's head",
		Long: `Move an open transaction onto main's head: its changes are replayed there, so
its preview and reads reflect main now. Its head moves, which voids earlier
approvals. Fails with exit status 4, naming the keys, when main changed a key
the transaction changes to another value.`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: g.runE(o.run),
	}
}

func (o *txnRebaseOptions) run(cmd *cobra.Command, args []string) error {
	p, repo, id, err := o.g.txnCommand(cmd, args)
	if err != nil {
		return err
	}
	t, err := repo.RebaseTxn(cmd.Context(), id)
	if err != nil {
		return err
	}
	return p.txnRebased(t)
}

// txnAbortOptions are the options of "gitstate txn abort".
type txnAbortOptions struct{ g *globalOptions }

func newTxnAbortCmd(g *globalOptions) *cobra.Command {
	o := &txnAbortOptions{g: g}
	return &cobra.Command{
		Use:   "abort [ID]",
		Short: "Drop a transaction: its branch is removed, its record kept",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE:  g.runE(o.run),
	}
}

func (o *txnAbortOptions) run(cmd *cobra.Command, args []string) error {
	p, repo, id, err := o.g.txnCommand(cmd, args)
	if err != nil {
		return err
	}
	t, err := repo.AbortTxn(cmd.Context(), id)
	if err != nil {
		return err
	}
	return p.txnAborted(t)
}

// txnCommand returns what a command about one transaction needs: its
// printer, the repo and the transaction's id.
func (g *globalOptions) txnCommand(cmd *cobra.Command, args []string) (printer, *client.Repo, string, error) {
	p, err := g.printer(cmd.OutOrStdout())
	if err != nil {
		return nil, nil, "", err
	}
	id, err := g.txnArg(args)
	if err != nil {
		return nil, nil, "", err
	}
	repo, err := g.repoClient()
	if err != nil {
		return nil, nil, "", err
	}
	return p, repo, id, nil
}

// txnBegun prints the id alone, for $(...).
func (p *textPrinter) txnBegun(t *wire.Txn) error { return p.printf("%s\n", t.ID) }

// txn prints a transaction as "field: value" lines, then its keys,
// conflicts, approvals, reports and requirements.
func (p *textPrinter) txn(t *wire.Txn) error {
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	line := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	line("transaction:\t%s", t.ID)
	line("status:\t%s", t.Status)
	line("author:\t%s", t.Author)
	if t.Message != "" {
		line("message:\t%s", quoteIfNeeded(t.Message))
	}
	line("branch:\t%s", t.Branch)
	line("base:\trevision %d (%s)", t.BaseRevision, shortID(t.BaseCommit))
	if t.HeadCommit != "" {
		line("head:\t%s", shortID(t.HeadCommit))
	}
	if t.MainRevision > 0 {
		line("main:\trevision %d", t.MainRevision)
	}
	line("created:\t%s", timeText(t.CreatedAt))
	if t.Status == client.TxnOpen {
		line("expires:\t%s", timeText(t.ExpiresAt))
	}
	if t.ClosedAt != nil {
		line("closed:\t%s by %s", timeText(*t.ClosedAt), orDash(t.ClosedBy))
	}
	if t.Commit != "" {
		line("committed:\trevision %d (%s)", t.Revision, shortID(t.Commit))
	}
	list := func(name string, n int, item func(i int)) {
		if n == 0 {
			line("%s: none", name)
			return
		}
		line("%s (%d):", name, n)
		for i := range n {
			item(i)
		}
	}
	// GET describes keys, conflicts and requirements; a record from a
	// list has none of them.
	if t.Requirements != nil {
		list("keys", len(t.Keys), func(i int) { line("  %s", t.Keys[i]) })
		list("conflicts", len(t.Conflicts), func(i int) { line("  %s", t.Conflicts[i]) })
	}
	list("approvals", len(t.Approvals), func(i int) {
		a := t.Approvals[i]
		state := "voided"
		if a.Valid {
			state = "valid"
		}
		line("  %s\t%s\t%s\t%s%s", a.Approver, state, shortID(a.Commit), timeText(a.Time), lastCell(a.Comment))
	})
	list("reports", len(t.Reports), func(i int) {
		r := t.Reports[i]
		state := "stale"
		if r.Current {
			state = "current"
		}
		by := ""
		if r.By != "" && r.By != r.Reporter {
			by = " (by " + r.By + ")"
		}
		line("  %s%s\t%s\t%s\t%s\t%s%s", r.Reporter, by, r.Status, state, shortID(r.Commit), timeText(r.Time), lastCell(r.Summary))
	})
	if rq := t.Requirements; rq != nil {
		switch {
		case rq.Approvals == 0 && len(rq.Reports) == 0:
			line("requirements: none")
		default:
			met := "met"
			if !rq.Met {
				met = "not met"
			}
			line("requirements: %s", met)
			line("  approvals:\t%d valid of %d needed", rq.ValidApprovals, rq.Approvals)
			if len(rq.Reports) > 0 {
				line("  reports:\tok from %s; missing: %s", strings.Join(rq.Reports, ", "), orDash(strings.Join(rq.MissingReports, ", ")))
			}
			line("  protected keys:\t%s", orDash(strings.Join(rq.ProtectedKeys, ", ")))
		}
	}
	return tw.Flush()
}

// txns prints a table of transactions.
func (p *textPrinter) txns(l *wire.TxnList) error {
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tAUTHOR\tBASE\tCREATED\tMESSAGE")
	for _, t := range l.Txns {
		subject, _, _ := strings.Cut(t.Message, "\n")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", t.ID, t.Status, t.Author, t.BaseRevision, timeText(t.CreatedAt), subject)
	}
	return tw.Flush()
}

// txnDiff prints the preview as "diff" prints a diff.
func (p *textPrinter) txnDiff(d *wire.TxnDiff) error {
	return p.diff(&wire.DiffResponse{Changes: d.Changes})
}

func (p *textPrinter) txnApproved(t *wire.Txn) error {
	msg := fmt.Sprintf("approved transaction %s at %s", t.ID, shortID(t.HeadCommit))
	if rq := t.Requirements; rq != nil && rq.Approvals > 0 {
		msg += fmt.Sprintf(" (%d valid of %d needed)", rq.ValidApprovals, rq.Approvals)
	}
	return p.printf("%s\n", msg)
}

// txnReported prints the report just made: reporter's, or with no
// reporter named (the server took the token's name) the newest.
func (p *textPrinter) txnReported(t *wire.Txn, reporter string) error {
	if reporter == "" {
		var newest *wire.Report
		for i, r := range t.Reports {
			if newest == nil || r.Time.After(newest.Time) {
				newest = &t.Reports[i]
			}
		}
		if newest != nil {
			reporter = newest.Reporter
		}
	}
	for _, r := range t.Reports {
		if r.Reporter == reporter {
			return p.printf("reported %s on transaction %s at %s as %s\n", r.Status, t.ID, shortID(r.Commit), reporter)
		}
	}
	return p.printf("reported on transaction %s as %s\n", t.ID, reporter)
}

func (p *textPrinter) txnRebased(t *wire.Txn) error {
	return p.printf("transaction %s is on revision %d (head %s)\n", t.ID, t.BaseRevision, shortID(t.HeadCommit))
}

func (p *textPrinter) txnAborted(t *wire.Txn) error {
	return p.printf("aborted transaction %s\n", t.ID)
}

// lastCell returns an optional last cell of a table's line: a tab and the
// text, or nothing (so that no line ends in padding).
func lastCell(s string) string {
	if s == "" {
		return ""
	}
	return "\t" + quoteIfNeeded(s)
}

// timeText formats a time for the text output: UTC, to the second.
func timeText(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
