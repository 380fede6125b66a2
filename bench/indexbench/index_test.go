package indexbench

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// groupSize is the number of commits in the largest group commit: one record
// and one revision record each.
const groupSize = 64

// settleTime is how long a freshly loaded store is left idle, so that its
// background flushes and compactions finish, before it is measured and closed.
const settleTime = 10 * time.Second

// fixture is a store preloaded with benchData, loaded once per process.
type fixture struct {
	pristine string        // the loaded store, cleanly closed and never opened again
	lastRev  uint64        // last revision written by the load
	loadTime time.Duration // open + load of benchData

	// Memory growth over the open and the load, right after the load and
	// after settleTime idle: Go heap in use and anonymous RSS (-1: unknown).
	heapLoad, rssLoad int64
	heapIdle, rssIdle int64

	// Bytes on disk after settleTime and a clean Close: everything, and
	// table and value-log files only.
	disk, tables int64
}

var (
	fixtures = map[string]*fixture{} // by engine name; benchmarks run one at a time

	benchKeysOnce sync.Once
	benchKeyList  [][]byte
)

// benchKeys returns the keys of benchData, in key order.
func benchKeys() [][]byte {
	benchKeysOnce.Do(func() {
		benchKeyList = make([][]byte, benchData.n())
		for i := range benchKeyList {
			benchKeyList[i] = benchData.key(i)
		}
	})
	return benchKeyList
}

// getFixture returns e's preloaded store, loading it on first use.
func getFixture(b *testing.B, e engine) *fixture {
	if f, ok := fixtures[e.name]; ok {
		return f
	}
	benchKeys() // allocated before the memory baseline below
	f := &fixture{pristine: filepath.Join(rootDir, e.name, "pristine")}
	before := sampleMem()
	start := time.Now()
	s, err := e.open(f.pristine)
	if err != nil {
		b.Fatal(err)
	}
	f.lastRev, err = benchData.loadBatches(1, s.ApplyBatch)
	if err != nil {
		b.Fatal(err)
	}
	f.loadTime = time.Since(start)
	loaded := sampleMem()
	time.Sleep(settleTime)
	idle := sampleMem()
	f.heapLoad, f.rssLoad = loaded.heapInuse-before.heapInuse, loaded.rssAnon-before.rssAnon
	f.heapIdle, f.rssIdle = idle.heapInuse-before.heapInuse, idle.rssAnon-before.rssAnon
	if before.rssAnon < 0 || loaded.rssAnon < 0 || idle.rssAnon < 0 {
		f.rssLoad, f.rssIdle = -1, -1
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	if f.disk, f.tables, err = diskUsage(f.pristine); err != nil {
		b.Fatal(err)
	}
	fixtures[e.name] = f
	return f
}

// workCopies makes fresh copies of the pristine store for one run of the
// benchmarks: hot (kept open, written to by write64) and cold (for reopen).
// They are removed when b finishes.
func (f *fixture) workCopies(b *testing.B) (hot, cold string) {
	run := filepath.Join(filepath.Dir(f.pristine), "run")
	hot, cold = filepath.Join(run, "hot"), filepath.Join(run, "cold")
	if err := os.RemoveAll(run); err != nil {
		b.Fatal(err)
	}
	for _, dir := range []string{hot, cold} {
		if err := copyDir(f.pristine, dir); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		if err := os.RemoveAll(run); err != nil {
			b.Error(err)
		}
	})
	return hot, cold
}

// BenchmarkIndex runs the same benchmarks against every engine:
// BenchmarkIndex/<engine>/<benchmark>. See the package documentation.
func BenchmarkIndex(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) { benchEngine(b, e) })
	}
}

