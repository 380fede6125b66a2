package api_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/watch"
)

// BenchmarkWatchFanout opens many watch streams over real HTTP on loopback,
// commits a revision every 10 ms, and measures for each revision the time
// from the commit's acknowledgement to each watcher reading its event:
// delivery p50 and p99 over every (revision, watcher), the p99 of the time
// to the last watcher, and the memory per watcher (client and server
// together, since both run in this process). Every watcher must receive
// every revision; a watcher whose stream the server closes resumes from its
// last id, as the SDK does, and the resumptions are reported. Run it with
// -benchtime 1x.
//
// Client and server share this process's file descriptors (two per
// watcher), so the largest case stays under the usual limit of 20000; the
// side-by-side harness in bench/ runs 10000 watchers in their own process.
func BenchmarkWatchFanout(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("watchers=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				watchFanout(b, n, 100)
			}
		})
	}
}

func watchFanout(b *testing.B, watchers, commits int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := storage.Open(ctx, b.TempDir(), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	hub := watch.NewHub(st, watch.Options{})
	defer hub.Close()
	srv := httptest.NewServer(api.New(api.Options{Store: st, Auth: userAuth{}, Watch: hub, WatchProgress: time.Hour}))
	defer srv.Close()
	repo, _ := st.Repo(storage.DefaultRepo)

	tr := &http.Transport{MaxIdleConnsPerHost: watchers, DialContext: (&net.Dialer{}).DialContext}
	hc := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	// recv[w][r] is when watcher w read revision r+1.
	recv := make([][]time.Time, watchers)
	var ready, done sync.WaitGroup
	var resumes atomic.Int64
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for w := range watchers {
		recv[w] = make([]time.Time, commits)
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			last, got, first := 0, 0, true
			for got < commits && ctx.Err() == nil {
				n, err := watchOnce(ctx, hc, srv.URL, last, func(rev int) {
					if rev >= 1 && rev <= commits && recv[w][rev-1].IsZero() {
						recv[w][rev-1] = time.Now()
						got++
					}
					last = max(last, rev)
				}, func() bool { return got >= commits }, first, &ready)
				first = false
				if err != nil && n == 0 && ctx.Err() == nil {
					time.Sleep(10 * time.Millisecond)
				}
				if got < commits && ctx.Err() == nil {
					resumes.Add(1)
				}
			}
		}()
	}
	ready.Wait()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	acked := make([]time.Time, commits)
	b.ResetTimer()
	tick := time.NewTicker(10 * time.Millisecond)
	for r := range commits {
		<-tick.C
		if _, err := repo.WriteOne(ctx, &storage.Batch{Ops: []storage.Op{{Kind: storage.OpPut, Key: "k", Value: []byte(strconv.Itoa(r))}}}); err != nil {
			b.Fatal(err)
		}
		acked[r] = time.Now()
	}
	tick.Stop()
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
		b.Fatal("watchers did not receive every revision within 60s")
	}
	b.StopTimer()
	var all, last []time.Duration
	for r := range commits {
		var worst time.Duration
		for w := range watchers {
			if recv[w][r].IsZero() {
				b.Fatalf("watcher %d missed revision %d", w, r+1)
			}
			d := recv[w][r].Sub(acked[r])
			all = append(all, d)
			worst = max(worst, d)
		}
		last = append(last, worst)
	}
	slices.Sort(all)
	slices.Sort(last)
	pct := func(ds []time.Duration, p float64) float64 {
		return float64(ds[int(float64(len(ds)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(all, 0.50), "p50-ms")
	b.ReportMetric(pct(all, 0.99), "p99-ms")
	b.ReportMetric(pct(last, 0.50), "last-p50-ms")
	b.ReportMetric(pct(last, 0.99), "last-p99-ms")
	b.ReportMetric(float64(resumes.Load()), "resumes")
	b.ReportMetric(float64(int64(after.HeapInuse+after.StackInuse)-int64(before.HeapInuse+before.StackInuse))/float64(watchers)/1024, "KiB/watcher")
}

// watchOnce opens one watch stream from revision from and calls seen for
// each revision id it reads until done says so or the stream ends. It
// calls ready.Done once the first stream is open (or has failed), when
// first is set. It returns how many ids it read.
func watchOnce(ctx context.Context, hc *http.Client, base string, from int, seen func(int), done func() bool, first bool, ready *sync.WaitGroup) (int, error) {
	signal := func() {
		if first {
			first = false
			ready.Done()
		}
	}
	defer signal()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/v1/repos/default/watch?from="+strconv.Itoa(from), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer watcher")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("watch: %s", resp.Status)
	}
	signal()
	rd := bufio.NewReaderSize(resp.Body, 4096)
	n := 0
	for !done() {
		line, err := rd.ReadSlice('\n')
		if err != nil {
			return n, err
		}
		if id, ok := strings.CutPrefix(string(line), "id: "); ok {
			rev, _ := strconv.Atoi(strings.TrimSpace(id))
			seen(rev)
			n++
		}
	}
	return n, nil
}
