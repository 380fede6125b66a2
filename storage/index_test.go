package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// logRecorder is a slog.Handler that keeps the messages it is given.
type logRecorder struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newLogRecorder() logRecorder { return logRecorder{mu: &sync.Mutex{}, msgs: new([]string)} }

func (l logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.msgs = append(*l.msgs, r.Message)
	return nil
}
func (l logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logRecorder) WithGroup(string) slog.Handler      { return l }

func (l logRecorder) logged(msg string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(*l.msgs, msg)
}

func (l logRecorder) option(o *Options) { o.Logger = slog.New(l) }

// storeAnswers is what a repo answers about every revision: the full
// listing (with values and mod revisions), the revision records, and the
// log.
type storeAnswers struct {
	Head      Head
	Lists     []*ListResult
	Revisions []*RevisionInfo
	Log       []*RevisionInfo
	Gets      map[string]*Value
}

func answers(t testing.TB, r *Repo) *storeAnswers {
	t.Helper()
	ctx := context.Background()
	a := &storeAnswers{Head: r.Head(), Gets: map[string]*Value{}}
	for rev := int64(1); rev <= a.Head.Revision; rev++ {
		l, err := r.List(ctx, ListOptions{Revision: rev, Values: true, Limit: 1 << 20})
		if err != nil {
			t.Fatalf("list at %d: %v", rev, err)
		}
		a.Lists = append(a.Lists, l)
		ri, err := r.Revision(rev)
		if err != nil {
			t.Fatalf("revision %d: %v", rev, err)
		}
		a.Revisions = append(a.Revisions, ri)
		for _, it := range l.Items {
			v, err := r.Get(ctx, it.Key, rev)
			if err != nil {
				t.Fatalf("get %s at %d: %v", it.Key, rev, err)
			}
			a.Gets[fmt.Sprintf("%s@%d", it.Key, rev)] = v
		}
	}
	log, _, err := r.Log(ctx, LogOptions{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	a.Log = log
	return a
}

func compareAnswers(t testing.TB, got, want *storeAnswers) {
	t.Helper()
	if got.Head != want.Head {
		t.Fatalf("head %+v, want %+v", got.Head, want.Head)
	}
	for i := range want.Lists {
		if !reflect.DeepEqual(got.Lists[i], want.Lists[i]) {
			t.Errorf("list at %d differs:\n got %+v\nwant %+v", i+1, got.Lists[i], want.Lists[i])
		}
		if !reflect.DeepEqual(got.Revisions[i], want.Revisions[i]) {
			t.Errorf("revision %d differs:\n got %+v\nwant %+v", i+1, got.Revisions[i], want.Revisions[i])
		}
	}
	if !reflect.DeepEqual(got.Log, want.Log) {
		t.Errorf("log differs")
	}
	if len(got.Gets) != len(want.Gets) {
		t.Errorf("%d gets, want %d", len(got.Gets), len(want.Gets))
	}
	for k, w := range want.Gets {
		if g := got.Gets[k]; !reflect.DeepEqual(g, w) {
			t.Errorf("get %s: %+v, want %+v", k, g, w)
		}
	}
}

// writeHistory makes revisions of every kind: puts, a batch, a move, a
// delete of a prefix, a revert, a rollback, a large value.
func writeHistory(t testing.TB, r *Repo, tag string) {
	t.Helper()
	ctx := context.Background()
	put(t, r, tag+"/apps/web/deploy.yaml", "replicas: 1\n")
	put(t, r, tag+"/apps/web/deploy.yaml", "replicas: 2\n")
	if _, err := r.WriteOne(ctx, &Batch{Ops: []Op{
		{Kind: OpPut, Key: tag + "/apps/api/deploy.yaml", Value: []byte("api")},
		{Kind: OpPut, Key: tag + "/cfg/a", Value: []byte("a")},
		{Kind: OpPut, Key: tag + "/cfg/b", Value: []byte("b")},
		{Kind: OpPut, Key: tag + "/big", Value: []byte(strings.Repeat("large value\n", 10000))},
	}, Message: "several\n\nwith a body"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpMove, From: tag + "/cfg/a", Key: tag + "/moved/a"}}}); err != nil {
		t.Fatal(err)
	}
	rev := put(t, r, tag+"/apps/web/deploy.yaml", "replicas: 3\n").Revision
	if _, err := r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpDeletePrefix, Key: tag + "/cfg"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Revert(ctx, rev, false, Batch{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Rollback(ctx, rev-1, tag+"/cfg/", nil, Batch{}); err != nil {
		t.Fatal(err)
	}
	put(t, r, tag+"/dir with space/ключ", "unicode")
}

func TestIndexDeletedIsRebuilt(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	r := defaultRepo(t, s)
	writeHistory(t, r, "x")
	want := answers(t, r)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	logs := newLogRecorder()
	s = reopenTestStore(t, dir, logs.option)
	if !logs.logged("rebuilding the index from git") {
		t.Error("no rebuild was logged")
	}
	compareAnswers(t, answers(t, defaultRepo(t, s)), want)
}

func TestIndexLaggingIsCaughtUp(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	writeHistory(t, defaultRepo(t, s), "early")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(t.TempDir(), "index")
	copyDir(t, filepath.Join(dir, "index"), old)

	s = openTestStore(t, dir)
	r := defaultRepo(t, s)
	// Change what the old index holds, so that a catch-up that only adds
	// would be caught.
	ctx := context.Background()
	if _, err := r.WriteOne(ctx, &Batch{Ops: []Op{
		{Kind: OpDeletePrefix, Key: "early/apps"},
		{Kind: OpMove, From: "early/big", Key: "late/big"},
	}}); err != nil {
		t.Fatal(err)
	}
	writeHistory(t, r, "late2")
	want := answers(t, r)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	copyDir(t, old, filepath.Join(dir, "index"))

	logs := newLogRecorder()
	s = reopenTestStore(t, dir, logs.option)
	if !logs.logged("catching the index up with git") || logs.logged("rebuilding the index from git") {
		t.Errorf("the index was not caught up from its head: %q", *logs.msgs)
	}
	compareAnswers(t, answers(t, defaultRepo(t, s)), want)
}

// TestIndexHistoryRewritten moves main, behind the store's back, to a line
// whose commits the index has not seen: the index must be rebuilt.
func TestIndexHistoryRewritten(t *testing.T) {
	for _, tc := range []struct {
		name    string
		resetTo int64 // main goes back to this revision (of 12)...
		add     int   // ...and gets this many new commits
	}{
		{"shorter", 5, 1},
		{"as long", 11, 1},
		{"longer", 5, 10},
		{"only reset", 5, 0},
		{"to nothing but new commits", 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestStore(t, dir)
			r := defaultRepo(t, s)
			for i := range 12 {
				put(t, r, fmt.Sprintf("k/%02d", i), fmt.Sprint("old ", i))
			}
			base, err := r.RevisionCommit(tc.resetTo)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			repo := s.repoDir(DefaultRepo)
			tip := base
			for i := range tc.add {
				blob := strings.TrimSpace(gitInput(t, repo, fmt.Sprint("new ", i), "hash-object", "-w", "--stdin"))
				tree := ""
				if !tip.IsZero() {
					// Keep what the tip has, and add a key.
					tree = git(t, repo, "ls-tree", tip.String())
				}
				tree += fmt.Sprintf("100644 blob %s\tnew-%02d\n", blob, i)
				treeID := strings.TrimSpace(gitInput(t, repo, tree, "mktree"))
				args := []string{"commit-tree", treeID, "-m", fmt.Sprint("rewritten ", i)}
				if !tip.IsZero() {
					args = append(args, "-p", tip.String())
				}
				h, ok := parseHash(strings.TrimSpace(git(t, repo, args...)))
				if !ok {
					t.Fatal("commit-tree gave no id")
				}
				tip = h
			}
			// Keep the old line under another ref, so that git fsck finds
			// no dangling commits.
			git(t, repo, "update-ref", "refs/old/main", "refs/heads/main")
			git(t, repo, "update-ref", "refs/heads/main", tip.String())

			logs := newLogRecorder()
			s = reopenTestStore(t, dir, logs.option)
			r = defaultRepo(t, s)
			if !logs.logged("rebuilding the index from git") {
				t.Errorf("no rebuild logged: %q", *logs.msgs)
			}
			wantRev := tc.resetTo + int64(tc.add)
			if h := r.Head(); h.Revision != wantRev || h.Commit != tip {
				t.Fatalf("head %+v, want revision %d at %s", h, wantRev, tip)
			}
			// The index holds exactly the new line's keys, with the new
			// line's mod revisions.
			res, err := r.List(context.Background(), ListOptions{Values: true})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range res.Items {
				got = append(got, fmt.Sprintf("%s=%s@%d", it.Key, it.Value, it.ModRevision))
			}
			var want []string
			for i := range tc.resetTo {
				want = append(want, fmt.Sprintf("k/%02d=old %d@%d", i, i, i+1))
			}
			for i := range tc.add {
				want = append(want, fmt.Sprintf("new-%02d=new %d@%d", i, i, tc.resetTo+int64(i)+1))
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("index at head:\n got %q\nwant %q", got, want)
			}
			for rev := tc.resetTo + 1; rev <= wantRev; rev++ {
				ri, err := r.Revision(rev)
				if err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprint("rewritten ", rev-tc.resetTo-1); strings.TrimSpace(ri.Message) != want {
					t.Errorf("revision %d is %q, want %q", rev, ri.Message, want)
				}
			}
			// And it keeps working.
			put(t, r, "after", "rewrite")
			if h := r.Head().Revision; h != wantRev+1 {
				t.Errorf("next write at %d, want %d", h, wantRev+1)
			}
		})
	}
}

// gitInput runs git with stdin.
func gitInput(t testing.TB, dir, stdin string, args ...string) string {
	t.Helper()
	cmd := gitCmd(dir, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestIndexDamaged: an index pebble cannot open is set aside, and one whose
// revision list has a hole is dropped; either way the index is rebuilt from
// Git with the same answers.
func TestIndexDamaged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, s *Store, dir string) // s is open; close it
		logged string
		aside  int // broken indexes set aside
	}{
		{"unopenable", func(t *testing.T, s *Store, dir string) {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			ms, err := filepath.Glob(filepath.Join(dir, "index", "MANIFEST-*"))
			if err != nil || len(ms) == 0 {
				t.Fatalf("no manifest in the index: %v", err)
			}
			for _, m := range ms {
				if err := os.WriteFile(m, []byte("this is not a manifest"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}, "cannot open the index; rebuilding it from Git", 1},
		{"revision without its record", func(t *testing.T, s *Store, dir string) {
			if err := s.ix.db.Delete(revKey(DefaultRepo, 3), nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}, "index revision list is damaged; rebuilding", 0},
		{"revision record of another revision", func(t *testing.T, s *Store, dir string) {
			v, closer, err := s.ix.db.Get(revKey(DefaultRepo, 2))
			if err != nil {
				t.Fatal(err)
			}
			v = bytes.Clone(v)
			closer.Close()
			if err := s.ix.db.Set(revKey(DefaultRepo, 3), v, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}, "index revision list is damaged; rebuilding", 0},
		{"the previous format", func(t *testing.T, s *Store, dir string) {
			// Format 1 kept revision records as JSON.
			r := defaultRepo(t, s)
			head := r.Head()
			old, _ := json.Marshal(indexMeta{Format: 1, Revision: head.Revision, Commit: head.Commit.String()})
			if err := s.ix.db.Set(metaKey(DefaultRepo), old, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.ix.db.Set(revKey(DefaultRepo, head.Revision), []byte(`{"revision":1}`), nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}, "rebuilding the index from git", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestStore(t, dir)
			writeHistory(t, defaultRepo(t, s), "x")
			want := answers(t, defaultRepo(t, s))
			tc.damage(t, s, dir)
			logs := newLogRecorder()
			s = reopenTestStore(t, dir, logs.option)
			if !logs.logged(tc.logged) || !logs.logged("rebuilding the index from git") {
				t.Errorf("logged %q", *logs.msgs)
			}
			compareAnswers(t, answers(t, defaultRepo(t, s)), want)
			if aside, _ := filepath.Glob(filepath.Join(dir, "index.broken-*")); len(aside) != tc.aside {
				t.Errorf("indexes set aside: %v", aside)
			}
		})
	}
}

// TestIndexBlockCacheHoldsBlocks writes enough to grow pebble's memtables
// to their full size, which pebble charges to the block cache, then lists
// the same keys twice from the tables: the second listing must find its
// blocks in the cache. (With the cache sized at the blocks' budget alone,
// the memtables' reservations took all of it: nothing stayed cached, and
// every read decompressed its blocks again.)
func TestIndexBlockCacheHoldsBlocks(t *testing.T) {
	if raceEnabled {
		t.Skip("writes 100,000 keys: too slow under the race detector, and nothing concurrent to check")
	}
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	value := bytes.Repeat([]byte("x"), 500)
	for n := range 100 {
		ops := make([]Op, 0, 1000)
		for i := range 1000 {
			ops = append(ops, Op{Kind: OpPut, Key: fmt.Sprintf("d%03d/k%04d", i%100, n*1000+i), Value: value})
		}
		if _, err := r.WriteOne(ctx, &Batch{Ops: ops}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ix.db.Flush(); err != nil {
		t.Fatal(err)
	}
	// Settle the LSM first: a compaction that rewrites d042's range between
	// the two listings hands the second one new blocks (CI saw 18 hits, 135
	// misses that way). After a full manual compaction nothing is left for
	// the background to do.
	if err := s.ix.db.Compact(ctx, []byte{0}, bytes.Repeat([]byte{0xff}, 64), true); err != nil {
		t.Fatal(err)
	}
	list := func() {
		res, err := r.List(ctx, ListOptions{Prefix: "d042/", Limit: 2000})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Items) != 1000 {
			t.Fatalf("listed %d keys, want 1000", len(res.Items))
		}
	}
	list()
	// Should a compaction still slip in between two listings, the next pair
	// measures again; a cache that holds nothing fails every pair.
	var hits, misses int64
	for range 3 {
		before := s.ix.db.Metrics().BlockCache
		list()
		after := s.ix.db.Metrics().BlockCache
		hits, misses = after.Hits-before.Hits, after.Misses-before.Misses
		if after.Size > 0 && hits > 10*misses {
			return
		}
	}
	t.Errorf("repeated listing: %d block cache hits, %d misses: its blocks should have been cached", hits, misses)
}

// TestReplayStops: a replay whose context is cancelled part way through
// the revisions returns the context's error, and its reader goroutine
// ends; a full replay afterwards still gives the same answers.
func TestReplayStops(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	for i := range 300 {
		put(t, r, fmt.Sprintf("k/%d", i%40), strconv.Itoa(i))
	}
	want := answers(t, r)
	revs := append([]Hash(nil), r.revs...)
	before := runtime.NumGoroutine()
	for _, stopAt := range []int64{1, 100, 299} {
		ctx, cancel := context.WithCancel(context.Background())
		r.replayProgress = func(done, total int64) {
			if done >= stopAt {
				cancel()
			}
		}
		err := r.replay(ctx, revs, 1)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("stopped at %d: %v, want context.Canceled", stopAt, err)
		}
	}
	r.replayProgress = nil
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the stopped replays, %d before", n, before)
	}
	if err := r.replay(context.Background(), revs, 1); err != nil {
		t.Fatal(err)
	}
	compareAnswers(t, answers(t, r), want)
}

// TestIndexFlushesAtPause checks when the index's memtable is flushed
// before it fills: at a pause in the writes once indexIdleFlushBytes were
// written, not while the writes go on, and not at a pause after less.
func TestIndexFlushesAtPause(t *testing.T) {
	tests := []struct {
		name  string
		bytes int // written in batches of ~64 KiB, one every 2 ms
		want  bool
	}{
		// Well past the threshold, so that a flush that did not wait for
		// the pause would fall while the writes go on.
		{"after enough", 5 * indexIdleFlushBytes, true},
		{"after too little", indexIdleFlushBytes / 4, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ix := openTestIndex(t)
			flushes := func() int64 { return ix.db.Metrics().Flush.Count }
			before := flushes()
			value := bytes.Repeat([]byte("v"), 1000)
			last := time.Now()
			for i := 0; i*64*len(value) < tc.bytes; i++ {
				ib := ix.newBatch("r")
				for j := range 64 {
					e := &IndexEntry{Mode: uint32(ModeFile), Size: int64(len(value)), ModRev: int64(i), Value: value, Inline: true}
					ib.setEntry(fmt.Sprintf("k/%d/%d", i, j), e)
				}
				if err := ib.commit(); err != nil {
					t.Fatal(err)
				}
				if n := flushes(); n != before {
					if gap := time.Since(last); gap >= indexIdleFlush/2 {
						// A stalled machine paused the writer.
						t.Skipf("the writer stalled for %v: the pause rule cannot be judged", gap)
					}
					t.Fatalf("flushed after %d KiB, while the writes went on", i*64)
				}
				last = time.Now()
				time.Sleep(2 * time.Millisecond)
			}
			deadline := time.Now().Add(3 * time.Second)
			if !tc.want {
				deadline = time.Now().Add(4 * indexIdleFlush)
			}
			for flushes() == before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := flushes() != before; got != tc.want {
				t.Fatalf("flushed at the pause: %v, want %v", got, tc.want)
			}
		})
	}
}

// TestIndexBatchKeyOrder checks that a batch applied in key order keeps the
// order of its writes to one key: the last write of a key wins, whatever
// was written between.
func TestIndexBatchKeyOrder(t *testing.T) {
	ix := openTestIndex(t)
	entry := func(rev int64) *IndexEntry {
		return &IndexEntry{Mode: uint32(ModeFile), Size: 1, ModRev: rev, Value: []byte("v"), Inline: true}
	}
	type op struct {
		key string
		rev int64 // 0: a delete
	}
	tests := []struct {
		name string
		ops  []op
		want map[string]int64 // key -> ModRev; absent keys not listed
	}{
		{"set then delete", []op{{"z", 1}, {"a", 2}, {"z", 0}}, map[string]int64{"a": 2}},
		{"delete then set", []op{{"z", 0}, {"m", 3}, {"z", 4}}, map[string]int64{"m": 3, "z": 4}},
		{"sets, the last wins", []op{{"k", 5}, {"b", 6}, {"k", 7}, {"a", 8}, {"k", 9}}, map[string]int64{"a": 8, "b": 6, "k": 9}},
		{"many keys in reverse", func() []op {
			var ops []op
			for i := 300; i > 0; i-- {
				ops = append(ops, op{fmt.Sprintf("k%03d", i%100), int64(i)})
			}
			return ops
		}(), func() map[string]int64 {
			m := map[string]int64{}
			for i := 1; i <= 100; i++ {
				m[fmt.Sprintf("k%03d", i%100)] = int64(i)
			}
			return m
		}()},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := fmt.Sprintf("r%d", i)
			ib := ix.newBatch(repo)
			for _, o := range tc.ops {
				if o.rev == 0 {
					ib.deleteEntry(o.key)
				} else {
					ib.setEntry(o.key, entry(o.rev))
				}
			}
			if err := ib.commit(); err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			if err := scanEntries(ix.db, repo, "", "", func(key string, e IndexEntry) bool {
				got[key] = e.ModRev
				return true
			}); err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("entries %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkIndexGroup applies the publisher's index batches of PUT ×64: a
// group of 32 one-key commits per batch, each commit an entry, a revision
// record and a history key, the keys spread over 64 writers' directories.
// It reports the index's CPU per commit.
func BenchmarkIndexGroup(b *testing.B) {
	ix := openTestIndex(b)
	const group = 32
	value := bytes.Repeat([]byte("v"), 250)
	rev := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		ib := ix.newBatch("default")
		for range group {
			rev++
			w, i := rev%64, rev/64%1000
			key := fmt.Sprintf("apps/put%02d/env%d/res%03d.yaml", w, i/100, i%100)
			ib.setEntry(key, &IndexEntry{Mode: uint32(ModeFile), Size: int64(len(value)), ModRev: rev, Value: value, Inline: true})
			if err := ib.addRevision(&RevisionInfo{Revision: rev, Commit: strings.Repeat("a", 40), Author: "bench", Email: "bench@example.com", Time: rev, Message: "put " + key,
				Changes: []KeyChange{{Key: key, Op: "put", ETag: strings.Repeat("b", 40)}}}); err != nil {
				b.Fatal(err)
			}
		}
		ib.setHead(rev, Hash{})
		if err := ib.commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rev), "ns/commit")
}

// openTestIndex opens an index in a temporary directory, closed at the
// end of the test.
func openTestIndex(tb testing.TB) *Index {
	tb.Helper()
	ix, err := OpenIndex(tb.TempDir(), 0, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ix.Close() })
	return ix
}
