package sidebyside

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// percentile returns the p-quantile (0 < p <= 1) of sorted, by the
// nearest-rank method.
func percentile(sorted []int64, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return time.Duration(sorted[max(0, min(i, len(sorted)-1))])
}

// median returns the median of v (the mean of the middle two when even).
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// loopResult is what a closed loop measured in its window.
type loopResult struct {
	Ops     int
	Elapsed time.Duration
	Lat     []int64       // latencies of the ops completed in the window, sorted, ns
	CPU     time.Duration // the system's CPU time in the window (0: unknown)
	// ClientCPU is the benchmark process's own CPU time in the window: the
	// clients' (every server runs in a process of its own). On this
	// 2-core machine the clients and the server share the cores, so a
	// throughput is bounded by the two together.
	ClientCPU time.Duration
}

func (r loopResult) throughput() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

// clientCPUPerOp returns the clients' CPU time per op in microseconds.
func (r loopResult) clientCPUPerOp() float64 {
	if r.Ops == 0 {
		return 0
	}
	return float64(r.ClientCPU.Microseconds()) / float64(r.Ops)
}

// cpuPerOp returns the system's CPU time per op in microseconds.
func (r loopResult) cpuPerOp() float64 {
	if r.Ops == 0 {
		return 0
	}
	return float64(r.CPU.Microseconds()) / float64(r.Ops)
}

// closedLoop runs op in workers goroutines, each calling it again as soon
// as it returns, for warmup and then for d. The ops that end within the d
// window count, with their whole latency (an op queued behind others, as
// git's writers are, may have started before the window). The loop ends by
// cancelling the ops still in flight. m, when not nil, is read at the
// window's start and end; onWindow, when not nil, is called at the
// window's start and what it returns at its end.
func closedLoop(ctx context.Context, workers int, warmup, d time.Duration, m meter, onWindow func() func(), op func(ctx context.Context, w, i int) error) (loopResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		phase    atomic.Int32 // 0 warming up, 1 measuring, 2 done
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	lats := make([][]int64, workers)
	for w := range workers {
		wg.Go(func() {
			for i := 0; phase.Load() != 2 && ctx.Err() == nil; i++ {
				t := time.Now()
				if err := op(ctx, w, i); err != nil {
					if phase.Load() != 2 {
						errOnce.Do(func() { firstErr = err })
						cancel()
					}
					return
				}
				if phase.Load() == 1 {
					lats[w] = append(lats[w], int64(time.Since(t)))
				}
			}
		})
	}
	var res loopResult
	sleepCtx(ctx, warmup)
	end := func() {}
	if onWindow != nil {
		end = onWindow()
	}
	cpu0, self0 := cpuOf(m), selfCPU()
	t0 := time.Now()
	phase.Store(1)
	sleepCtx(ctx, d)
	phase.Store(2)
	res.Elapsed = time.Since(t0)
	res.CPU = cpuOf(m) - cpu0
	res.ClientCPU = selfCPU() - self0
	end()
	cancel()
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	for _, l := range lats {
		res.Lat = append(res.Lat, l...)
	}
	slices.Sort(res.Lat)
	res.Ops = len(res.Lat)
	return res, nil
}

func cpuOf(m meter) time.Duration {
	if m == nil {
		return 0
	}
	d, _ := m.CPU()
	return d
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// parallel calls fn(ctx, i) for i in [0, n) from up to workers goroutines,
// stopping at the first error, which it returns.
func parallel(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					errOnce.Do(func() { firstErr = err })
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}
