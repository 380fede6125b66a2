package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/storage"
)

// State is what a reconciler reports of a revision.
type State string

// The states a reconciler reports.
const (
	// StateApplied: the revision is applied. A newer applied revision
	// supersedes older ones.
	StateApplied State = "applied"
	// StateProgressing: the revision is being applied.
	StateProgressing State = "progressing"
	// StateFailed: applying the revision failed.
	StateFailed State = "failed"
	// StateDrifted: the live state drifted from the revision.
	StateDrifted State = "drifted"
)

// ErrReconcilerNotFound is returned for an unknown reconciler.
var ErrReconcilerNotFound = &gitstate.Error{Kind: gitstate.KindNotFound, Code: "reconciler_not_found"}

// maxMessage bounds a report's message, in bytes.
const maxMessage = 4096

// Report is a reconciler's status report.
type Report struct {
	// Revision is the revision of main the report is about.
	Revision int64
	State    State
	Message  string
	// Interval is how often the reconciler reports (0: keep the last one
	// declared).
	Interval time.Duration
}

// ReconcilerStatus is what is known of a reconciler, measured against the
// head.
type ReconcilerStatus struct {
	Name string
	// State, Revision and Message are the last report's (an "applied"
	// report older than Applied changes none of them).
	State    State
	Revision int64
	Message  string
	// Applied is the newest revision reported applied (0: none).
	Applied    int64
	LastReport time.Time
	Interval   time.Duration
	// LagRevisions is how many revisions of main follow Applied; Lag is how
	// long ago the first of them was committed (0 at the head).
	LagRevisions int64
	Lag          time.Duration
	// Stale is true when the reconciler declared an interval and has been
	// silent for more than twice as long.
	Stale bool
}

// ConvergenceOptions configures Convergence. Zero values give the
// defaults.
type ConvergenceOptions struct {
	// Dir holds a file per repo with its reconcilers' records (the server
	// uses <data>/reconcilers).
	Dir string
	// FlushInterval is how often reports are written to disk (default 1s).
	FlushInterval time.Duration
	// MaxPerRepo bounds the reconcilers of one repo (default 1,000).
	MaxPerRepo int
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Registerer, if set, receives the lag metrics.
	Registerer prometheus.Registerer
}

// Convergence records what each reconciler has applied, and measures how
// far behind main it is.
//
// Reports are taken in memory and written to disk by a background loop
// every FlushInterval and at Close (one atomic file per repo), not one
// fsync per report: reports are periodic heartbeats that a reconciler sends
// again at its next interval, and replaying an old one is harmless (a newer
// applied revision is never moved back), so a crash loses at most one
// interval of reports and nothing the next report does not restore.
//
// Convergence is safe for concurrent use. Lock order: saveMu, then mu.
type Convergence struct {
	store *storage.Store
	opts  ConvergenceOptions
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	saveMu sync.Mutex // serializes flushes

	mu      sync.Mutex                    // guards the fields below
	repos   map[string]map[string]*record // repo, then reconciler name
	dirty   map[string]bool               // repos changed since their last write
	started bool
	closed  bool
}

// record is a reconciler's record, as kept on disk.
type record struct {
	Name       string        `json:"name"`
	State      State         `json:"state"`
	Revision   int64         `json:"revision"`
	Message    string        `json:"message,omitempty"`
	Applied    int64         `json:"applied_revision"`
	LastReport time.Time     `json:"last_report"`
	Interval   time.Duration `json:"interval,omitempty"`
}

type recordsFile struct {
	Version     int      `json:"version"`
	Reconcilers []record `json:"reconcilers"`
}

// NewConvergence loads the records in opts.Dir (creating it on first use).
// Start begins writing reports to disk.
func NewConvergence(store *storage.Store, opts ConvergenceOptions) (*Convergence, error) {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	if opts.MaxPerRepo <= 0 {
		opts.MaxPerRepo = 1000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Dir == "" {
		return nil, errors.New("convergence: no directory")
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("convergence: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Convergence{store: store, opts: opts, log: opts.Logger, ctx: ctx, cancel: cancel,
		repos: map[string]map[string]*record{}, dirty: map[string]bool{}}
	files, err := filepath.Glob(filepath.Join(opts.Dir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, p := range files {
		repo := repoOfFile(p)
		if storage.ValidateRepoName(repo) != nil {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("convergence: %w", err)
		}
		var f recordsFile
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("convergence: %s: %w", p, err)
		}
		if f.Version != 1 {
			return nil, fmt.Errorf("convergence: %s: version %d, want 1", p, f.Version)
		}
		recs := map[string]*record{}
		for _, r := range f.Reconcilers {
			recs[r.Name] = &r
		}
		c.repos[repo] = recs
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(newLagCollector(c))
	}
	return c, nil
}

// Start starts writing reports to disk every FlushInterval, until Close.
func (c *Convergence) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.closed {
		return
	}
	c.started = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(c.opts.FlushInterval)
		defer t.Stop()
		for {
			select {
			case <-c.ctx.Done():
				return
			case <-t.C:
				if err := c.Flush(); err != nil {
					c.log.Error("convergence: writing reconciler records", "err", err)
				}
			}
		}
	}()
}

// Close stops the background writes and writes what is left.
func (c *Convergence) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return c.Flush()
}

