package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitstate/gitstate"
)

// TestConcurrentCounter has 64 goroutines increment one counter with
// read-modify-write guarded by the value's ETag: no increment is lost, and
// every write that lost the race says so.
func TestConcurrentCounter(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	base := put(t, r, "counter", "0").Revision
	const workers, attempts = 64, 10
	var wins, losses atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range attempts {
				v, err := r.Get(ctx, "counter", 0)
				if err != nil {
					t.Error(err)
					return
				}
				n, err := strconv.Atoi(string(v.Data))
				if err != nil {
					t.Error(err)
					return
				}
				_, err = r.WriteOne(ctx, &Batch{
					Ops:           []Op{{Kind: OpPut, Key: "counter", Value: []byte(strconv.Itoa(n + 1))}},
					Preconditions: []Precondition{{Key: "counter", ETag: v.Blob}},
				})
				var ge *gitstate.Error
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, gitstate.ErrPreconditionFailed) && errors.As(err, &ge) && slices.Equal(ge.Keys, []string{"counter"}):
					losses.Add(1)
				default:
					t.Errorf("write: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d increments won, %d lost the race", wins.Load(), losses.Load())
	if wins.Load()+losses.Load() != workers*attempts {
		t.Fatalf("%d wins + %d losses != %d attempts", wins.Load(), losses.Load(), workers*attempts)
	}
	if got := get(t, r, "counter", 0); got != strconv.FormatInt(wins.Load(), 10) {
		t.Errorf("counter = %s after %d successful increments", got, wins.Load())
	}
	// One revision per increment, each one more than the last.
	head := r.Head().Revision
	if head != base+wins.Load() {
		t.Errorf("head at %d, want %d", head, base+wins.Load())
	}
	for rev := base; rev <= head; rev++ {
		if got := get(t, r, "counter", rev); got != strconv.FormatInt(rev-base, 10) {
			t.Errorf("counter at %d = %s, want %d", rev, got, rev-base)
		}
	}
}

// TestConcurrentDistinctKeys has 64 goroutines write distinct keys: every
// write succeeds and the revisions they get are exactly 1..N.
func TestConcurrentDistinctKeys(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	const workers, each = 64, 10
	type result struct {
		key string
		rev int64
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("w%02d/%02d", w, i)
				res, err := r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpPut, Key: key, Value: []byte(key)}}})
				if err != nil {
					t.Errorf("put %s: %v", key, err)
					return
				}
				if !res.Changed {
					t.Errorf("put %s: no commit", key)
				}
				mu.Lock()
				results = append(results, result{key, res.Revision})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(results) != workers*each {
		t.Fatalf("%d writes succeeded, want %d", len(results), workers*each)
	}
	slices.SortFunc(results, func(a, b result) int { return int(a.rev - b.rev) })
	for i, res := range results {
		if res.rev != int64(i+1) {
			t.Fatalf("revision #%d is %d (%s): not a gapless 1..%d", i, res.rev, res.key, len(results))
		}
	}
	if h := r.Head().Revision; h != int64(len(results)) {
		t.Errorf("head at %d, want %d", h, len(results))
	}
	// Each key appeared exactly at the revision its write reported.
	for _, res := range results {
		if got := get(t, r, res.key, res.rev); got != res.key {
			t.Errorf("%s at %d = %q", res.key, res.rev, got)
		}
		if res.rev == 1 {
			continue // revision 0 is the empty state, but Get(_, 0) reads head
		}
		if _, err := r.Get(ctx, res.key, res.rev-1); !errors.Is(err, gitstate.ErrKeyNotFound) {
			t.Errorf("%s exists at %d, before the revision that wrote it: %v", res.key, res.rev-1, err)
		}
	}
}