func benchEngine(b *testing.B, e engine) {
	f := getFixture(b, e)
	hot, cold := f.workCopies(b)
	s, err := e.open(hot)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})
	keys := benchKeys()

	// Figures of the load itself; a single sample, repeated on every run.
	b.Run("footprint", func(b *testing.B) {
		b.ReportMetric(0, "ns/op") // there is no operation to time
		b.ReportMetric(mb(f.heapLoad), "heap-load-MB")
		b.ReportMetric(mb(f.heapIdle), "heap-idle-MB")
		if f.rssIdle >= 0 {
			b.ReportMetric(mb(f.rssLoad), "rss-load-MB")
			b.ReportMetric(mb(f.rssIdle), "rss-idle-MB")
		}
		b.ReportMetric(mb(f.disk), "disk-MB")
		b.ReportMetric(mb(f.tables), "sst-MB")
		b.ReportMetric(f.loadTime.Seconds(), "load-s")
	})

	b.Run("get", func(b *testing.B) {
		r := rand.New(rand.NewPCG(1, 1))
		var buf []byte
		b.ReportAllocs()
		b.ResetTimer()
		cpu := startCPU()
		for i := 0; i < b.N; i++ {
			var (
				ok  bool
				err error
			)
			key := keys[r.IntN(len(keys))]
			if buf, ok, err = s.Get(buf, key); err != nil || !ok {
				b.Fatalf("get %q: ok=%v err=%v", key, ok, err)
			}
		}
		cpu.report(b)
	})

	b.Run("get-parallel", func(b *testing.B) {
		var seed atomic.Uint64
		b.ReportAllocs()
		b.ResetTimer()
		cpu := startCPU()
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(seed.Add(1), 2))
			var buf []byte
			for pb.Next() {
				key := keys[r.IntN(len(keys))]
				var (
					ok  bool
					err error
				)
				if buf, ok, err = s.Get(buf, key); err != nil || !ok {
					b.Errorf("get %q: ok=%v err=%v", key, ok, err)
					return
				}
			}
		})
		cpu.report(b)
	})

	b.Run("scan1000", func(b *testing.B) {
		d := benchData
		limit := d.envs * d.resources // every key of one app
		prefixes := make([][]byte, d.apps)
		for app := range prefixes {
			prefixes[app] = d.appPrefix(app)
		}
		r := rand.New(rand.NewPCG(3, 3))
		var (
			buf []byte
			n   int
		)
		collect := func(k, v []byte) error {
			buf = append(buf, k...)
			buf = append(buf, v...)
			n++
			return nil
		}
		b.ReportAllocs()
		b.ResetTimer()
		cpu := startCPU()
		for i := 0; i < b.N; i++ {
			prefix := prefixes[r.IntN(len(prefixes))]
			buf, n = buf[:0], 0
			if err := s.Scan(prefix, limit, collect); err != nil || n != limit {
				b.Fatalf("scan %q: %d keys, err=%v", prefix, n, err)
			}
		}
		cpu.report(b)
	})

	// Each iteration opens the cold copy, reads one key, and closes it with
	// the timer stopped: a restart after a clean shutdown, with the OS page
	// cache warm.
	b.Run("reopen", func(b *testing.B) {
		r := rand.New(rand.NewPCG(4, 4))
		var buf []byte
		b.ReportAllocs()
		b.ResetTimer()
		cpu := startCPU()
		for i := 0; i < b.N; i++ {
			c, err := e.open(cold)
			if err != nil {
				b.Fatal(err)
			}
			var ok bool
			key := keys[r.IntN(len(keys))]
			if buf, ok, err = c.Get(buf, key); err != nil || !ok {
				b.Fatalf("get %q after reopen: ok=%v err=%v", key, ok, err)
			}
			b.StopTimer()
			cpu.stop()
			if err := c.Close(); err != nil {
				b.Fatal(err)
			}
			cpu.start()
			b.StartTimer()
		}
		cpu.report(b)
	})

	// One group commit: groupSize updates of existing keys and groupSize new
	// revision records. Runs last because it changes the hot store.
	b.Run("write64", func(b *testing.B) {
		d := benchData
		r := rand.New(rand.NewPCG(5, 5))
		records := make([][]byte, 1024)
		for i := range records {
			records[i] = d.record(r, nil, r.IntN(len(keys)), f.lastRev)
		}
		revRecords := make([][]byte, groupSize)
		revKeys := make([][]byte, groupSize)
		for i := range revRecords {
			revRecords[i] = revisionRecord(r, nil, f.lastRev, 1)
		}
		ops := make([]op, 2*groupSize)
		rev := f.lastRev
		b.ReportAllocs()
		b.ResetTimer()
		cpu := startCPU()
		for i := 0; i < b.N; i++ {
			for j := 0; j < groupSize; j++ {
				rev++
				revKeys[j] = d.revKey(revKeys[j][:0], rev)
				ops[j] = op{keys[r.IntN(len(keys))], records[r.IntN(len(records))]}
				ops[groupSize+j] = op{revKeys[j], revRecords[j]}
			}
			if err := s.ApplyBatch(ops); err != nil {
				b.Fatalf("batch ending at rev %d: %v", rev, err)
			}
		}
		cpu.report(b)
	})
}

// mb converts bytes to (decimal) megabytes, the unit benchstat reads "MB" as.
func mb(n int64) float64 { return float64(n) / 1e6 }
