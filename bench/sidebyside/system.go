package sidebyside

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// errNotApplicable is returned by a System for a workload it has no
// counterpart for (a watch on plain Git); the workload is reported n/a.
var errNotApplicable = errors.New("not applicable")

// System is one store under test, driven the way its users drive it. The
// workloads call it from many goroutines at once; worker numbers a client
// (0 to the number of clients - 1), so that a system can give each client
// its own connection or process.
type System interface {
	// Name is the column heading: gitstate, etcd, git.
	Name() string
	// Start starts the system's server, if it has one.
	Start(ctx context.Context) error
	// Load writes ds's keys in ds.Commits commits (or revisions).
	Load(ctx context.Context, ds Dataset) error
	// Get reads key at head from the big dataset.
	Get(ctx context.Context, worker int, key string) error
	// Put writes key in the big dataset as its own durable commit and
	// returns its revision (0 where the system has none).
	Put(ctx context.Context, worker int, key string, value []byte) (int64, error)
	// List lists the keys under prefix in ds, with their values when
	// values is set, and returns how many it got.
	List(ctx context.Context, ds Dataset, prefix string, values bool) (int, error)
	// Txn writes keys (values[i] to keys[i]) in ds as one atomic change,
	// previewing it first where the system can.
	Txn(ctx context.Context, ds Dataset, keys []string, values [][]byte) (TxnTiming, error)
	// Close stops everything Start started.
	Close() error
}

// TxnTiming is how long one transaction took: Total from open to commit,
// PreviewCommit from the preview to the commit's acknowledgement (zero
// where the system has no preview).
type TxnTiming struct {
	Total, PreviewCommit time.Duration
}

// watchable is a System with watch streams.
type watchable interface {
	System
	// Head returns the current revision of the big dataset.
	Head(ctx context.Context) (int64, error)
	// OpenWatchers opens n watch streams on the big dataset, starting
	// after the current head, and returns once all are established. Each
	// stream is read by one goroutine, which calls got(i, rev) for every
	// revision stream i receives. stop closes them and waits for the
	// goroutines. opened tells how many were established when err is set.
	OpenWatchers(ctx context.Context, n int, got func(i int, rev int64)) (stop func(), opened int, err error)
}

// server is a System run as a server process.
type server interface {
	System
	// SaveColdCopy stops the server, copies its data directory aside for
	// ColdStart and starts it again.
	SaveColdCopy(ctx context.Context) error
	// ColdStart starts a second server on the copy, from nothing it can
	// throw away (gitstate: its index deleted), and times it to its first
	// answered GET at head; then starts it once more as it is left (warm).
	// Only one server runs at a time if the system needs it.
	ColdStart(ctx context.Context) (ColdStart, error)
}

// ColdStart is the outcome of a cold (and warm) start.
type ColdStart struct {
	Cold, Warm time.Duration
	// ColdRSS is the peak RSS of the cold-started process.
	ColdRSS int64
	// Revisions is the head revision the server started on.
	Revisions int64
}

// meter is a System whose resource use can be read: the server process's,
// or (plain Git) the git commands' it ran.
type meter interface {
	// CPU returns the CPU time used so far.
	CPU() (time.Duration, error)
	// PeakRSS returns the peak resident set size so far, in bytes.
	PeakRSS() (int64, error)
}

// batchGetter is a System with a second way of reading: plain Git through
// long-lived `git cat-file --batch` processes.
type batchGetter interface {
	GetBatch(ctx context.Context, worker int, key string) error
	// StopBatch ends what GetBatch started.
	StopBatch()
}

// Dataset is a set of keys that every system is loaded with before the
// rounds: Keys keys laid out as a GitOps repository would be,
// apps/app<NNN>/env<N>/res<NNN>.yaml (1,000 keys per app, 100 per
// directory), written in Commits commits of Keys/Commits keys each.
type Dataset struct {
	// Name is the gitstate repo (and plain Git repository) it goes to.
	Name          string
	Keys, Commits int
}

// datasetKey returns the i'th key of a dataset.
func datasetKey(i int) string {
	return fmt.Sprintf("apps/app%03d/env%d/res%03d.yaml", i/1000, i/100%10, i%100)
}

// perCommit returns how many keys each commit of ds writes.
func (ds Dataset) perCommit() int { return (ds.Keys + ds.Commits - 1) / ds.Commits }

// commitKeys returns the range of key numbers commit c of ds writes.
func (ds Dataset) commitKeys(c int) (lo, hi int) {
	lo = c * ds.perCommit()
	return lo, min(lo+ds.perCommit(), ds.Keys)
}

// yamlValue returns a Kubernetes-like YAML document of about size bytes
// for resource i; gen makes it differ from the previous ones.
func yamlValue(name string, i int, gen int64, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s-%d\n  labels:\n    generation: \"%d\"\n", name, i, gen)
	b.WriteString("spec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n      - name: main\n        image: registry.example.com/app:1.2.3\n        env:\n")
	for b.Len()+44 < size {
		b.WriteString("        - {name: SETTING, value: \"a value\"}\n")
	}
	return []byte(b.String())
}
