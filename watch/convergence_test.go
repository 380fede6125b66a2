package watch_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/watch"
)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// convEnv is a store with Convergence in a temporary directory.
type convEnv struct {
	t     *testing.T
	dir   string
	clock *clock
	reg   *prometheus.Registry
	st    *storage.Store
	conv  *watch.Convergence
	opts  watch.ConvergenceOptions
}

func newConvEnv(t *testing.T, opts watch.ConvergenceOptions) *convEnv {
	e := &convEnv{t: t, dir: t.TempDir(), clock: &clock{now: time.Now()}, opts: opts}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *convEnv) open() {
	e.t.Helper()
	st, err := storage.Open(context.Background(), e.dir, storage.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
	e.reg = prometheus.NewRegistry()
	opts := e.opts
	opts.Dir, opts.Now, opts.Registerer = filepath.Join(e.dir, "reconcilers"), e.clock.Now, e.reg
	if e.conv, err = watch.NewConvergence(st, opts); err != nil {
		e.t.Fatal(err)
	}
	e.conv.Start()
}

func (e *convEnv) close() {
	if e.st == nil {
		return
	}
	if err := e.conv.Close(); err != nil {
		e.t.Errorf("close convergence: %v", err)
	}
	e.st.Close()
	e.st = nil
}

// put commits a key and returns the revision and its commit time.
func (e *convEnv) put(key string) (int64, time.Time) {
	e.t.Helper()
	r, _ := e.st.Repo(storage.DefaultRepo)
	res, err := r.WriteOne(context.Background(), &storage.Batch{Ops: []storage.Op{{Kind: storage.OpPut, Key: key, Value: []byte("v")}}})
	if err != nil {
		e.t.Fatal(err)
	}
	ri, err := r.Revision(res.Revision)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Revision, time.Unix(ri.Time, 0)
}

func (e *convEnv) report(name string, rev int64, state watch.State, interval time.Duration) *watch.ReconcilerStatus {
	e.t.Helper()
	st, err := e.conv.Report(storage.DefaultRepo, name, watch.Report{Revision: rev, State: state, Message: string(state) + " " + name, Interval: interval})
	if err != nil {
		e.t.Fatalf("report %s %s %d: %v", name, state, rev, err)
	}
	return st
}

func (e *convEnv) status(name string) watch.ReconcilerStatus {
	e.t.Helper()
	all, _, err := e.conv.List(storage.DefaultRepo)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range all {
		if s.Name == name {
			return s
		}
	}
	e.t.Fatalf("no reconciler %s in %+v", name, all)
	return watch.ReconcilerStatus{}
}

func TestConvergenceLagAndSupersede(t *testing.T) {
	e := newConvEnv(t, watch.ConvergenceOptions{})
	e.put("a")
	_, t2 := e.put("b")
	e.put("c")
	e.clock.set(t2.Add(90 * time.Second))

	s := e.report("eu", 1, watch.StateApplied, 0)
	if s.Applied != 1 || s.State != watch.StateApplied || s.Revision != 1 || s.LagRevisions != 2 || s.Lag != 90*time.Second || s.Stale {
		t.Fatalf("applied 1 of 3: %+v", s)
	}
	// Applied at the head: no lag.
	if s := e.report("eu", 3, watch.StateApplied, 0); s.Applied != 3 || s.LagRevisions != 0 || s.Lag != 0 {
		t.Fatalf("applied the head: %+v", s)
	}
	// An older applied report does not move the applied revision back, nor
	// the state.
	if s := e.report("eu", 2, watch.StateApplied, 0); s.Applied != 3 || s.Revision != 3 || s.Message != "applied eu" {
		t.Errorf("late applied 2 after 3: %+v", s)
	}
	// Other states are recorded with their revision; applied stays.
	if s := e.report("eu", 2, watch.StateDrifted, 0); s.Applied != 3 || s.State != watch.StateDrifted || s.Revision != 2 {
		t.Errorf("drifted 2 after applied 3: %+v", s)
	}
	rev4, _ := e.put("d")
	if s := e.report("eu", rev4, watch.StateProgressing, 0); s.Applied != 3 || s.State != watch.StateProgressing || s.Revision != 4 || s.LagRevisions != 1 {
		t.Errorf("progressing 4: %+v", s)
	}
	if s := e.report("eu", rev4, watch.StateFailed, 0); s.Applied != 3 || s.State != watch.StateFailed {
		t.Errorf("failed 4: %+v", s)
	}
	// A newer applied revision supersedes.
	if s := e.report("eu", rev4, watch.StateApplied, 0); s.Applied != 4 || s.State != watch.StateApplied || s.LagRevisions != 0 {
		t.Errorf("applied 4: %+v", s)
	}
}

func TestConvergenceStale(t *testing.T) {
	e := newConvEnv(t, watch.ConvergenceOptions{})
	e.put("a")
	start := time.Now()
	e.clock.set(start)
	e.report("eu", 1, watch.StateApplied, 10*time.Second)
	e.report("us", 1, watch.StateApplied, 0) // declares no interval: never stale
	e.clock.set(start.Add(20 * time.Second))
	if s := e.status("eu"); s.Stale || s.Interval != 10*time.Second {
		t.Errorf("silent for exactly twice its interval: %+v", s)
	}
	e.clock.set(start.Add(21 * time.Second))
	if s := e.status("eu"); !s.Stale {
		t.Errorf("silent for more than twice its interval: %+v", s)
	}
	if s := e.status("us"); s.Stale {
		t.Errorf("no interval, yet stale: %+v", s)
	}
	// A report (even a superseded one) is a sign of life; the interval
	// declared before holds.
	if s := e.report("eu", 0, watch.StateApplied, 0); s.Stale || s.Interval != 10*time.Second || s.Applied != 1 {
		t.Errorf("after a report: %+v", s)
	}
	if v := gauge(t, e.reg, "gitstate_reconciler_stale", "eu"); v != 0 {
		t.Errorf("stale gauge %v", v)
	}
	e.clock.set(start.Add(time.Hour))
	if v := gauge(t, e.reg, "gitstate_reconciler_stale", "eu"); v != 1 {
		t.Errorf("stale gauge %v after an hour", v)
	}
}

func TestConvergenceRollout(t *testing.T) {
	e := newConvEnv(t, watch.ConvergenceOptions{})
	for _, k := range []string{"a", "b", "c"} {
		e.put(k)
	}
	e.report("eu", 3, watch.StateApplied, 0)
	e.report("us", 2, watch.StateApplied, 0)
	e.report("us", 3, watch.StateFailed, 0)
	e.report("ap", 1, watch.StateApplied, 0)
	names := func(ss []watch.ReconcilerStatus) string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Name)
		}
		return strings.Join(out, ",")
	}
	for rev, want := range map[int64][2]string{
		1: {"ap,eu,us", ""},
		2: {"eu,us", "ap"},
		3: {"eu", "ap,us"},
		0: {"ap,eu,us", ""},
	} {
		applied, pending, head, err := e.conv.Rollout(storage.DefaultRepo, rev)
		if err != nil || head != 3 || names(applied) != want[0] || names(pending) != want[1] {
			t.Errorf("rollout of %d: applied %s, pending %s, head %d, %v; want %v", rev, names(applied), names(pending), head, err, want)
		}
	}
	_, pending, _, _ := e.conv.Rollout(storage.DefaultRepo, 3)
	if pending[1].Applied != 2 || pending[1].State != watch.StateFailed {
		t.Errorf("pending us: %+v", pending[1])
	}
	if _, _, _, err := e.conv.Rollout(storage.DefaultRepo, 4); !errors.Is(err, gitstate.ErrRevisionNotFound) {
		t.Errorf("rollout after the head: %v", err)
	}
	if v := gauge(t, e.reg, "gitstate_reconciler_lag_revisions", "ap"); v != 2 {
		t.Errorf("lag gauge of ap: %v", v)
	}
	if v := gauge(t, e.reg, "gitstate_reconciler_lag_seconds", "eu"); v != 0 {
		t.Errorf("lag seconds of eu at the head: %v", v)
	}
}

