package storage

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/gitstate/gitstate"
)

// TestHotCacheFollowsHead reads keys at head before and after each kind of
// change, so that the hot cache has an entry (or an absent entry) for them
// when the change lands: every read must still see the new head.
func TestHotCacheFollowsHead(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	r := defaultRepo(t, s)
	state := map[string]string{}
	check := func(step string) {
		t.Helper()
		for _, key := range []string{"a", "b", "dir/c", "dir/d", "never"} {
			for range 2 { // the second read is served by the cache
				v, err := r.Get(ctx, key, 0)
				want, exists := state[key]
				switch {
				case !exists && !errors.Is(err, gitstate.ErrKeyNotFound):
					t.Fatalf("%s: get %s: %v, %v; want not found", step, key, v, err)
				case exists && (err != nil || string(v.Data) != want):
					t.Fatalf("%s: get %s: %v, %v; want %q", step, key, v, err, want)
				}
			}
		}
	}
	steps := []struct {
		name string
		ops  []Op
		set  map[string]string // "" deletes
	}{
		{"create", []Op{{Kind: OpPut, Key: "a", Value: []byte("1")}}, map[string]string{"a": "1"}},
		{"update", []Op{{Kind: OpPut, Key: "a", Value: []byte("2")}}, map[string]string{"a": "2"}},
		{"batch", []Op{{Kind: OpPut, Key: "b", Value: []byte("3")}, {Kind: OpPut, Key: "dir/c", Value: []byte("4")},
			{Kind: OpPut, Key: "dir/d", Value: []byte("5")}}, map[string]string{"b": "3", "dir/c": "4", "dir/d": "5"}},
		{"delete", []Op{{Kind: OpDelete, Key: "a"}}, map[string]string{"a": ""}},
		{"delete prefix", []Op{{Kind: OpDeletePrefix, Key: "dir"}}, map[string]string{"dir/c": "", "dir/d": ""}},
		{"recreate", []Op{{Kind: OpPut, Key: "a", Value: []byte("6")}, {Kind: OpPut, Key: "dir/c", Value: []byte("7")}},
			map[string]string{"a": "6", "dir/c": "7"}},
	}
	check("empty")
	for _, st := range steps {
		if _, err := r.WriteOne(ctx, &Batch{Ops: st.ops}); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for k, v := range st.set {
			if v == "" {
				delete(state, k)
			} else {
				state[k] = v
			}
		}
		check(st.name)
	}
}

// TestHotCacheRecords stores each kind of entry and reads it back: an
// inline value with every field, an absent key, and the entries it must
// not keep (a value not inline, one too large to be worth the room).
func TestHotCacheRecords(t *testing.T) {
	c := newHotStore(1 << 20).newCache()
	full := IndexEntry{Blob: HashObject(BlobObject, []byte("v")), Mode: ModeExecutable, Size: 1, ModRev: 1 << 40, Value: []byte("v"), Inline: true}
	tests := []struct {
		name string
		put  func(key string)
		want hotResult
	}{
		{"inline", func(k string) { c.put(k, &full) }, hotPresent},
		{"empty value", func(k string) {
			c.put(k, &IndexEntry{Blob: HashObject(BlobObject, nil), Mode: ModeFile, Inline: true, Value: []byte{}})
		}, hotPresent},
		{"absent", c.putAbsent, hotAbsent},
		{"not inline", func(k string) { c.put(k, &IndexEntry{Blob: full.Blob, Mode: ModeFile, Size: 1 << 20}) }, hotMiss},
		{"too large", func(k string) {
			c.put(k, &IndexEntry{Blob: full.Blob, Mode: ModeFile, Inline: true, Value: make([]byte, hotMaxRecord+1)})
		}, hotMiss},
		{"never stored", func(string) {}, hotMiss},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := "dir/" + tc.name
			tc.put(key)
			e, got := c.get(key)
			if got != tc.want {
				t.Fatalf("get: %d, want %d", got, tc.want)
			}
			if tc.name == "inline" && (e.Blob != full.Blob || e.Mode != full.Mode || e.Size != full.Size ||
				e.ModRev != full.ModRev || !e.Inline || string(e.Value) != "v") {
				t.Fatalf("get: %+v, want %+v", e, full)
			}
			c.forget(key)
			if _, got := c.get(key); got != hotMiss {
				t.Fatalf("after forget: %d, want a miss", got)
			}
		})
	}
}

