package storage

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestCommitAsyncOrder writes two groups before either is synced and checks
// what each step makes visible: Tip at once, Ref only once durable, and in
// journal order whichever wait runs first.
func TestCommitAsyncOrder(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenFS(dir, FSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const ref = "refs/heads/x"
	blob1, blob2 := NewObject(BlobObject, []byte("one")), NewObject(BlobObject, []byte("two"))
	wait1, err := b.CommitAsync([]*Object{blob1}, []RefUpdate{{Name: ref, New: blob1.Hash}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The second group is checked against the first, not yet durable.
	if _, err := b.CommitAsync(nil, []RefUpdate{{Name: ref, New: blob2.Hash}}, nil); !errors.Is(err, ErrRefChanged) {
		t.Fatalf("update from the durable value: %v, want ErrRefChanged", err)
	}
	wait2, err := b.CommitAsync([]*Object{blob2}, []RefUpdate{{Name: ref, Old: blob1.Hash, New: blob2.Hash}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Tip(ref); got != blob2.Hash {
		t.Errorf("Tip = %s, want the second group's", got)
	}
	if got := b.Ref(ref); !got.IsZero() {
		t.Errorf("Ref = %s before any sync, want none", got)
	}
	if _, err := b.ReadObject(blob2.Hash); err != nil {
		t.Errorf("an object written, not yet synced: %v", err)
	}
	// The second wait makes both durable: the first's sync is then free.
	if err := wait2(); err != nil {
		t.Fatal(err)
	}
	if got := b.Ref(ref); got != blob2.Hash {
		t.Errorf("Ref = %s after the second wait, want the second group's", got)
	}
	synced, err := b.jnl.syncTo(journalPos{})
	if err != nil || synced {
		t.Errorf("syncTo an old position: synced %v, %v; want no sync", synced, err)
	}
	if err := wait1(); err != nil {
		t.Fatal(err)
	}
	if got := b.Ref(ref); got != blob2.Hash {
		t.Errorf("Ref = %s after the first wait, want still the second group's", got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = OpenFS(dir, FSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.Ref(ref); got != blob2.Hash {
		t.Errorf("reopened: Ref = %s, want the second group's", got)
	}
}

// TestCommitAsyncUnsyncedNotFlushed checks that the flusher writes only
// durable groups to Git's files: a group waiting for its sync stays in the
// journal.
func TestCommitAsyncUnsyncedNotFlushed(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenFS(dir, FSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	o := NewObject(BlobObject, []byte("later"))
	wait, err := b.CommitAsync([]*Object{o}, []RefUpdate{{Name: "refs/heads/y", New: o.Hash}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if refs, err := readRefs(dir); err != nil || !refs["refs/heads/y"].IsZero() {
		t.Fatalf("Git's refs after a flush, before the sync: %v, %v", refs, err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if refs, err := readRefs(dir); err != nil || refs["refs/heads/y"] != o.Hash {
		t.Fatalf("Git's refs after the sync and a flush: %v, %v", refs, err)
	}
	if !b.HasObject(o.Hash) {
		t.Error("the object is gone")
	}
}

// TestCommitAsyncSyncFailure breaks the journal's file under a group
// waiting for its sync: that wait fails, and so does every commit after it,
// including one written before the failure was seen.
func TestCommitAsyncSyncFailure(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenFS(dir, FSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o1, o2 := NewObject(BlobObject, []byte("a")), NewObject(BlobObject, []byte("b"))
	wait1, err := b.CommitAsync([]*Object{o1}, []RefUpdate{{Name: "refs/heads/z", New: o1.Hash}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait2, err := b.CommitAsync([]*Object{o2}, []RefUpdate{{Name: "refs/heads/z", Old: o1.Hash, New: o2.Hash}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.jnl.mu.Lock()
	b.jnl.f.Close() // the next fdatasync fails (EBADF), as a failing disk's would
	b.jnl.mu.Unlock()
	if err := wait1(); err == nil {
		t.Fatal("wait after a failed sync: nil error")
	}
	if err := wait2(); err == nil {
		t.Fatal("the group after a failed sync: nil error")
	}
	if _, err := b.CommitAsync(nil, []RefUpdate{{Name: "refs/heads/w", New: o1.Hash}}, nil); err == nil {
		t.Fatal("commit after a failed sync: nil error")
	}
	if got := b.Ref("refs/heads/z"); !got.IsZero() {
		t.Errorf("Ref = %s: a group that never became durable is visible", got)
	}
}

// TestPipelinedWritesAcrossBarriers interleaves plain writes, which the
// committer applies while the group before syncs, with writes that wait for
// it (a base revision check), from many goroutines, and checks every
// acknowledged revision against the history.
func TestPipelinedWritesAcrossBarriers(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	var mu sync.Mutex
	acked := map[int64]string{}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 40 {
				key := fmt.Sprintf("w%02d/k%d", w, i%5)
				value := fmt.Sprintf("%d-%d", w, i)
				b := &Batch{Ops: []Op{{Kind: OpPut, Key: key, Value: []byte(value)}}}
				if i%7 == 3 {
					b.CheckBase, b.BaseRevision = true, r.Head().Revision
				}
				res, err := r.WriteOne(ctx, b)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := acked[res.Revision]; dup {
					t.Errorf("revision %d acknowledged twice: %s and %s=%s", res.Revision, prev, key, value)
				}
				acked[res.Revision] = key + "=" + value
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	head := r.Head().Revision
	if int(head) != len(acked) {
		t.Fatalf("head %d after %d acknowledged writes", head, len(acked))
	}
	for rev, kv := range acked {
		key, value, _ := strings.Cut(kv, "=")
		if got := get(t, r, key, rev); got != value {
			t.Errorf("%s at %d = %q, want %q", key, rev, got, value)
		}
	}
	checkStore(t, s)
}

// TestRecycledEntriesStayUnread has many writers rewrite the same
// directories, so that groups replace versions of a directory and recycle
// their entries, then checks that no tree a reader can reach was touched:
// every tree in the cache still encodes to its id, and every acknowledged
// revision reads back.
func TestRecycledEntriesStayUnread(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	var writes ackLog
	var wg sync.WaitGroup
	for w := range 24 {
		wg.Go(func() {
			for i := range 60 {
				// Three shared directories, a few keys each: most commits of
				// a group rewrite a directory another commit of it wrote.
				key := fmt.Sprintf("shared/d%d/k%d", (w+i)%3, (w*7+i)%5)
				value := fmt.Sprintf("w%d-%d", w, i)
				ops := []Op{{Kind: OpPut, Key: key, Value: []byte(value)}}
				if i%9 == 4 {
					// Now and then a directory is emptied and made again.
					ops = append([]Op{{Kind: OpDeletePrefix, Key: fmt.Sprintf("shared/d%d", (w+i)%3)}}, ops...)
				}
				if !writes.write(ctx, t, r, ops, key, value) {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(r.entries.free) == 0 {
		t.Fatal("no entries were recycled: the test does not exercise the pool")
	}
	checkUntouched(t, s, r, writes.acks)
}

// TestTreeCacheDropsSupersededTrees writes to a few directories from many
// writers: once the writes are published, the tree cache holds the trees
// of head along the written paths, and none of the versions of those
// directories that head no longer has.
func TestTreeCacheDropsSupersededTrees(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 40 {
				key := fmt.Sprintf("apps/a%d/env%d/k%d", w%4, i%2, w*100+i)
				if _, err := r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpPut, Key: key, Value: []byte(key)}}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// A branch's commit replaces trees that main still has: they stay.
	start := r.Head().Commit
	if _, err := r.Write(ctx,
		&Batch{Ref: "refs/heads/txn/x", ResetTo: &start},
		&Batch{Ref: "refs/heads/txn/x", Ops: []Op{{Kind: OpPut, Key: "apps/a0/env0/branch", Value: []byte("b")}}},
	); err != nil {
		t.Fatal(err)
	}
	// Every directory of head, by id.
	live := map[Hash]bool{}
	var walk func(h Hash)
	walk = func(h Hash) {
		live[h] = true
		// Peek, not readTree: a read would cache what it decodes.
		tr, ok := r.trees.Peek(h)
		if !ok {
			t.Fatalf("tree %s of head is not cached", h)
		}
		for _, e := range tr.Entries {
			if e.IsDir() {
				walk(e.Hash)
			}
		}
	}
	walk(r.Head().Tree)
	// The branch's trees along the path it wrote.
	branch := map[Hash]bool{}
	h, err := r.commitTree(r.Backend().Ref("refs/heads/txn/x"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"apps", "a0", "env0", ""} {
		branch[h] = true
		if name == "" {
			break
		}
		tr, err := r.readTree(h)
		if err != nil {
			t.Fatal(err)
		}
		h = tr.Entries[tr.Find(name)].Hash
	}
	for _, h := range r.trees.keys() {
		if !live[h] && !branch[h] {
			t.Errorf("tree %s, neither in head nor in the branch, is still cached", h)
		}
	}
}

// TestSupersededEntriesRecycled has writers rewrite keys in directories of
// their own, as the benchmark's do, so that each commit replaces a version
// of a directory an earlier group wrote, while readers read old revisions
// through the same trees. The versions no reader was handed give their
// entries back to the committer; every read, then and later, sees what
// was written, and the cached trees still encode to their ids.
func TestSupersededEntriesRecycled(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	var writes ackLog
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a, ok := writes.pick(i)
				if !ok {
					continue
				}
				v, err := r.Get(ctx, a.key, a.rev)
				if err != nil || string(v.Data) != a.value {
					t.Errorf("%s at %d: %v, %v; want %q", a.key, a.rev, v, err, a.value)
					return
				}
				if _, err := r.List(ctx, ListOptions{Prefix: path.Dir(a.key) + "/", Revision: a.rev}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for w := range 16 {
		wg.Go(func() {
			for i := range 50 {
				key := fmt.Sprintf("apps/w%02d/env%d/k%d", w, i%2, i%7)
				value := fmt.Sprintf("w%d-%d", w, i)
				if !writes.write(ctx, t, r, []Op{{Kind: OpPut, Key: key, Value: []byte(value)}}, key, value) {
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	r.entries.mu.Lock()
	gave := r.entries.gave
	r.entries.mu.Unlock()
	if gave == 0 {
		t.Fatal("no superseded version gave its entries back: the test does not exercise the recycling")
	}
	checkUntouched(t, s, r, writes.acks)
}

// writeAck is an acknowledged write: key held value at revision rev.
type writeAck struct {
	rev        int64
	key, value string
}

// ackLog collects the writes that writers running at once had
// acknowledged.
type ackLog struct {
	mu   sync.Mutex
	acks []writeAck
}

// write applies ops and records that key then held value; it reports
// false (after failing t) when the write failed.
func (l *ackLog) write(ctx context.Context, t *testing.T, r *Repo, ops []Op, key, value string) bool {
	res, err := r.WriteOne(ctx, &Batch{Ops: ops})
	if err != nil {
		t.Error(err)
		return false
	}
	l.mu.Lock()
	l.acks = append(l.acks, writeAck{res.Revision, key, value})
	l.mu.Unlock()
	return true
}

// pick returns the i'th acknowledged write, modulo their number, or false
// when there is none yet.
func (l *ackLog) pick(i int) (writeAck, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.acks) == 0 {
		return writeAck{}, false
	}
	return l.acks[i%len(l.acks)], true
}

// checkUntouched checks that recycling changed nothing a reader can
// reach: every tree in the cache still encodes to its id, every
// acknowledged write reads back at its revision, and so does the store
// from Git's files with the caches cold.
func checkUntouched(t *testing.T, s *Store, r *Repo, acks []writeAck) {
	t.Helper()
	for _, h := range r.trees.keys() {
		if tr, ok := r.trees.Peek(h); ok {
			if got := NewObject(TreeObject, tr.Encode()).Hash; got != h {
				t.Errorf("cached tree %s encodes to %s: its entries were changed", h, got)
			}
		}
	}
	for _, a := range acks {
		if got := get(t, r, a.key, a.rev); got != a.value {
			t.Errorf("%s at %d = %q, want %q", a.key, a.rev, got, a.value)
		}
	}
	checkStore(t, s)
}

// TestPublishedHook checks Batch.Published: called once for each batch
// that succeeds, before Write returns, with the batch's result, once a
// read at head sees the write; never for a batch that fails.
func TestPublishedHook(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	var wg sync.WaitGroup
	var calls, fails atomic.Int64
	for w := range 16 {
		wg.Go(func() {
			for i := range 30 {
				key := fmt.Sprintf("w%02d/k%02d", w, i)
				value := fmt.Sprintf("%d-%d", w, i)
				op := Op{Kind: OpPut, Key: key, Value: []byte(value)}
				failing := i%5 == 2
				if failing {
					op = Op{Kind: OpDelete, Key: key + "-missing", MustExist: true}
				}
				var got *Result
				n := 0
				b := &Batch{Ops: []Op{op}, Published: func(res *Result) {
					n++
					got = res
					calls.Add(1)
					if h := r.Head().Revision; h < res.Revision {
						t.Errorf("%s published at revision %d with head at %d", key, res.Revision, h)
					}
					if v, err := r.Get(ctx, key, 0); err != nil || string(v.Data) != value {
						t.Errorf("%s published but not read at head: %v", key, err)
					}
				}}
				res, err := r.WriteOne(ctx, b)
				switch {
				case failing && err == nil:
					t.Errorf("delete of a missing key succeeded")
				case failing:
					fails.Add(1)
					if n != 0 {
						t.Errorf("Published called %d times for a failed batch", n)
					}
				case err != nil:
					t.Error(err)
				case n != 1 || got != res:
					t.Errorf("%s: Published called %d times before Write returned (result %p, want %p)", key, n, got, res)
				}
			}
		})
	}
	wg.Wait()
	if want := 16*30 - fails.Load(); calls.Load() != want {
		t.Fatalf("Published called %d times for %d successful writes", calls.Load(), want)
	}
	checkStore(t, s)
}
