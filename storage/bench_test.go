package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The benchmarks share one store per process, preloaded with benchKeys keys
// laid out as apps/<app>/<env>/<resource>.yaml (100 apps, 10 envs, 100
// resources), written in benchBatches commits.
const (
	benchKeys    = 100_000
	benchBatches = 10
)

var bench struct {
	once sync.Once
	dir  string
	s    *Store
	r    *Repo
	err  error
	gen  atomic.Int64 // makes every benchmark write a new value
	next atomic.Int64 // the next key a Put benchmark writes
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.s != nil {
		bench.s.Close()
	}
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

func benchKey(i int) string {
	return fmt.Sprintf("apps/app%03d/env%d/res%03d.yaml", i/1000, i/100%10, i%100)
}

// benchValue is a YAML document of about 500 bytes.
func benchValue(i int, gen int64) []byte {
	v := fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: res%03d\n  namespace: app%03d-env%d\n  labels:\n    generation: \"%d\"\n",
		i%100, i/1000, i/100%10, gen)
	v += "spec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n      - name: main\n        image: registry.example.com/app:1.2.3\n"
	return []byte(v + "        env:\n" + strings.Repeat("        - {name: SETTING, value: \"some value\"}\n", (500-len(v))/48))
}

// benchRepo returns the preloaded repo, loading it on first use.
func benchRepo(b *testing.B) *Repo {
	b.Helper()
	bench.once.Do(func() {
		ctx := context.Background()
		if bench.dir, bench.err = os.MkdirTemp("", "gitstate-bench-"); bench.err != nil {
			return
		}
		if bench.s, bench.err = Open(ctx, bench.dir, Options{}); bench.err != nil {
			return
		}
		if bench.r, bench.err = bench.s.Repo(DefaultRepo); bench.err != nil {
			return
		}
		per := benchKeys / benchBatches
		for n := range benchBatches {
			ops := make([]Op, 0, per)
			for i := n * per; i < (n+1)*per; i++ {
				ops = append(ops, Op{Kind: OpPut, Key: benchKey(i), Value: benchValue(i, 0)})
			}
			if _, bench.err = bench.r.WriteOne(ctx, &Batch{Ops: ops}); bench.err != nil {
				return
			}
		}
		bench.err = bench.s.Flush()
	})
	if bench.err != nil {
		b.Fatalf("preload: %v", bench.err)
	}
	return bench.r
}

func reportOpsPerSec(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "ops/s")
	}
}

func BenchmarkGetHead(b *testing.B) {
	r := benchRepo(b)
	ctx := context.Background()
	b.Run("single", func(b *testing.B) {
		b.ReportAllocs()
		rng := rand.New(rand.NewPCG(1, 1))
		for b.Loop() {
			if _, err := r.Get(ctx, benchKey(rng.IntN(benchKeys)), 0); err != nil {
				b.Fatal(err)
			}
		}
		reportOpsPerSec(b)
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var seed atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			rng := rand.New(rand.NewPCG(seed.Add(1), 2))
			for pb.Next() {
				if _, err := r.Get(ctx, benchKey(rng.IntN(benchKeys)), 0); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportOpsPerSec(b)
	})
}

// BenchmarkGetOldRevision reads a key at one of the preload's revisions,
// from Git's trees and packs rather than from the index.
func BenchmarkGetOldRevision(b *testing.B) {
	r := benchRepo(b)
	ctx := context.Background()
	b.ReportAllocs()
	rng := rand.New(rand.NewPCG(3, 3))
	per := benchKeys / benchBatches
	for b.Loop() {
		rev := 1 + rng.IntN(benchBatches-1) // never head
		i := rng.IntN(rev * per)            // a key written at or before rev
		v, err := r.Get(ctx, benchKey(i), int64(rev))
		if err != nil {
			b.Fatal(err)
		}
		if v.ModRevision != int64(i/per+1) {
			b.Fatalf("%s at %d: mod revision %d", benchKey(i), rev, v.ModRevision)
		}
	}
	reportOpsPerSec(b)
}

// putNext writes a new value to the next key, in an order that spreads
// writes over the tree.
func putNext(ctx context.Context, r *Repo) error {
	n := int(bench.next.Add(1))
	i := (n * 7919) % benchKeys
	_, err := r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpPut, Key: benchKey(i), Value: benchValue(i, bench.gen.Add(1))}}})
	return err
}

// BenchmarkPut is one writer: each op is a commit, durable when it returns.
func BenchmarkPut(b *testing.B) {
	r := benchRepo(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := putNext(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	reportOpsPerSec(b)
}

// BenchmarkPutParallel64 is 64 writers of distinct keys: their commits are
// made durable in groups.
func BenchmarkPutParallel64(b *testing.B) {
	r := benchRepo(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := putNext(ctx, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOpsPerSec(b)
}

// BenchmarkList1000 lists one app: 1,000 keys.
func BenchmarkList1000(b *testing.B) {
	r := benchRepo(b)
	ctx := context.Background()
	for _, values := range []bool{false, true} {
		b.Run(fmt.Sprintf("values=%v", values), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res, err := r.List(ctx, ListOptions{Prefix: "apps/app042/", Limit: 1000, Values: values})
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Items) != 1000 || res.Next != "" {
					b.Fatalf("listed %d keys, next %q", len(res.Items), res.Next)
				}
			}
			reportOpsPerSec(b)
		})
	}
}

// BenchmarkPutWideDir is one writer to a wide directory: apps/ holds 1,000
// subdirectories of 4 keys each, and each op is a commit that puts one of
// them. Every commit edits apps/, so it measures what a change to one name
// in a directory of a thousand entries costs.
func BenchmarkPutWideDir(b *testing.B) {
	const apps, keys = 1000, 4
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r, err := s.Repo(DefaultRepo)
	if err != nil {
		b.Fatal(err)
	}
	key := func(app, k int) string { return fmt.Sprintf("apps/%d/key%d", app, k) }
	ops := make([]Op, 0, apps*keys)
	for app := range apps {
		for k := range keys {
			ops = append(ops, Op{Kind: OpPut, Key: key(app, k), Value: benchValue(k, 0)})
		}
	}
	if _, err := r.WriteOne(ctx, &Batch{Ops: ops}); err != nil {
		b.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	var gen int64
	b.ReportAllocs()
	for b.Loop() {
		gen++
		k := rng.IntN(keys)
		op := Op{Kind: OpPut, Key: key(rng.IntN(apps), k), Value: benchValue(k, gen)}
		if _, err := r.WriteOne(ctx, &Batch{Ops: []Op{op}}); err != nil {
			b.Fatal(err)
		}
	}
	reportOpsPerSec(b)
}
