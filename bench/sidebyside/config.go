package sidebyside

import (
	"io"
	"time"
)

// Config says what a run measures, and how long.
type Config struct {
	// Quick marks a smoke run (in the report).
	Quick bool
	// Rounds is how many times every workload runs on every system; the
	// report gives medians over rounds.
	Rounds int
	// Big is the dataset GET, PUT, list, watch and the first transaction
	// run on; Small the one the second transaction runs on.
	Big, Small Dataset
	// Clients is the number of concurrent clients of GET and of the
	// concurrent PUT.
	Clients int
	// Duration is how long each closed-loop measurement lasts, after
	// Warmup.
	Duration, Warmup time.Duration
	// Watchers is the watch fan-out measured every round; WatchScale the
	// larger ones tried once, after the rounds.
	Watchers   int
	WatchScale []int
	// WatchFor is how long the watch writer commits, one commit every
	// WatchEvery; watchers then get WatchGrace to receive the last ones.
	WatchFor, WatchEvery, WatchGrace time.Duration
	// Settle bounds the wait, before each system's turn at a workload, for
	// the servers to be quiet (see runner.settle); 0: no wait.
	Settle time.Duration
	// Systems names the systems to run: gitstate, etcd, git, etcd-shared.
	Systems []string
	// Workloads names the workloads to run (all when empty): get, put1,
	// putN, list, txn, watch, cold.
	Workloads []string
	// Profile, when set, is a directory where every measurement window of
	// a server is profiled with `perf record -g` (Linux perf must be
	// installed and allowed): <system>-<workload>-<round>.perf.data, and a
	// text report beside it.
	Profile string
	// Source is the gitstate checkout to build the server from.
	Source string
	// WorkDir is where the systems keep their data (a new temporary
	// directory when empty); Keep keeps it after the run.
	WorkDir string
	Keep    bool
	// Out is the Markdown report to write (the report goes to Log when
	// empty); Command the command line it quotes.
	Out     string
	Command string
	// Log receives progress lines (none when nil).
	Log io.Writer
}

// DefaultConfig is the full run: about 12 minutes on a 2-core machine.
func DefaultConfig() Config {
	return Config{
		Rounds:     3,
		Big:        Dataset{Name: "default", Keys: 100_000, Commits: 10_000},
		Small:      Dataset{Name: "small", Keys: 1_000, Commits: 100},
		Clients:    64,
		Duration:   4 * time.Second,
		Warmup:     time.Second,
		Watchers:   1_000,
		WatchScale: []int{10_000},
		WatchFor:   10 * time.Second,
		WatchEvery: 10 * time.Millisecond,
		WatchGrace: 10 * time.Second,
		Settle:     10 * time.Second,
		Systems:    []string{"gitstate", "etcd", "git", "etcd-shared"},
		Out:        "RESULTS.md",
	}
}

// QuickConfig is a smoke run of about a minute: small datasets, one round,
// short windows, 100 watchers.
func QuickConfig() Config {
	c := DefaultConfig()
	c.Quick = true
	c.Rounds = 1
	c.Big = Dataset{Name: "default", Keys: 5_000, Commits: 500}
	c.Duration = time.Second
	c.Warmup = 200 * time.Millisecond
	c.Watchers = 100
	c.WatchScale = nil
	c.WatchFor = 2 * time.Second
	c.WatchGrace = 5 * time.Second
	c.Settle = 2 * time.Second
	c.Out = ""
	return c
}
