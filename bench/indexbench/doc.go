// Package indexbench compares two embedded ordered key-value stores,
// cockroachdb/pebble (v2) and dgraph-io/badger (v4), as the backing store of
// the gitstate index.
//
// The index maps "<repo>\x00<key>" to a small record (20-byte blob id, mode,
// size, mod_revision and, for values up to 64 KiB, the value inline) and
// "<repo>\x00<rev as 8-byte big-endian>" to a ~300-byte JSON commit summary.
// Keys look like "apps/<app>/<env>/<resource>.yaml"; values are 200–2,000
// bytes of YAML-like text. The benchmark preloads each store with
// 100 apps × 10 envs × 100 resources = 100,000 keys (and 10,000 revision
// records), then measures, through the same code for both stores:
//
//	BenchmarkIndex/<store>/footprint     load time; Go heap and anonymous RSS right after the
//	                                     load and after 10 s idle; disk after a clean Close
//	                                     (one sample per process, repeated by -count)
//	BenchmarkIndex/<store>/get           point read at head, one goroutine
//	BenchmarkIndex/<store>/get-parallel  point read at head, GOMAXPROCS goroutines
//	BenchmarkIndex/<store>/scan1000      prefix scan of one app: 1,000 keys and values
//	BenchmarkIndex/<store>/reopen        open a closed copy of the store and do one read
//	BenchmarkIndex/<store>/write64       one group commit: 64 records + 64 revision records, NoSync
//
// Both stores are set up the way the product would use them: a 64 MiB block
// cache, a 16 MiB memtable, bloom filters, no fsync on commit, logging
// limited to errors, and a Close that leaves no log to replay (badger flushes
// its memtable on Close; the pebble implementation calls Flush first).
//
// Each store is loaded once per process into a temporary directory, left
// idle for 10 s and closed; every run of BenchmarkIndex then works on fresh
// copies of it, so -count repetitions start from the same state. Heap is
// runtime.MemStats.HeapInuse; RSS is RssAnon from /proc/self/status, which
// also counts pebble's block cache and memtables, allocated (with cgo) by C
// malloc outside the Go heap. Disk is allocated blocks, not apparent sizes.
// Sizes are in decimal megabytes (MB = 10^6 bytes).
//
// Besides ns/op, B/op and allocs/op, the timed benchmarks report cpu-ns/op:
// the CPU time of the whole process per operation, background flushes and
// compactions included. On a shared or oversubscribed machine it is the
// steadier figure; ns/op is the latency a caller sees.
//
// Run it from the bench module:
//
//	cd bench
//	go test ./indexbench -run XXX -bench . -benchtime 2s -count 3 | tee new.txt
//	benchstat new.txt
//
// TestStoresAgree checks that both implementations return exactly what a
// plain in-memory model returns, so a broken store cannot be measured as a
// fast one.
package indexbench
