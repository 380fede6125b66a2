package sidebyside

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if IsEtcdServer() {
		os.Exit(EtcdServerMain())
	}
	os.Exit(m.Run())
}

// TestRun runs the whole harness at its smallest: every system, every
// workload, the report.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gitstate and runs three servers: not in -short")
	}
	wd, _ := os.Getwd()
	src, ok := FindSource(wd)
	if !ok {
		t.Skip("not inside a gitstate checkout")
	}
	cfg := QuickConfig()
	cfg.Source = src
	cfg.WorkDir = t.TempDir()
	cfg.Out = filepath.Join(t.TempDir(), "RESULTS.md")
	cfg.Command = "go test"
	cfg.Big = Dataset{Name: "default", Keys: 2_000, Commits: 200}
	cfg.Small = Dataset{Name: "small", Keys: 1_000, Commits: 50}
	cfg.Clients = 8
	cfg.Duration, cfg.Warmup = 300*time.Millisecond, 50*time.Millisecond
	cfg.Watchers = 20
	cfg.WatchScale = []int{40}
	cfg.WatchFor, cfg.WatchEvery, cfg.WatchGrace = 500*time.Millisecond, 10*time.Millisecond, 5*time.Second
	var log bytes.Buffer
	cfg.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	for _, m := range []string{"get.ops", "putN.ops", "put1.p50", "listkeys.p50", "txn.2000.total.p50", "txn.1000.total.p50", "watch.p99", "start.cold", "rss"} {
		for _, s := range []string{"gitstate", "etcd", "git", "etcd-shared"} {
			_, ok := res.Median(m, s)
			na := s == "git" && (strings.HasPrefix(m, "watch") || strings.HasPrefix(m, "start")) ||
				strings.HasPrefix(s, "etcd") && m == "txn.1000.total.p50" ||
				s == "etcd-shared" && (strings.HasPrefix(m, "watch") || strings.HasPrefix(m, "start"))
			if ok == na {
				t.Errorf("%s on %s: measured %v, want %v", m, s, ok, !na)
			}
		}
	}
	for _, s := range []string{"gitstate", "etcd"} {
		if v := res.Values("watch.missing", s); len(v) != 1 || v[0] != 0 {
			t.Errorf("%s: watch events missing: %v", s, v)
		}
	}
	if len(res.WatchScale) != 2 {
		t.Errorf("watch scale runs: %d, want 2", len(res.WatchScale))
	}
	b, err := os.ReadFile(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Machine", "## The targets of issue 8", "gitstate/etcd", "gitstate/git", "gitstate/etcd-shared", "## Larger watch fan-outs"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s\nreport:\n%s", log.String(), b)
	}
}

func TestReadSSE(t *testing.T) {
	stream := "event: progress\nid: 3\ndata: {\"revision\":3}\n\n" +
		"id: 4\nevent: revision\ndata: " + strings.Repeat("x", 40000) + "\n\n" +
		": comment\n\nid: 5\nevent: revision\ndata: {}\n\n"
	var got []int64
	readSSE(strings.NewReader(stream), func(rev int64) { got = append(got, rev) })
	if len(got) != 2 || got[0] != 4 || got[1] != 5 {
		t.Fatalf("got %v, want [4 5]", got)
	}
}

func TestPercentile(t *testing.T) {
	v := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 5}, {0.99, 10}, {0.1, 1}, {1, 10}} {
		if got := percentile(v, tc.p); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
}
