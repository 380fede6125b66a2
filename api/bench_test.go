package api_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/storage"
)

// The API benchmarks run the handlers in process (httptest.NewRecorder, no
// network), on a repo holding 100,000 keys laid out as a GitOps repo is:
// apps/<app>/<env>/<resource>.yaml, 100 × 10 × 100. They measure what the
// server spends per request: routing, authentication, the handler, the
// store. The side-by-side benchmark in bench/ measures over real HTTP.

var (
	benchOnce sync.Once
	benchSrv  *api.Server
	benchDir  string
	benchErr  error
)

func benchKey(i int) string {
	return fmt.Sprintf("apps/app%03d/env%d/res%03d.yaml", i/1000, (i/100)%10, i%100)
}

func benchServer(b *testing.B) *api.Server {
	b.Helper()
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "gitstate-api-bench-")
		if benchErr != nil {
			return
		}
		var st *storage.Store
		st, benchErr = storage.Open(context.Background(), benchDir, storage.Options{})
		if benchErr != nil {
			return
		}
		repo, _ := st.Repo(storage.DefaultRepo)
		for start := 0; start < 100000; start += 10000 {
			var ops []storage.Op
			for i := start; i < start+10000; i++ {
				ops = append(ops, storage.Op{Kind: storage.OpPut, Key: benchKey(i), Value: fmt.Appendf(nil, "kind: ConfigMap\nname: res%d\ndata: %0400d\n", i, i)})
			}
			if _, benchErr = repo.WriteOne(context.Background(), &storage.Batch{Ops: ops}); benchErr != nil {
				return
			}
		}
		benchSrv = api.New(api.Options{Store: st, Auth: userAuth{}})
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchSrv
}

// reportCPU reports the process's CPU time per operation since start
// (cpu-ns/op): unlike ns/op it barely moves when other processes compete
// for the machine's cores.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func serve(b *testing.B, s http.Handler, method, target string, body []byte, want int) {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer alice")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != want {
		b.Fatalf("%s %s: %d %s", method, target, w.Code, w.Body)
	}
}

func BenchmarkAPIGetHead(b *testing.B) {
	s := benchServer(b)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			serve(b, s, "GET", "/v1/repos/default/kv/"+benchKey(i%100000), nil, 200)
		}
	})
	reportCPU(b, cpu)
}

// BenchmarkAPIGetOneKey reads one key over and over, as the side-by-side
// benchmark does.
func BenchmarkAPIGetOneKey(b *testing.B) {
	s := benchServer(b)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serve(b, s, "GET", "/v1/repos/default/kv/"+benchKey(4242), nil, 200)
		}
	})
	reportCPU(b, cpu)
}

func BenchmarkAPIList1000(b *testing.B) {
	s := benchServer(b)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		serve(b, s, "GET", "/v1/repos/default/kv?prefix=apps/app007/&limit=1000", nil, 200)
	}
	reportCPU(b, cpu)
}

func BenchmarkAPIList1000Values(b *testing.B) {
	s := benchServer(b)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		serve(b, s, "GET", "/v1/repos/default/kv?prefix=apps/app007/&limit=1000&values=true", nil, 200)
	}
	reportCPU(b, cpu)
}

var putSeq atomic.Int64

func benchPut(b *testing.B, writers int) {
	s := benchServer(b)
	b.ReportAllocs()
	b.SetParallelism(max(1, writers/2))
	b.ResetTimer()
	cpu := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := putSeq.Add(1)
			key := fmt.Sprintf("bench/w%02d/%02x/k%06d", n%64, (n/64)%256, n)
			serve(b, s, "PUT", "/v1/repos/default/kv/"+key, []byte(fmt.Sprint(n)), 200)
		}
	})
	reportCPU(b, cpu)
}

func BenchmarkAPIPut1(b *testing.B) {
	s := benchServer(b)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		n := putSeq.Add(1)
		serve(b, s, "PUT", fmt.Sprintf("/v1/repos/default/kv/seq/%x/%d", n%256, n), []byte("v"), 200)
	}
	reportCPU(b, cpu)
}

// BenchmarkAPIPut64 runs 64 concurrent writers (SetParallelism 32 on 2
// CPUs), each PUT its own durable commit.
func BenchmarkAPIPut64(b *testing.B) { benchPut(b, 64) }
