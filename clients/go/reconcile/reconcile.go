// Package reconcile runs a reconciler against a gitstate repo: it takes a
// consistent snapshot of a prefix at a revision, hands it to an apply
// function, reports the outcome to the server, then waits for the next
// revision that changes the prefix — resuming its watch where it stopped,
// with backoff, and coalescing bursts so that only the latest revision is
// applied.
//
//	err := reconcile.Run(ctx, c, reconcile.Options{Name: "web", Prefix: "apps/web/"},
//		func(ctx context.Context, s reconcile.Snapshot) error {
//			return deploy(ctx, s.Values)
//		})
//
// An apply that finds the world edited by hand, repairs it and returns
// Drifted(...) is reported "drifted"; any other error is reported "failed"
// and retried with backoff.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// Snapshot is the state of a prefix at one revision.
type Snapshot struct {
	Revision int64
	Prefix   string
	// Values maps each key under the prefix to its value.
	Values map[string][]byte
	// ETags maps each key to its blob id.
	ETags map[string]string
}

// Options configures Run.
type Options struct {
	// Name is the reconciler's name in status reports (required): the
	// client's token name, or "<token name>/<sub>" (say "flux/prod") when
	// one token reports for several; the server refuses any other name
	// (403 reporter_not_caller) unless the token is an administrator's.
	Name string
	// Repo is the repo to follow (default "default").
	Repo string
	// Prefix is the part of the repo the reconciler applies ("" for all).
	Prefix string
	// Interval is how often the reconciler re-applies the current snapshot
	// even when nothing changed (to find and repair drift) and reports; the
	// server calls it stale after twice as long in silence (default 1m).
	Interval time.Duration
	// MinBackoff and MaxBackoff bound the delay before a retry after an
	// error (defaults 200ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// Logger receives the reconciler's logs (default: discarded).
	Logger *slog.Logger
	// OnReport, if set, is called with every status report (after it is
	// sent, or failed to send).
	OnReport func(wire.ReconcilerStatusRequest, error)
}

// DriftError is returned by an apply function that found the world changed
// behind the reconciler's back and repaired it.
type DriftError struct{ Detail string }

func (e *DriftError) Error() string { return "drifted: " + e.Detail }

// Drifted returns an error saying that apply repaired drift (the snapshot is
// applied nonetheless).
func Drifted(format string, args ...any) error {
	return &DriftError{Detail: fmt.Sprintf(format, args...)}
}

