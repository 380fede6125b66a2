package sidebyside

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Run starts the systems, loads them, runs every workload on every system
// for cfg.Rounds rounds (rotating which system goes first), then the larger
// watch fan-outs once, and writes the report. A workload that fails on a
// system is noted in the report and the run goes on; Run then returns the
// results and an error naming the failures.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if cfg.Source == "" {
		return nil, errors.New("no gitstate checkout to build the server from")
	}
	res := newResults(cfg)
	res.Started = time.Now()
	r := &runner{cfg: cfg, res: res}
	work := cfg.WorkDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "gitstate-sidebyside-"); err != nil {
			return nil, err
		}
		if !cfg.Keep {
			defer os.RemoveAll(work)
		}
	}
	r.logf("work directory %s", work)
	res.Machine = readMachine(work)
	res.Versions = readVersions(ctx, cfg.Source)
	sampler, stopSampler := context.WithCancel(ctx)
	defer stopSampler()
	go sampleLoad(sampler, res)

	systems, err := newSystems(cfg, work)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, s := range systems {
			s.Close()
		}
	}()
	for _, s := range systems {
		res.Systems = append(res.Systems, s.Name())
		r.logf("starting %s", s.Name())
		if err := s.Start(ctx); err != nil {
			return nil, fmt.Errorf("start %s: %w", s.Name(), err)
		}
	}
	var failures []error
	fail := func(s System, what string, err error) {
		r.logf("  %-8s %s FAILED: %v", s.Name(), what, err)
		failures = append(failures, fmt.Errorf("%s %s: %w", s.Name(), what, err))
	}
	if err := r.load(ctx, systems); err != nil {
		return nil, err
	}

	for round := range cfg.Rounds {
		r.round = round
		order := slices.Concat(systems[round%len(systems):], systems[:round%len(systems)])
		r.logf("round %d of %d: %v first", round+1, cfg.Rounds, order[0].Name())
		for _, w := range r.workloads() {
			r.logf(" %s", w.name)
			for _, s := range order {
				r.settle(ctx, systems)
				if err := w.run(ctx, s); err != nil && !errors.Is(err, errNotApplicable) {
					if ctx.Err() != nil {
						return res, ctx.Err()
					}
					fail(s, w.name, err)
				}
				if m, ok := s.(meter); ok && s.Name() != "git" {
					if rss, err := m.PeakRSS(); err == nil {
						var now string
						if ms, ok := s.(interface{ MemStats(context.Context) string }); ok {
							now = "; now: " + ms.MemStats(ctx)
						}
						r.logf("  %-8s peak RSS so far %.0f MiB%s", s.Name(), float64(rss)/(1<<20), now)
					}
				}
			}
		}
	}
	r.peakRSS(systems, "rss", fmt.Sprintf("Peak RSS over the load and %d %s (server process; git: the largest git command)", cfg.Rounds, plural(cfg.Rounds, "round", "rounds")))

	scale := cfg.WatchScale
	if len(cfg.Workloads) > 0 && !slices.Contains(cfg.Workloads, "watch") {
		scale = nil
	}
	for _, n := range scale {
		r.logf("watch fan-out: %d watchers", n)
		for _, s := range systems {
			run, err := r.watch(ctx, s, n)
			if errors.Is(err, errNotApplicable) {
				continue
			}
			if err != nil {
				run.Err = err.Error()
			}
			r.logWatch(run)
			res.WatchScale = append(res.WatchScale, run)
		}
	}
	if len(scale) > 0 {
		r.peakRSS(systems, "rss.scale", "Peak RSS including the larger watch fan-outs (server process)")
	}
	stopSampler()
	res.Elapsed = time.Since(res.Started)
	if err := r.report(); err != nil {
		return res, err
	}
	return res, errors.Join(failures...)
}

