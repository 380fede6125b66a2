package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// auditOptions are the options of "gitstate audit".
type auditOptions struct {
	g        *globalOptions
	since    string
	identity string
	repo     string
	limit    int
}

func newAuditCmd(g *globalOptions) *cobra.Command {
	o := &auditOptions{g: g}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the audit log, newest first (administrators)",
		Long: `Read the audit log: every mutating request, every denied request and
every secret read, newest first. --since takes a time (RFC 3339) or a
duration back from now (1h, 30m); --identity and --for-repo keep one
principal's or one repo's entries. Values and secrets never appear in it.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: g.runE(o.run),
	}
	f := cmd.Flags()
	f.StringVar(&o.since, "since", "", "entries at or after this time (RFC 3339) or within this duration back from now (1h)")
	f.StringVar(&o.identity, "identity", "", "only this principal's entries (a token's name)")
	f.StringVar(&o.repo, "for-repo", "", "only the entries about this repo")
	f.IntVar(&o.limit, "limit", 0, "how many entries, the newest (default: the server's, 100; at most 10000)")
	return cmd
}

func (o *auditOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	opts := &client.AuditOptions{Identity: o.identity, Repo: o.repo, Limit: o.limit}
	if o.since != "" {
		if d, err := time.ParseDuration(o.since); err == nil && d > 0 {
			opts.Last = d
		} else if t, err := time.Parse(time.RFC3339Nano, o.since); err == nil {
			opts.Since = t
		} else {
			return usageErrorf("--since must be a time (RFC 3339) or a positive duration (1h), not %q", o.since)
		}
	}
	if o.limit < 0 {
		return usageErrorf("--limit must not be negative")
	}
	c, err := o.g.client()
	if err != nil {
		return err
	}
	l, err := c.Audit(cmd.Context(), opts)
	if err != nil {
		return err
	}
	return p.audit(l)
}

func (p *jsonPrinter) audit(l *wire.AuditList) error { return p.enc.Encode(l) }

func (p *textPrinter) audit(l *wire.AuditList) error {
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tIDENTITY\tACTION\tREPO\tKEYS\tSTATUS\tREVISION\tREQUEST")
	for _, e := range l.Entries {
		keys := strings.Join(e.Keys, ",")
		if e.KeysOmitted > 0 {
			keys += fmt.Sprintf(",+%d", e.KeysOmitted)
		}
		rev := "-"
		if e.Revision > 0 {
			rev = fmt.Sprint(e.Revision)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"),
			orDash(e.Identity), e.Action, orDash(e.Repo), orDash(keys), e.Status, rev, e.RequestID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if l.Truncated {
		return p.printf("(older entries match too: raise --limit or narrow --since)\n")
	}
	return nil
}
