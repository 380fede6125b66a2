package sidebyside

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"
)

// runner runs the workloads and records their figures.
type runner struct {
	cfg   Config
	res   *Results
	gen   atomic.Int64 // makes every written value new
	round int
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Log != nil {
		fmt.Fprintf(r.cfg.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
}

func meterOf(s System) meter {
	m, _ := s.(meter)
	return m
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// addLoop records a closed loop's throughput, p50, p99 and (when measured)
// the system's CPU time per op, as metrics id.ops, id.p50, id.p99, id.cpu.
func (r *runner) addLoop(id, title string, s System, res loopResult) {
	r.res.add(Metric{ID: id + ".ops", Title: title + ": throughput", Unit: "ops/s"}, s.Name(), res.throughput())
	r.res.add(Metric{ID: id + ".p50", Title: title + ": p50", Unit: "ms", Lower: true}, s.Name(), ms(percentile(res.Lat, 0.50)))
	r.res.add(Metric{ID: id + ".p99", Title: title + ": p99", Unit: "ms", Lower: true}, s.Name(), ms(percentile(res.Lat, 0.99)))
	if res.CPU > 0 {
		r.res.add(Metric{ID: id + ".cpu", Title: title + ": server CPU per op", Unit: "µs", Lower: true}, s.Name(), res.cpuPerOp())
	}
	if res.ClientCPU > 0 {
		r.res.add(Metric{ID: id + ".clientcpu", Title: title + ": the benchmark clients' CPU per op", Unit: "µs", Lower: true}, s.Name(), res.clientCPUPerOp())
	}
	r.logf("  %-8s %-28s %8.0f ops/s  p50 %7.3f ms  p99 %7.3f ms  cpu/op %6.0f µs  client %6.0f µs", s.Name(), id, res.throughput(),
		ms(percentile(res.Lat, 0.50)), ms(percentile(res.Lat, 0.99)), res.cpuPerOp(), res.clientCPUPerOp())
}

// get reads random keys of the big dataset at head from Clients clients.
func (r *runner) get(ctx context.Context, s System) error {
	n := r.cfg.Big.Keys
	title := fmt.Sprintf("GET at head, %d clients", r.cfg.Clients)
	res, err := closedLoop(ctx, r.cfg.Clients, r.cfg.Warmup, r.cfg.Duration, meterOf(s), r.profile(s, "get"), func(ctx context.Context, w, _ int) error {
		return s.Get(ctx, w, datasetKey(rand.IntN(n)))
	})
	if err != nil {
		return err
	}
	r.addLoop("get", title, s, res)
	b, ok := s.(batchGetter)
	if !ok {
		return nil
	}
	defer b.StopBatch()
	res, err = closedLoop(ctx, r.cfg.Clients, r.cfg.Warmup, r.cfg.Duration, nil, nil, func(ctx context.Context, w, _ int) error {
		return b.GetBatch(ctx, w, datasetKey(rand.IntN(n)))
	})
	if err != nil {
		return err
	}
	r.addLoop("getbatch", title+" (git: one long-lived `git cat-file --batch` per client)", s, res)
	return nil
}

// putKey is writer w's i'th key: every writer has its own directories.
func putKey(w, i int) string {
	return fmt.Sprintf("apps/put%02d/env%d/res%03d.yaml", w, i/100%10, i%100)
}

// put writes distinct values to distinct keys from writers writers.
func (r *runner) put(ctx context.Context, s System, writers int) error {
	title := "PUT, 1 writer"
	id := "put1"
	if writers > 1 {
		title = fmt.Sprintf("PUT, %d writers", writers)
		id = "putN"
	}
	res, err := closedLoop(ctx, writers, r.cfg.Warmup, r.cfg.Duration, meterOf(s), r.profile(s, id), func(ctx context.Context, w, i int) error {
		_, err := s.Put(ctx, w, putKey(w, i), yamlValue("put", i, r.gen.Add(1), 250))
		return err
	})
	if err != nil {
		return err
	}
	r.addLoop(id, title, s, res)
	return nil
}

// listPrefix is a prefix holding 1,000 keys of every dataset.
const listPrefix = "apps/app000/"

// list lists listPrefix in the big dataset, without and with values.
func (r *runner) list(ctx context.Context, s System) error {
	want := min(r.cfg.Big.Keys, 1000)
	for _, values := range []bool{false, true} {
		id, title := "listkeys", "List 1,000 keys"
		if values {
			id, title = "listvalues", "List 1,000 keys with values"
		}
		res, err := closedLoop(ctx, 1, r.cfg.Warmup, r.cfg.Duration, meterOf(s), r.profile(s, id), func(ctx context.Context, _, _ int) error {
			n, err := s.List(ctx, r.cfg.Big, listPrefix, values)
			if err == nil && n != want {
				err = fmt.Errorf("list %s: %d keys, want %d", listPrefix, n, want)
			}
			return err
		})
		if errors.Is(err, errNotApplicable) {
			r.res.note(Metric{ID: id + ".p50", Title: title + ": p50", Unit: "ms", Lower: true}, s.Name(), "n/a")
			continue
		}
		if err != nil {
			return err
		}
		r.res.add(Metric{ID: id + ".p50", Title: title + ": p50", Unit: "ms", Lower: true}, s.Name(), ms(percentile(res.Lat, 0.5)))
		r.res.add(Metric{ID: id + ".p99", Title: title + ": p99", Unit: "ms", Lower: true}, s.Name(), ms(percentile(res.Lat, 0.99)))
		r.res.add(Metric{ID: id + ".cpu", Title: title + ": server CPU per list", Unit: "µs", Lower: true}, s.Name(), res.cpuPerOp())
		r.logf("  %-8s %-28s p50 %7.3f ms  p99 %7.3f ms  cpu/op %6.0f µs", s.Name(), id, ms(percentile(res.Lat, 0.5)), ms(percentile(res.Lat, 0.99)), res.cpuPerOp())
	}
	return nil
}

// txnKeys returns the 10 keys of transaction i: one resource in each
// environment of app000, so that it touches 10 directories.
func txnKeys(i int) []string {
	keys := make([]string, 10)
	for j := range keys {
		keys[j] = fmt.Sprintf("apps/app000/env%d/res%03d.yaml", j, i%100)
	}
	return keys
}

// txn runs 10-key transactions on ds, one at a time.
func (r *runner) txn(ctx context.Context, s System, ds Dataset) error {
	id := fmt.Sprintf("txn.%d", ds.Keys)
	title := fmt.Sprintf("10-key transaction, %d-key repo", ds.Keys)
	var total, pc []int64
	warm := time.Now().Add(r.cfg.Warmup)
	end := warm.Add(r.cfg.Duration)
	for i := 0; time.Now().Before(end) || len(total) < 5; i++ {
		measuring := time.Now().After(warm)
		keys := txnKeys(i)
		values := make([][]byte, len(keys))
		for j := range values {
			values[j] = yamlValue("txn", j, r.gen.Add(1), 300)
		}
		t, err := s.Txn(ctx, ds, keys, values)
		if errors.Is(err, errNotApplicable) {
			r.res.note(Metric{ID: id + ".total.p50", Title: title + ": open, write, preview, commit: p50", Unit: "ms", Lower: true}, s.Name(), "n/a")
			return nil
		}
		if err != nil {
			return err
		}
		if !measuring {
			continue
		}
		total = append(total, int64(t.Total))
		if t.PreviewCommit > 0 {
			pc = append(pc, int64(t.PreviewCommit))
		}
	}
	slices.Sort(total)
	slices.Sort(pc)
	r.res.add(Metric{ID: id + ".total.p50", Title: title + ": open, write, preview, commit: p50", Unit: "ms", Lower: true}, s.Name(), ms(percentile(total, 0.5)))
	r.res.add(Metric{ID: id + ".total.p99", Title: title + ": open, write, preview, commit: p99", Unit: "ms", Lower: true}, s.Name(), ms(percentile(total, 0.99)))
	if len(pc) > 0 {
		r.res.add(Metric{ID: id + ".pc.p50", Title: title + ": preview + commit: p50", Unit: "ms", Lower: true}, s.Name(), ms(percentile(pc, 0.5)))
		r.res.add(Metric{ID: id + ".pc.p99", Title: title + ": preview + commit: p99", Unit: "ms", Lower: true}, s.Name(), ms(percentile(pc, 0.99)))
	} else {
		r.res.note(Metric{ID: id + ".pc.p50", Title: title + ": preview + commit: p50", Unit: "ms", Lower: true}, s.Name(), "no preview")
	}
	r.logf("  %-8s %-28s total p50 %7.2f ms  preview+commit p50 %7.2f ms  (%d txns)", s.Name(), id,
		ms(percentile(total, 0.5)), ms(percentile(pc, 0.5)), len(total))
	return nil
}

// watch opens n watchers, commits one change every WatchEvery for
// WatchFor, and measures for every watcher and revision the delay from
// the writer's acknowledgement to the watcher's receipt.
func (r *runner) watch(ctx context.Context, s System, n int) (WatchRun, error) {
	run := WatchRun{System: s.Name(), Watchers: n}
	ws, ok := s.(watchable)
	if !ok {
		return run, errNotApplicable
	}
	head, err := ws.Head(ctx)
	if err != nil {
		return run, err
	}
	maxCommits := int(r.cfg.WatchFor/r.cfg.WatchEvery) + 1
	// recv[i][k] is when watcher i received revision head+1+k, plus one
	// (zero: not received), in nanoseconds since base.
	recv := make([][]int64, n)
	for i := range recv {
		recv[i] = make([]int64, maxCommits)
	}
	counts := make([]atomic.Int32, n)
	base := time.Now()
	stop, opened, err := ws.OpenWatchers(ctx, n, func(i int, rev int64) {
		k := rev - head - 1
		if k >= 0 && k < int64(maxCommits) && recv[i][k] == 0 {
			recv[i][k] = int64(time.Since(base)) + 1
			counts[i].Add(1)
		}
	})
	run.Opened = opened
	if err != nil {
		run.Err = err.Error()
		return run, nil
	}
	defer stop()
	m := meterOf(s)
	cpu0, self0 := cpuOf(m), selfCPU()
	sends, acks := make([]int64, maxCommits), make([]int64, maxCommits)
	tick := time.NewTicker(r.cfg.WatchEvery)
	end := time.Now().Add(r.cfg.WatchFor)
	for run.Commits < maxCommits && time.Now().Before(end) {
		<-tick.C
		k := run.Commits
		sends[k] = int64(time.Since(base))
		rev, err := s.Put(ctx, 0, fmt.Sprintf("apps/watch/env0/res%03d.yaml", k%100), yamlValue("watch", k, r.gen.Add(1), 250))
		if err != nil {
			tick.Stop()
			return run, err
		}
		if rev != head+1+int64(k) {
			tick.Stop()
			return run, fmt.Errorf("watch writer: revision %d, want %d: another writer?", rev, head+1+int64(k))
		}
		acks[k] = int64(time.Since(base))
		run.Commits++
	}
	tick.Stop()
	for grace := time.Now().Add(r.cfg.WatchGrace); time.Now().Before(grace); time.Sleep(5 * time.Millisecond) {
		if allGot(counts, run.Commits) {
			break
		}
	}
	stop() // the watchers' goroutines are done: recv is ours
	run.ServerCPU = cpuOf(m) - cpu0
	run.ClientCPU = selfCPU() - self0
	delays := make([]int64, 0, n*run.Commits)
	fromSend := make([]int64, 0, n*run.Commits)
	run.MinPerWatcher = run.Commits
	for i := range recv {
		got := 0
		for k, t := range recv[i][:run.Commits] {
			if t == 0 {
				continue
			}
			got++
			d := t - 1 - acks[k]
			if d < 0 {
				run.BeforeAck++
				d = 0
			}
			delays = append(delays, d)
			fromSend = append(fromSend, t-1-sends[k])
		}
		run.MinPerWatcher = min(run.MinPerWatcher, got)
	}
	slices.Sort(delays)
	slices.Sort(fromSend)
	run.SendP50, run.SendP99 = percentile(fromSend, 0.5), percentile(fromSend, 0.99)
	run.Delivered = int64(len(delays))
	run.Missing = int64(n*run.Commits) - run.Delivered
	run.P50, run.P99 = percentile(delays, 0.5), percentile(delays, 0.99)
	if len(delays) > 0 {
		run.Max = time.Duration(delays[len(delays)-1])
	}
	return run, nil
}

// addWatch records a round's watch run.
func (r *runner) addWatch(run WatchRun) {
	name := run.System
	title := fmt.Sprintf("Watch, %d watchers, a commit every %v", run.Watchers, r.cfg.WatchEvery)
	r.res.add(Metric{ID: "watch.p50", Title: title + ": delivery delay p50", Unit: "ms", Lower: true}, name, ms(run.P50))
	r.res.add(Metric{ID: "watch.p99", Title: title + ": delivery delay p99", Unit: "ms", Lower: true}, name, ms(run.P99))
	r.res.add(Metric{ID: "watch.send.p50", Title: title + ": delay from the write's request (not its ack) p50", Unit: "ms", Lower: true}, name, ms(run.SendP50))
	r.res.add(Metric{ID: "watch.send.p99", Title: title + ": delay from the write's request (not its ack) p99", Unit: "ms", Lower: true}, name, ms(run.SendP99))
	r.res.add(Metric{ID: "watch.max", Title: title + ": delivery delay max", Unit: "ms", Lower: true}, name, ms(run.Max))
	r.res.add(Metric{ID: "watch.missing", Title: title + ": events missing", Unit: "events", Lower: true}, name, float64(run.Missing))
	r.res.add(Metric{ID: "watch.commits", Title: title + ": commits made", Unit: "commits"}, name, float64(run.Commits))
	r.res.add(Metric{ID: "watch.clientcpu", Title: title + ": harness (client) CPU", Unit: "% of a core", Lower: true}, name,
		100*run.ClientCPU.Seconds()/r.cfg.WatchFor.Seconds())
	r.logWatch(run)
}

func (r *runner) logWatch(run WatchRun) {
	if run.Err != "" {
		r.logf("  %-8s watch %d: opened %d: %s", run.System, run.Watchers, run.Opened, run.Err)
		return
	}
	r.logf("  %-8s watch %d: %d commits, p50 %.2f ms p99 %.2f ms max %.1f ms (from request: p50 %.2f p99 %.2f), missing %d, min/watcher %d, before ack %d, client CPU %v, server CPU %v",
		run.System, run.Watchers, run.Commits, ms(run.P50), ms(run.P99), ms(run.Max), ms(run.SendP50), ms(run.SendP99), run.Missing, run.MinPerWatcher, run.BeforeAck,
		run.ClientCPU.Round(time.Millisecond), run.ServerCPU.Round(time.Millisecond))
}

// coldStart times a server's start from nothing it can throw away.
func (r *runner) coldStart(ctx context.Context, s System) error {
	srv, ok := s.(server)
	if !ok {
		return errNotApplicable
	}
	cs, err := srv.ColdStart(ctx)
	if err != nil {
		return err
	}
	title := fmt.Sprintf("Start on %d keys in %d commits", r.cfg.Big.Keys, r.cfg.Big.Commits)
	r.res.add(Metric{ID: "start.cold", Title: title + ": cold (gitstate: index deleted and rebuilt)", Unit: "s", Lower: true}, s.Name(), cs.Cold.Seconds())
	r.res.add(Metric{ID: "start.warm", Title: title + ": warm (gitstate: index kept)", Unit: "s", Lower: true}, s.Name(), cs.Warm.Seconds())
	r.res.add(Metric{ID: "start.rss", Title: title + ": peak RSS of the cold start", Unit: "MiB", Lower: true}, s.Name(), float64(cs.ColdRSS)/(1<<20))
	r.logf("  %-8s cold start %.2f s (head %d), warm %.2f s, peak RSS %.0f MiB", s.Name(), cs.Cold.Seconds(), cs.Revisions, cs.Warm.Seconds(), float64(cs.ColdRSS)/(1<<20))
	return nil
}

// allGot reports whether every count is at least n.
func allGot(counts []atomic.Int32, n int) bool {
	for i := range counts {
		if int(counts[i].Load()) < n {
			return false
		}
	}
	return true
}