// Flush writes the records of every repo changed since its last write.
func (c *Convergence) Flush() error {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	files := map[string]recordsFile{}
	for repo := range c.dirty {
		f := recordsFile{Version: 1, Reconcilers: []record{}}
		for _, r := range c.repos[repo] {
			f.Reconcilers = append(f.Reconcilers, *r)
		}
		slices.SortFunc(f.Reconcilers, func(a, b record) int { return strings.Compare(a.Name, b.Name) })
		files[repo] = f
	}
	clear(c.dirty)
	c.mu.Unlock()
	var errs []error
	for repo, f := range files {
		b, err := json.MarshalIndent(f, "", "  ")
		if err == nil {
			err = storage.WriteFileAtomic(filepath.Join(c.opts.Dir, repo+".json"), b, 0o644)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("repo %s: %w", repo, err))
			c.mu.Lock()
			c.dirty[repo] = true // try again at the next flush
			c.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// ValidReconcilerName reports whether name can name a reconciler: 1 to 128
// bytes of "/"-separated segments, each of [A-Za-z0-9._-] starting with a
// letter or digit. The API lets a token name only reconcilers called by
// its own name or "<name>/<sub>" ("flux/prod"), so one token can report
// for several clusters.
func ValidReconcilerName(name string) bool {
	if len(name) == 0 || len(name) > 128 {
		return false
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" {
			return false
		}
		for i, c := range seg {
			alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
			if !alnum && (i == 0 || (c != '.' && c != '_' && c != '-')) {
				return false
			}
		}
	}
	return true
}

// Report records a reconciler's report on repo and returns its status.
// The revision must exist (0 is the empty state). An "applied" report for a
// revision older than the one recorded applied does not move it back, and
// leaves the state as it was: it only says the reconciler is alive.
func (c *Convergence) Report(repo, name string, rep Report) (*ReconcilerStatus, error) {
	invalid := func(format string, args ...any) error {
		return gitstate.Errorf(gitstate.KindInvalid, "invalid_request", format, args...)
	}
	switch {
	case !ValidReconcilerName(name):
		return nil, invalid("reconciler name must be 1 to 128 bytes of \"/\"-separated segments of [A-Za-z0-9._-], each starting with a letter or digit")
	case rep.State != StateApplied && rep.State != StateProgressing && rep.State != StateFailed && rep.State != StateDrifted:
		return nil, invalid("state must be applied, progressing, failed or drifted, not %q", rep.State)
	case rep.Revision < 0:
		return nil, gitstate.Errorf(gitstate.KindInvalid, "invalid_revision", "revision must not be negative")
	case rep.Interval < 0:
		return nil, invalid("interval must not be negative")
	case len(rep.Message) > maxMessage:
		return nil, invalid("message is over %d bytes", maxMessage)
	}
	r, err := c.store.Repo(repo)
	if err != nil {
		return nil, err
	}
	head := r.Head().Revision
	if rep.Revision > head {
		return nil, gitstate.Errorf(gitstate.KindNotFound, "revision_not_found", "revision %d does not exist (the head is %d)", rep.Revision, head)
	}
	now := c.opts.Now().UTC()
	c.mu.Lock()
	recs := c.repos[repo]
	if recs == nil {
		recs = map[string]*record{}
		c.repos[repo] = recs
	}
	rec, ok := recs[name]
	if !ok {
		if len(recs) >= c.opts.MaxPerRepo {
			c.mu.Unlock()
			return nil, gitstate.Errorf(gitstate.KindConflict, "too_many_reconcilers", "repo %s has %d reconcilers, the most it may have; delete one that is gone", repo, len(recs))
		}
		rec = &record{Name: name}
		recs[name] = rec
	}
	if rep.State != StateApplied || rep.Revision >= rec.Applied {
		rec.State, rec.Revision, rec.Message = rep.State, rep.Revision, rep.Message
		if rep.State == StateApplied {
			rec.Applied = rep.Revision
		}
	}
	rec.LastReport = now
	if rep.Interval > 0 {
		rec.Interval = rep.Interval
	}
	c.dirty[repo] = true
	snap := *rec
	c.mu.Unlock()
	st := c.status(r, head, &snap, now, nil)
	return &st, nil
}

// Delete forgets a reconciler (one that is gone for good).
func (c *Convergence) Delete(repo, name string) error {
	if _, err := c.store.Repo(repo); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.repos[repo][name]; !ok {
		return gitstate.Errorf(gitstate.KindNotFound, "reconciler_not_found", "reconciler %q has not reported on repo %s", name, repo)
	}
	delete(c.repos[repo], name)
	c.dirty[repo] = true
	return nil
}

// List returns the status of repo's reconcilers, by name, and the head
// they are measured against.
func (c *Convergence) List(repo string) ([]ReconcilerStatus, int64, error) {
	r, err := c.store.Repo(repo)
	if err != nil {
		return nil, 0, err
	}
	head := r.Head().Revision
	now := c.opts.Now().UTC()
	c.mu.Lock()
	recs := make([]record, 0, len(c.repos[repo]))
	for _, rec := range c.repos[repo] {
		recs = append(recs, *rec)
	}
	c.mu.Unlock()
	slices.SortFunc(recs, func(a, b record) int { return strings.Compare(a.Name, b.Name) })
	out := make([]ReconcilerStatus, len(recs))
	times := map[int64]time.Time{} // reconcilers often share an applied revision
	for i := range recs {
		out[i] = c.status(r, head, &recs[i], now, times)
	}
	return out, head, nil
}

// Rollout splits repo's reconcilers into those that have applied rev or a
// later revision and those that have not, and returns the head.
func (c *Convergence) Rollout(repo string, rev int64) (applied, pending []ReconcilerStatus, head int64, err error) {
	all, head, err := c.List(repo)
	if err != nil {
		return nil, nil, 0, err
	}
	if rev < 0 || rev > head {
		return nil, nil, 0, gitstate.Errorf(gitstate.KindNotFound, "revision_not_found", "revision %d does not exist", rev)
	}
	applied, pending = []ReconcilerStatus{}, []ReconcilerStatus{}
	for _, s := range all {
		if s.Applied >= rev {
			applied = append(applied, s)
		} else {
			pending = append(pending, s)
		}
	}
	return applied, pending, head, nil
}

// status measures rec against head at now. times, if not nil, caches
// revisions' commit times.
func (c *Convergence) status(r *storage.Repo, head int64, rec *record, now time.Time, times map[int64]time.Time) ReconcilerStatus {
	s := ReconcilerStatus{Name: rec.Name, State: rec.State, Revision: rec.Revision, Message: rec.Message,
		Applied: rec.Applied, LastReport: rec.LastReport, Interval: rec.Interval}
	if rec.Applied < head {
		s.LagRevisions = head - rec.Applied
		next := rec.Applied + 1
		t, ok := times[next]
		if !ok {
			ri, err := r.Revision(next)
			if err != nil {
				c.log.Warn("convergence: reading a revision's time", "repo", r.Name(), "revision", next, "err", err)
			} else if t = time.Unix(ri.Time, 0); times != nil {
				times[next] = t
			}
		}
		if !t.IsZero() {
			s.Lag = max(0, now.Sub(t))
		}
	}
	s.Stale = rec.Interval > 0 && now.Sub(rec.LastReport) > 2*rec.Interval
	return s
}

// lagCollector reports each reconciler's lag and staleness when scraped.
type lagCollector struct {
	c                       *Convergence
	revisions, seconds, old *prometheus.Desc
}

func newLagCollector(c *Convergence) *lagCollector {
	labels := []string{"repo", "reconciler"}
	return &lagCollector{
		c:         c,
		revisions: prometheus.NewDesc("gitstate_reconciler_lag_revisions", "Revisions of main after the last one a reconciler reported applied.", labels, nil),
		seconds:   prometheus.NewDesc("gitstate_reconciler_lag_seconds", "Seconds since the first revision a reconciler has not applied was committed (0 at the head).", labels, nil),
		old:       prometheus.NewDesc("gitstate_reconciler_stale", "1 when a reconciler has been silent for more than twice its declared interval.", labels, nil),
	}
}

func (l *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- l.revisions
	ch <- l.seconds
	ch <- l.old
}

func (l *lagCollector) Collect(ch chan<- prometheus.Metric) {
	l.c.mu.Lock()
	repos := make([]string, 0, len(l.c.repos))
	for repo := range l.c.repos {
		repos = append(repos, repo)
	}
	l.c.mu.Unlock()
	for _, repo := range repos {
		all, _, err := l.c.List(repo)
		if err != nil {
			continue
		}
		for _, s := range all {
			stale := 0.0
			if s.Stale {
				stale = 1
			}
			ch <- prometheus.MustNewConstMetric(l.revisions, prometheus.GaugeValue, float64(s.LagRevisions), repo, s.Name)
			ch <- prometheus.MustNewConstMetric(l.seconds, prometheus.GaugeValue, s.Lag.Seconds(), repo, s.Name)
			ch <- prometheus.MustNewConstMetric(l.old, prometheus.GaugeValue, stale, repo, s.Name)
		}
	}
}