// Run reconciles until ctx is done, and returns ctx's error. apply must
// make the world match the snapshot; it is never called concurrently.
func Run(ctx context.Context, c *client.Client, opts Options, apply func(context.Context, Snapshot) error) error {
	if opts.Name == "" {
		return errors.New("reconcile: Options.Name is required")
	}
	if opts.Repo == "" {
		opts.Repo = "default"
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &runner{c: c, repo: c.Repo(opts.Repo), opts: opts, apply: apply, log: opts.Logger.With("reconciler", opts.Name)}
	return r.run(ctx)
}

type runner struct {
	c     *client.Client
	repo  *client.Repo
	opts  Options
	apply func(context.Context, Snapshot) error
	log   *slog.Logger

	applied int64 // the last revision applied (0: none yet)
	target  int64 // the latest revision known to change the prefix
	seen    int64 // the last revision the watch has passed
	failed  int   // consecutive failures
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoff returns the delay before the next retry: exponential with full
// jitter.
func (r *runner) backoff() time.Duration {
	d := r.opts.MinBackoff << min(r.failed, 16)
	if d <= 0 || d > r.opts.MaxBackoff {
		d = r.opts.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func (r *runner) run(ctx context.Context) error {
	// Start from the head: the first apply brings the world to it.
	for {
		info, err := r.repo.Info(ctx)
		if err == nil {
			r.target, r.seen = info.Revision, info.Revision
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.failed++
		r.log.Warn("reading the head", "err", err)
		if err := sleep(ctx, r.backoff()); err != nil {
			return err
		}
	}
	r.failed = 0
	events := make(chan int64, 1)
	go r.watch(ctx, events)
	resync := time.NewTicker(r.opts.Interval)
	defer resync.Stop()
	due := true
	for {
		if due {
			if err := r.reconcile(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.failed++
				if err := sleep(ctx, r.backoff()); err != nil {
					return err
				}
				continue // retry
			}
			r.failed, due = 0, false
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case rev := <-events:
			// Coalesce a burst: take whatever else is already there.
			for more := true; more; {
				select {
				case rev2 := <-events:
					rev = max(rev, rev2)
				default:
					more = false
				}
			}
			if rev > r.target {
				r.target = rev
			}
			due = r.target > r.applied
		case <-resync.C:
			due = true // re-apply: find drift, and report so as not to look stale
		}
	}
}

// reconcile applies the newest snapshot and reports the outcome.
func (r *runner) reconcile(ctx context.Context) error {
	s, err := r.snapshot(ctx)
	if err != nil {
		r.log.Warn("taking a snapshot", "err", err)
		return err
	}
	r.report(ctx, s.Revision, client.StateProgressing, "")
	err = r.apply(ctx, s)
	var drift *DriftError
	switch {
	case err == nil:
		r.applied = s.Revision
		r.report(ctx, s.Revision, client.StateApplied, "")
		return nil
	case errors.As(err, &drift):
		r.applied = s.Revision
		r.log.Warn("repaired drift", "revision", s.Revision, "detail", drift.Detail)
		r.report(ctx, s.Revision, client.StateDrifted, drift.Detail)
		return nil
	default:
		if ctx.Err() != nil {
			return err
		}
		r.log.Warn("apply failed", "revision", s.Revision, "err", err)
		r.report(ctx, s.Revision, client.StateFailed, err.Error())
		return err
	}
}

// snapshot reads every key under the prefix at the latest revision, one
// consistent listing.
func (r *runner) snapshot(ctx context.Context) (Snapshot, error) {
	res, err := r.repo.ListAll(ctx, &client.ListOptions{Prefix: r.opts.Prefix, Values: true}, 0)
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{Revision: res.Revision, Prefix: r.opts.Prefix, Values: map[string][]byte{}, ETags: map[string]string{}}
	for _, it := range res.Items {
		v, err := client.ItemValue(it)
		if err != nil {
			return Snapshot{}, err
		}
		s.Values[it.Key] = v
		s.ETags[it.Key] = it.ETag
	}
	return s, nil
}

func (r *runner) report(ctx context.Context, rev int64, state, msg string) {
	st := wire.ReconcilerStatusRequest{Revision: wire.RevNumber(rev), State: state, Message: msg, Interval: wire.Duration(r.opts.Interval)}
	err := r.repo.ReportStatus(ctx, r.opts.Name, st)
	if err != nil && ctx.Err() == nil {
		r.log.Warn("reporting status", "state", state, "err", err)
	}
	if r.opts.OnReport != nil {
		r.opts.OnReport(st, err)
	}
}

// watch follows the revisions that change the prefix and sends their
// numbers on events, resuming after the last event it saw whenever the
// stream breaks (the server restarts, the network fails).
func (r *runner) watch(ctx context.Context, events chan int64) {
	from := r.seen
	failed := 0
	for ctx.Err() == nil {
		w, err := r.repo.Watch(ctx, &client.WatchOptions{From: wire.RevNumber(from), Prefix: r.opts.Prefix})
		if err != nil {
			failed++
			r.log.Debug("watch: connecting", "err", err)
			d := r.opts.MinBackoff << min(failed, 16)
			if d <= 0 || d > r.opts.MaxBackoff {
				d = r.opts.MaxBackoff
			}
			if sleep(ctx, d/2+rand.N(d/2+1)) != nil {
				return
			}
			continue
		}
		failed = 0
		for {
			ev, err := w.Next()
			if err != nil {
				if err != io.EOF && ctx.Err() == nil {
					r.log.Debug("watch: stream broke; resuming", "from", from, "err", err)
				}
				break
			}
			if n, err := strconv.ParseInt(ev.ID, 10, 64); err == nil && n > from {
				from = n
			}
			if ev.Type == client.EventRevision && ev.Revision != nil {
				select {
				case events <- ev.Revision.Revision:
				default:
					// A newer revision is already waiting to be taken:
					// replace it so that only the latest counts.
					select {
					case <-events:
					default:
					}
					events <- ev.Revision.Revision
				}
			}
		}
		w.Close()
	}
}