func newSystems(cfg Config, work string) ([]System, error) {
	var out []System
	for _, name := range cfg.Systems {
		dir := filepath.Join(work, name)
		var (
			s   System
			err error
		)
		switch name {
		case "gitstate":
			s, err = newGitstate(cfg.Source, dir)
		case "etcd":
			s, err = newEtcd(dir, false)
		case "etcd-shared":
			s, err = newEtcdShared(dir)
		case "git":
			s, err = newGit(dir)
		default:
			err = fmt.Errorf("unknown system %q (want gitstate, etcd, etcd-shared, git)", name)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("no system to run")
	}
	return out, nil
}

// load loads the big dataset everywhere, saves the servers' cold copies,
// then loads the small dataset.
func (r *runner) load(ctx context.Context, systems []System) error {
	big := r.cfg.Big
	for _, s := range systems {
		r.logf("loading %s: %d keys in %d commits", s.Name(), big.Keys, big.Commits)
		t := time.Now()
		if err := s.Load(ctx, big); err != nil {
			return fmt.Errorf("load %s: %w", s.Name(), err)
		}
		d := time.Since(t)
		m := Metric{ID: "load", Title: fmt.Sprintf("Load %d keys as %d commits of %d keys, 16 clients", big.Keys, big.Commits, big.perCommit()), Unit: "commits/s"}
		if s.Name() == "git" {
			r.res.note(m, s.Name(), fmt.Sprintf("fast-import: %.0f", float64(big.Commits)/d.Seconds()))
		} else {
			r.res.add(m, s.Name(), float64(big.Commits)/d.Seconds())
		}
		r.logf("  %-8s loaded in %v (%.0f commits/s)", s.Name(), d.Round(time.Millisecond), float64(big.Commits)/d.Seconds())
		if srv, ok := s.(server); ok {
			if err := srv.SaveColdCopy(ctx); err != nil {
				return fmt.Errorf("%s: %w", s.Name(), err)
			}
		}
	}
	for _, s := range systems {
		if err := s.Load(ctx, r.cfg.Small); err != nil && !errors.Is(err, errNotApplicable) {
			return fmt.Errorf("load %s: %w", s.Name(), err)
		}
	}
	return nil
}

type workload struct {
	id, name string
	run      func(ctx context.Context, s System) error
}

// workloads returns the workloads of a round, in order: all of them, or
// those Config.Workloads names.
func (r *runner) workloads() []workload {
	all := []workload{
		{"get", "get", r.get},
		{"put1", "put, 1 writer", func(ctx context.Context, s System) error { return r.put(ctx, s, 1) }},
		{"putN", fmt.Sprintf("put, %d writers", r.cfg.Clients), func(ctx context.Context, s System) error { return r.put(ctx, s, r.cfg.Clients) }},
		{"list", "list", r.list},
		{"txn", "txn, big", func(ctx context.Context, s System) error { return r.txn(ctx, s, r.cfg.Big) }},
		{"txn", "txn, small", func(ctx context.Context, s System) error { return r.txn(ctx, s, r.cfg.Small) }},
		{"watch", fmt.Sprintf("watch, %d watchers", r.cfg.Watchers), func(ctx context.Context, s System) error {
			run, err := r.watch(ctx, s, r.cfg.Watchers)
			if err != nil {
				return err
			}
			if run.Err != "" {
				return errors.New(run.Err)
			}
			r.addWatch(run)
			return nil
		}},
		{"cold", "cold start", r.coldStart},
	}
	if len(r.cfg.Workloads) == 0 {
		return all
	}
	return slices.DeleteFunc(all, func(w workload) bool { return !slices.Contains(r.cfg.Workloads, w.id) })
}

// peakRSS records every system's peak RSS so far.
func (r *runner) peakRSS(systems []System, id, title string) {
	for _, s := range systems {
		m, ok := s.(meter)
		if !ok {
			continue
		}
		rss, err := m.PeakRSS()
		if err != nil {
			continue
		}
		r.res.add(Metric{ID: id, Title: title, Unit: "MiB", Lower: true}, s.Name(), float64(rss)/(1<<20))
	}
}

// settle writes the machine's dirty pages back (sync(2)), then waits until
// the servers are quiet: together under 5% of a core over 200 ms, for at
// most cfg.Settle. It runs before each system's turn at a workload, so
// that the background work a turn leaves behind (etcd's backend commits
// and snapshots, gitstate's flushes, pack merges and index compactions)
// is not measured in the next system's window. The kernel writes dirty
// pages back 30 s after they were written: without the sync, the
// hundreds of MB a build, a load or an unsynced log leaves (Dirty in
// /proc/meminfo stayed at ~370 MB through a run's first windows) are
// written back during some later system's window, in its fsyncs' way.
func (r *runner) settle(ctx context.Context, systems []System) {
	const (
		every = 200 * time.Millisecond
		quiet = every / 20
	)
	if r.cfg.Settle <= 0 {
		return
	}
	cpu := func() time.Duration {
		var t time.Duration
		for _, s := range systems {
			if m, ok := s.(meter); ok && s.Name() != "git" {
				if c, err := m.CPU(); err == nil {
					t += c
				}
			}
		}
		return t
	}
	start := time.Now()
	syscall.Sync()
	if d := time.Since(start); d > time.Second {
		r.logf("  (sync took %v)", d.Round(100*time.Millisecond))
	}
	last := cpu()
	for time.Since(start) < r.cfg.Settle {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		now := cpu()
		if now-last < quiet {
			if d := time.Since(start); d > time.Second {
				r.logf("  (servers quiet after %v)", d.Round(100*time.Millisecond))
			}
			return
		}
		last = now
	}
	r.logf("  (servers still busy after %v: measuring anyway)", r.cfg.Settle)
}