// TestListPagesWhileWriting lists a prefix page by page at one revision while
// writers change it: every page is of that revision, and together they are
// exactly the keys (and values) of that revision.
func TestListPagesWhileWriting(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	var ops []Op
	for i := range 300 {
		ops = append(ops, Op{Kind: OpPut, Key: fmt.Sprintf("l/%03d", i), Value: []byte("v0")})
	}
	// Keys around the prefix that must never show up.
	ops = append(ops, Op{Kind: OpPut, Key: "l-outside", Value: []byte("x")}, Op{Kind: OpPut, Key: "m", Value: []byte("x")})
	if _, err := r.WriteOne(ctx, &Batch{Ops: ops}); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("l/%03d", rng.IntN(330))
				op := Op{Kind: OpPut, Key: key, Value: fmt.Appendf(nil, "w%d-%d", w, n)}
				if rng.IntN(4) == 0 {
					op = Op{Kind: OpDelete, Key: key}
				}
				if _, err := r.WriteOne(ctx, &Batch{Ops: []Op{op}}); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		})
	}

	type listing struct {
		rev   int64
		items []ListItem
	}
	var listings []listing
	for i := range 20 {
		var l listing
		o := ListOptions{Prefix: "l/", Limit: 23, Values: true}
		if i%4 == 3 {
			// Some listings start below head, where pages come from Git.
			o.Revision = max(1, r.Head().Revision-3)
		}
		for page := 0; ; page++ {
			res, err := r.List(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if page == 0 {
				l.rev = res.Revision
			} else if res.Revision != l.rev {
				t.Fatalf("listing %d: page %d is of revision %d, page 0 of %d", i, page, res.Revision, l.rev)
			}
			if c, err := r.RevisionCommit(l.rev); err != nil || res.Commit != c {
				t.Fatalf("listing %d: page %d reports commit %s for revision %d (%s, %v)", i, page, res.Commit, l.rev, c, err)
			}
			l.items = append(l.items, res.Items...)
			if res.Next == "" {
				break
			}
			o.After, o.Revision = res.Next, res.Revision
		}
		listings = append(listings, l)
	}
	close(stop)
	wg.Wait()
	if r.Head().Revision < listings[len(listings)-1].rev+5 {
		t.Logf("the writers made few revisions (head %d) while listing", r.Head().Revision)
	}

	for i, l := range listings {
		commit, err := r.RevisionCommit(l.rev)
		if err != nil {
			t.Fatal(err)
		}
		want, err := r.ListAt(ctx, commit, ListOptions{Prefix: "l/", Limit: 1 << 20, Values: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.items) != len(want.Items) {
			t.Errorf("listing %d at %d: %d keys, want %d", i, l.rev, len(l.items), len(want.Items))
			continue
		}
		for j, it := range l.items {
			w := want.Items[j]
			if it.Key != w.Key || it.Blob != w.Blob || string(it.Value) != string(w.Value) {
				t.Errorf("listing %d at %d: item %d is %s=%q (%s), want %s=%q (%s)", i, l.rev, j, it.Key, it.Value, it.Blob, w.Key, w.Value, w.Blob)
				break
			}
			if mod, err := r.modRevisionAt(it.Key, l.rev); err != nil || it.ModRevision != mod {
				t.Errorf("listing %d at %d: %s has mod revision %d, want %d (%v)", i, l.rev, it.Key, it.ModRevision, mod, err)
				break
			}
		}
	}
}

// TestWriteAfterClose: a write that races with Close, or comes after it,
// fails with unavailable instead of waiting forever for a committer that is
// gone.
func TestWriteAfterClose(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	r := defaultRepo(t, s)
	put(t, r, "a", "1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		done := make(chan error, 1)
		go func() {
			_, err := r.WriteOne(context.Background(), &Batch{Ops: []Op{{Kind: OpPut, Key: "b", Value: []byte("x")}}})
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, gitstate.ErrUnavailable) {
				t.Fatalf("write %d after close: %v, want unavailable", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("write %d after close still waiting after 5s", i)
		}
	}
}

// TestRepoDuringCreate: while CreateRepo makes a repo, Repo says it does not
// exist yet, never (nil, nil).
func TestRepoDuringCreate(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	put(t, defaultRepo(t, s), "a", "1")
	for i := range 5 {
		name := fmt.Sprintf("new-%d", i)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := s.Repo(name)
				if err == nil && r == nil {
					t.Errorf("Repo(%q) = nil, nil while it is being created", name)
					return
				}
				if err != nil && !errors.Is(err, gitstate.ErrRepoNotFound) {
					t.Errorf("Repo(%q): %v", name, err)
					return
				}
			}
		})
		r, err := s.CreateRepo(ctx, name)
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		put(t, r, "a", "1") // git fsck at cleanup wants a branch
	}
}