func TestConvergenceBadReports(t *testing.T) {
	e := newConvEnv(t, watch.ConvergenceOptions{MaxPerRepo: 2})
	e.put("a")
	for name, c := range map[string]struct {
		name string
		rep  watch.Report
		want *gitstate.Error
	}{
		"unknown state":     {"eu", watch.Report{Revision: 1, State: "done"}, gitstate.ErrInvalidRequest},
		"no state":          {"eu", watch.Report{Revision: 1}, gitstate.ErrInvalidRequest},
		"negative":          {"eu", watch.Report{Revision: -1, State: watch.StateApplied}, gitstate.ErrInvalidRevision},
		"after the head":    {"eu", watch.Report{Revision: 2, State: watch.StateApplied}, gitstate.ErrRevisionNotFound},
		"bad name":          {"-eu", watch.Report{Revision: 1, State: watch.StateApplied}, gitstate.ErrInvalidRequest},
		"empty segment":     {"eu//1", watch.Report{Revision: 1, State: watch.StateApplied}, gitstate.ErrInvalidRequest},
		"trailing slash":    {"eu/", watch.Report{Revision: 1, State: watch.StateApplied}, gitstate.ErrInvalidRequest},
		"bad sub-name":      {"eu/-1", watch.Report{Revision: 1, State: watch.StateApplied}, gitstate.ErrInvalidRequest},
		"negative interval": {"eu", watch.Report{Revision: 1, State: watch.StateApplied, Interval: -time.Second}, gitstate.ErrInvalidRequest},
		"long message":      {"eu", watch.Report{Revision: 1, State: watch.StateApplied, Message: strings.Repeat("x", 4097)}, gitstate.ErrInvalidRequest},
	} {
		if _, err := e.conv.Report(storage.DefaultRepo, c.name, c.rep); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %s", name, err, c.want.Code)
		}
	}
	if _, err := e.conv.Report("nope", "eu", watch.Report{Revision: 0, State: watch.StateApplied}); !errors.Is(err, gitstate.ErrRepoNotFound) {
		t.Errorf("unknown repo: %v", err)
	}
	e.report("eu", 1, watch.StateApplied, 0)
	e.report("us", 1, watch.StateApplied, 0)
	if _, err := e.conv.Report(storage.DefaultRepo, "ap", watch.Report{Revision: 1, State: watch.StateApplied}); gitstate.KindOf(err) != gitstate.KindConflict {
		t.Errorf("one reconciler too many: %v", err)
	}
	e.report("eu", 1, watch.StateApplied, 0) // a known one still reports
	if err := e.conv.Delete(storage.DefaultRepo, "us"); err != nil {
		t.Fatal(err)
	}
	if err := e.conv.Delete(storage.DefaultRepo, "us"); !errors.Is(err, watch.ErrReconcilerNotFound) {
		t.Errorf("delete twice: %v", err)
	}
	e.report("ap", 1, watch.StateApplied, 0)
}

