package sidebyside

import (
	"sync"
	"time"
)

// Metric is one figure of the report, measured on one or more systems.
type Metric struct {
	ID    string
	Title string
	Unit  string // ops/s, ms, s, MiB, µs, events
	// Lower says that a lower value is better (a latency); otherwise
	// higher is (a throughput).
	Lower bool
}

// Results is everything a run measured: per metric and system, one value
// per round.
type Results struct {
	Config   Config
	Machine  Machine
	Versions Versions
	Started  time.Time
	Elapsed  time.Duration
	// LoadAvg holds the 1-minute load average, sampled through the run.
	LoadAvg []float64
	// Systems are the columns, in the order of the config.
	Systems []string
	// WatchScale holds the watch runs at Config.WatchScale watchers.
	WatchScale []WatchRun

	mu      sync.Mutex
	metrics []Metric
	values  map[string]map[string][]float64 // metric id → system → values
	notes   map[string]map[string]string    // metric id → system → why there is no value
}

// WatchRun is the outcome of one watch fan-out run.
type WatchRun struct {
	System   string
	Watchers int
	// Opened is how many streams were established (less than Watchers
	// when opening failed: Err says why).
	Opened  int
	Commits int
	// Delivered counts (watcher, revision) pairs received; Missing the
	// ones not received within the grace period after the last commit.
	Delivered, Missing int64
	// MinPerWatcher is the fewest revisions one watcher received.
	MinPerWatcher int
	// P50, P99 and Max are delays from the writer's acknowledgement (0 for
	// an event read before it); SendP50 and SendP99 from its request.
	P50, P99, Max    time.Duration
	SendP50, SendP99 time.Duration
	// BeforeAck counts the deliveries read before the writer had its
	// acknowledgement.
	BeforeAck int64
	// ClientCPU is the harness's CPU time during the run, ServerCPU the
	// server's.
	ClientCPU, ServerCPU time.Duration
	Err                  string
}

func newResults(cfg Config) *Results {
	return &Results{
		Config: cfg,
		values: map[string]map[string][]float64{},
		notes:  map[string]map[string]string{},
	}
}

func (r *Results) define(m Metric) {
	if _, ok := r.values[m.ID]; !ok {
		r.metrics = append(r.metrics, m)
		r.values[m.ID] = map[string][]float64{}
		r.notes[m.ID] = map[string]string{}
	}
}

// add records one round's value of m on system.
func (r *Results) add(m Metric, system string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.define(m)
	r.values[m.ID][system] = append(r.values[m.ID][system], v)
}

// note records why system has no value for m.
func (r *Results) note(m Metric, system, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.define(m)
	r.notes[m.ID][system] = why
}

// Median returns the median over the rounds of metric id on system.
func (r *Results) Median(id, system string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.values[id][system]
	if len(v) == 0 {
		return 0, false
	}
	return median(v), true
}

// Values returns the per-round values of metric id on system.
func (r *Results) Values(id, system string) []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]float64(nil), r.values[id][system]...)
}

// Metrics returns the metrics in the order they were first measured.
func (r *Results) Metrics() []Metric {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Metric(nil), r.metrics...)
}

func (r *Results) noteOf(id, system string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.notes[id][system]
}