// TestFailingRequestsLeaveNoTrace has writers send requests of several
// batches while others run, so that the committer groups them: a request
// whose last batch fails must leave neither its commit on its own branch
// nor its commit on main, whatever the requests around it in its group
// did.
func TestFailingRequestsLeaveNoTrace(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	const workers, writes = 32, 15
	var wg sync.WaitGroup
	var okWrites atomic.Int64
	for w := range workers {
		wg.Go(func() {
			branch := fmt.Sprintf("refs/heads/w%02d", w)
			var tip Hash // the branch as this writer's last good request left it
			for i := range writes {
				fail := i%3 == 1
				batches := []*Batch{
					{Ref: branch, Ops: []Op{{Kind: OpPut, Key: fmt.Sprintf("b/%d", i), Value: []byte("v")}}},
					{Ops: []Op{{Kind: OpPut, Key: fmt.Sprintf("m/%02d/%d", w, i), Value: []byte("v")}}},
				}
				if fail {
					batches = append(batches, &Batch{Ops: []Op{{Kind: OpDelete, Key: "absent", MustExist: true}}})
				}
				res, err := r.Write(ctx, batches...)
				switch {
				case fail && !errors.Is(err, gitstate.ErrKeyNotFound):
					t.Errorf("writer %d, write %d: err = %v, want key_not_found", w, i, err)
					return
				case !fail && err != nil:
					t.Errorf("writer %d, write %d: %v", w, i, err)
					return
				case !fail:
					tip = res[0].Commit
					okWrites.Add(1)
				}
				if got := r.Backend().Ref(branch); got != tip {
					t.Errorf("writer %d after write %d (failing: %v): branch at %s, want %s", w, i, fail, got, tip)
					return
				}
			}
		})
	}
	wg.Wait()
	if got, want := r.Head().Revision, okWrites.Load(); got != want {
		t.Errorf("head revision %d, want %d (one per good request)", got, want)
	}
	for w := range workers {
		for i := range writes {
			_, err := r.Get(ctx, fmt.Sprintf("m/%02d/%d", w, i), 0)
			if failed := i%3 == 1; failed != errors.Is(err, gitstate.ErrKeyNotFound) {
				t.Errorf("m/%02d/%d: err = %v after a request that failed: %v", w, i, err, failed)
			}
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	gitFsck(t, s.repoDir(DefaultRepo))
}

// TestWriteOutcomeDespiteCancel: a write whose context is done as it is
// made either fails with the context's error and is not applied, or
// returns what the committer did, which is then applied. Before, a write
// the committer had taken could return "canceled" and still commit, and
// the API audited it twice (as committed and as failed).
func TestWriteOutcomeDespiteCancel(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	const n = 400
	errs := make([]error, n)
	results := make([]*Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			wctx, cancel := context.WithCancel(ctx)
			if i%2 == 0 {
				cancel() // done before the write: taken or not at random
			} else {
				time.AfterFunc(time.Duration(i%7)*100*time.Microsecond, cancel)
			}
			results[i], errs[i] = r.WriteOne(wctx, &Batch{Ops: []Op{{Kind: OpPut, Key: fmt.Sprintf("k/%03d", i), Value: []byte("v")}}})
		})
	}
	wg.Wait()
	applied, refused := 0, 0
	for i := range n {
		key := fmt.Sprintf("k/%03d", i)
		_, err := r.Get(ctx, key, 0)
		exists := err == nil
		if err != nil && !errors.Is(err, gitstate.ErrKeyNotFound) {
			t.Fatalf("get %s: %v", key, err)
		}
		switch {
		case errs[i] == nil && !exists:
			t.Errorf("write %d succeeded (revision %d) but %s is absent", i, results[i].Revision, key)
		case errs[i] != nil && exists:
			t.Errorf("write %d failed (%v) but %s was applied", i, errs[i], key)
		case errs[i] != nil && !errors.Is(errs[i], context.Canceled):
			t.Errorf("write %d: %v, want context.Canceled", i, errs[i])
		case errs[i] == nil:
			applied++
		default:
			refused++
		}
	}
	t.Logf("%d applied, %d refused before the committer took them", applied, refused)
	if refused == 0 {
		t.Log("no write was refused: the check of refused writes did not run")
	}
}