// TestHotCacheScopes checks what separates entries: the repos sharing the
// store, and clear, which must hide every entry a cache held before.
func TestHotCacheScopes(t *testing.T) {
	s := newHotStore(1 << 20)
	a, b := s.newCache(), s.newCache()
	e := &IndexEntry{Blob: HashObject(BlobObject, []byte("a")), Mode: ModeFile, Size: 1, Inline: true, Value: []byte("a")}
	a.put("k", e)
	if _, got := b.get("k"); got != hotMiss {
		t.Fatalf("another repo's cache finds the key: %d", got)
	}
	if _, got := a.get("k"); got != hotPresent {
		t.Fatalf("the repo's own cache lost the key: %d", got)
	}
	a.clear()
	if _, got := a.get("k"); got != hotMiss {
		t.Fatalf("after clear: %d, want a miss", got)
	}
	long := strings.Repeat("x/", 200) // longer than the keys' stack buffer
	a.put(long, e)
	if _, got := a.get(long); got != hotPresent {
		t.Fatalf("a long key: %d", got)
	}
	off := newHotStore(-1).newCache()
	off.put("k", e)
	off.putAbsent("j")
	if _, got := off.get("k"); got != hotMiss {
		t.Fatalf("a disabled cache holds a key: %d", got)
	}
}

// TestHotCacheBound writes far more than the budget into the shared cache
// from several repos at once: it stays within its bytes, the keys written
// last are there, and the first ones gave way.
func TestHotCacheBound(t *testing.T) {
	const budget = 32 << 20 // the least the cache takes
	s := newHotStore(budget)
	t.Cleanup(s.close)
	value := make([]byte, 1000)
	const writers, perWriter = 4, 20000 // 80 MB of records
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := s.newCache()
			for i := range perWriter {
				c.put(fmt.Sprintf("k%d", i), &IndexEntry{Mode: ModeFile, Inline: true, Value: value})
			}
			last, first := 0, 0
			for i := range 1000 {
				if _, got := c.get(fmt.Sprintf("k%d", perWriter-1-i)); got == hotPresent {
					last++
				}
				if _, got := c.get(fmt.Sprintf("k%d", i)); got == hotPresent {
					first++
				}
			}
			if last < 900 || first > 100 {
				t.Errorf("writer %d: %d of the last 1,000 keys and %d of the first are cached", w, last, first)
			}
		}()
	}
	wg.Wait()
	if n := s.bytes(); n > budget || n < budget/2 {
		t.Errorf("holds %d bytes with a budget of %d", n, budget)
	}
}

// TestHotCacheOffHeap fills the cache and checks that the Go heap did not
// grow with it: the entries are off the heap, so that garbage collections
// do not scan them (a sync.Map of them was 7% of the CPU under writes).
func TestHotCacheOffHeap(t *testing.T) {
	s := newHotStore(64 << 20)
	t.Cleanup(s.close)
	c := s.newCache()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	value := make([]byte, 300)
	const n = 100000 // 30 MB of values
	for i := range n {
		c.put(fmt.Sprintf("apps/app%03d/res%05d.yaml", i%100, i), &IndexEntry{Mode: ModeFile, Inline: true, Value: value})
	}
	after := heap()
	if _, got := c.get("apps/app007/res00007.yaml"); got != hotPresent {
		t.Fatalf("the cache did not keep a key: %d", got)
	}
	if grown := int64(after) - int64(before); grown > 8<<20 {
		t.Errorf("the heap grew by %d bytes for %d entries (%d bytes in the cache)", grown, n, s.bytes())
	}
}
