package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// watchOptions are the options of "gitstate watch".
type watchOptions struct {
	g      *globalOptions
	from   string
	branch string
	// backoff is the first wait before reconnecting; it doubles up to
	// maxBackoff while the server stays away.
	backoff, maxBackoff time.Duration
}

func newWatchCmd(g *globalOptions) *cobra.Command {
	o := &watchOptions{g: g, backoff: 250 * time.Millisecond, maxBackoff: 10 * time.Second}
	cmd := &cobra.Command{
		Use:   "watch [PREFIX]",
		Short: "Print revisions as they are committed",
		Long: `Print main's revisions as they are committed (a Server-Sent Events stream),
limited to the changes under PREFIX when one is given. --from replays from a
revision (0: the whole history). -o json prints one JSON line per event,
progress and close events included. The command runs until interrupted.

When the server ends the stream for its own reasons (it shuts down or
restarts, or fails) or the connection drops, watch reconnects by itself from
the last revision it printed (the close event's resume id; before any, the
revision the stream started after), waiting 250ms,
then twice as long each time up to 10s while the server is away, and says so
on stderr; no revision is skipped or printed twice. Any other close (the
token was revoked or expired, the transaction is gone) ends it with exit
status 1, the reason, and the command that resumes: "gitstate watch ...
--from N". With --branch, the transaction's commit or abort ends it with
exit status 0.`,
		Example: `  gitstate watch apps/web/
  gitstate watch --from 0 -o json
  gitstate watch --branch txn/abcdefghijkl`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: o.g.runE(o.run),
	}
	f := cmd.Flags()
	f.StringVar(&o.from, "from", "", "replay the revisions after this one (0: all); default: from now")
	f.StringVar(&o.branch, "branch", "", "follow a transaction's branch (txn/<id>) instead of main")
	return cmd
}

func (o *watchOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	repo, err := o.g.repoClient()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	opts := &client.WatchOptions{From: wire.Rev(o.from), Branch: o.branch}
	if len(args) == 1 {
		opts.Prefix = args[0]
	}
	// The first connection's error is the command's: a wrong server or
	// token should not be retried forever.
	w, err := repo.Watch(ctx, opts)
	if err != nil {
		return err
	}
	for {
		why, err := o.stream(w, p, opts)
		w.Close()
		if err != nil || ctx.Err() != nil {
			return err
		}
		w, err = o.reconnect(ctx, cmd.ErrOrStderr(), repo, opts, why)
		if err != nil || w == nil {
			return err
		}
	}
}

// stream prints w's events until it ends. It returns why the stream should
// be reopened from opts.From (updated to the last id seen), or the error
// that ends the command (nil: a normal end).
func (o *watchOptions) stream(w *client.Watcher, p printer, opts *client.WatchOptions) (string, error) {
	if opts.From == "" {
		// Started from now: resume from the head it started at, not
		// from a later now that would skip what came in between.
		opts.From = w.From()
	}
	for {
		ev, err := w.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "the stream ended", nil
			}
			return fmt.Sprintf("the connection failed (%v)", err), nil
		}
		if err := p.event(ev); err != nil {
			return "", err
		}
		if ev.Close == nil {
			if ev.ID != "" {
				opts.From = wire.Rev(ev.ID)
			}
			continue
		}
		if ev.Close.Resume != "" {
			opts.From = wire.Rev(ev.Close.Resume)
		}
		switch closeAction(ev.Close, o.branch != "") {
		case closeReconnect:
			return ev.Close.Reason, nil
		case closeEnd:
			return "", nil
		}
		err = fmt.Errorf("watch closed by the server: %s", ev.Close.Reason)
		if opts.From != "" {
			err = &exitErr{code: exitError, err: err, hint: "resume with: " + o.resumeCommand(opts)}
		}
		return "", err
	}
}

// reconnect reopens the watch from opts.From, after why ended it, waiting
// with backoff while the server is away. It returns a nil watcher once ctx
// is done, and an error when the server refuses the watch (a revoked token,
// a repo gone): only its absence is waited out.
func (o *watchOptions) reconnect(ctx context.Context, stderr io.Writer, repo *client.Repo, opts *client.WatchOptions, why string) (*client.Watcher, error) {
	from := string(opts.From)
	if from == "" {
		from = "now (no revision seen yet)"
	}
	wait := o.backoff
	for {
		fmt.Fprintf(stderr, "gitstate: watch: %s; reconnecting from %s in %s\n", why, from, wait)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(wait):
		}
		w, err := repo.Watch(ctx, opts)
		if err == nil {
			return w, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if !retryable(err) {
			return nil, fmt.Errorf("watch: reconnect from %s: %w", from, err)
		}
		why = err.Error()
		wait = min(2*wait, o.maxBackoff)
	}
}

// retryable reports whether err opening a watch is the server's absence
// (no answer, 503, 429, a proxy's 5xx), worth waiting out, rather than its
// answer.
func retryable(err error) bool {
	var ge *gitstate.Error
	if !errors.As(err, &ge) {
		return true // the network: connection refused, reset, timeout
	}
	switch ge.Kind {
	case gitstate.KindUnavailable, gitstate.KindTooManyRequests, gitstate.KindInternal:
		return true
	}
	return false
}

// Actions on a close event.
const (
	closeReconnect = iota // the server's own reason: reopen from the resume id
	closeEnd              // the end of what was watched: exit 0
	closeFail             // anything else: exit 1 with the reason
)

// closeAction says what watch does on a close event c. A stream the server
// ended for its own reasons (c.Retry: shutting down, an error; a server
// older than that field says "server ..." in the reason) is reconnected. A
// watched transaction's "transaction committed" or "transaction aborted"
// is the normal end of a --branch watch. Every other reason ("token
// revoked", "token expired", "no such transaction", ...) would be refused
// again, or should be seen by a person: it fails.
func closeAction(c *wire.WatchClose, onBranch bool) int {
	reason := c.Reason
	switch {
	case c.Retry || strings.HasPrefix(reason, "server "):
		return closeReconnect
	case onBranch && strings.HasPrefix(reason, "transaction ") && !strings.Contains(reason, "open"):
		return closeEnd
	}
	return closeFail
}

// resumeCommand is the command line that resumes this watch from opts.From.
func (o *watchOptions) resumeCommand(opts *client.WatchOptions) string {
	parts := []string{"gitstate watch"}
	if opts.Prefix != "" {
		parts = append(parts, opts.Prefix)
	}
	if o.branch != "" {
		parts = append(parts, "--branch", o.branch)
	}
	parts = append(parts, "--from", string(opts.From))
	return strings.Join(parts, " ")
}