// A reconciler's name may be a token's name with sub-names ("flux/prod"),
// each segment a name of its own.
func TestValidReconcilerName(t *testing.T) {
	for name, want := range map[string]bool{
		"eu": true, "flux/prod": true, "flux/eu-west/1": true, "a.b_c-d": true, strings.Repeat("a", 128): true,
		"": false, "-eu": false, "/eu": false, "eu/": false, "eu//1": false, "eu/-1": false, "eu/.x": false,
		"eu 1": false, "eu%2Fprod": false, strings.Repeat("a", 129): false,
	} {
		if got := watch.ValidReconcilerName(name); got != want {
			t.Errorf("ValidReconcilerName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestConvergencePersists(t *testing.T) {
	e := newConvEnv(t, watch.ConvergenceOptions{FlushInterval: 10 * time.Millisecond})
	e.put("a")
	e.put("b")
	e.report("eu", 2, watch.StateApplied, 30*time.Second)
	e.report("eu", 2, watch.StateDrifted, 0)
	e.report("us", 1, watch.StateApplied, 0)
	// Written in the background, without a Close.
	path := filepath.Join(e.dir, "reconcilers", "default.json")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), `"drifted"`) && strings.Contains(string(b), `"us"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records not written: %s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.close()
	e.open()
	if s := e.status("eu"); s.Applied != 2 || s.State != watch.StateDrifted || s.Interval != 30*time.Second || s.LastReport.IsZero() {
		t.Errorf("eu after a restart: %+v", s)
	}
	if s := e.status("us"); s.Applied != 1 || s.LagRevisions != 1 {
		t.Errorf("us after a restart: %+v", s)
	}
}

// gauge returns the value of a gauge of the default repo's reconciler.
func gauge(t *testing.T, reg *prometheus.Registry, name, reconciler string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["repo"] == storage.DefaultRepo && labels["reconciler"] == reconciler {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s{reconciler=%q}", name, reconciler)
	return 0
}
