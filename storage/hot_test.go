package storage

import (
	"context"
	"errors"
	"fmt"
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

// TestHotCacheBound fills a small cache far past its bytes, from many
// goroutines at once, re-reading keys too: it stays within its bound, keeps
// a share of the keys (it does not empty itself), and its count of bytes
// matches what it holds.
func TestHotCacheBound(t *testing.T) {
	c := (&hotBudget{max: 64 << 10}).newCache()
	value := make([]byte, 200)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				key := fmt.Sprintf("k%d", (i*7+w)%3000)
				if i%5 == 0 {
					c.putAbsent(key + "/none")
				}
				c.put(key, IndexEntry{Inline: true, Value: value})
			}
		}()
	}
	wg.Wait()
	held, n := hotHeld(t, c)
	if held > c.budget.max {
		t.Errorf("holds %d bytes, over its %d", held, c.budget.max)
	}
	if held < c.budget.max/2 || n == 0 {
		t.Errorf("holds %d bytes in %d entries after filling: emptied rather than trimmed", held, n)
	}
}

// hotHeld returns the bytes and entries c holds, checking its count of
// bytes against them.
func hotHeld(t *testing.T, c *hotCache) (int64, int) {
	t.Helper()
	var held int64
	n := 0
	c.m.Range(func(k, v any) bool {
		held += entrySize(k.(string), v.(*IndexEntry))
		n++
		return true
	})
	if held != c.bytes.Load() {
		t.Errorf("counts %d bytes, holds %d", c.bytes.Load(), held)
	}
	return held, n
}

// TestHotCacheShared fills one repo's cache to the budget, then writes
// another's far past it: the two stay within the one budget together, the
// busy repo keeps a share of its keys, and the idle one gives up most of
// its own.
func TestHotCacheShared(t *testing.T) {
	b := &hotBudget{max: 64 << 10}
	idle, busy := b.newCache(), b.newCache()
	value := make([]byte, 200)
	for i := range 300 {
		idle.put(fmt.Sprintf("k%d", i), IndexEntry{Inline: true, Value: value})
	}
	idleBefore, _ := hotHeld(t, idle)
	for i := range 5000 {
		busy.put(fmt.Sprintf("k%d", i%3000), IndexEntry{Inline: true, Value: value})
	}
	idleHeld, _ := hotHeld(t, idle)
	busyHeld, n := hotHeld(t, busy)
	if idleHeld+busyHeld != b.bytes.Load() {
		t.Errorf("the budget counts %d bytes, the caches hold %d", b.bytes.Load(), idleHeld+busyHeld)
	}
	if idleHeld+busyHeld > b.max {
		t.Errorf("the caches hold %d bytes together, over the budget's %d", idleHeld+busyHeld, b.max)
	}
	if busyHeld < b.max/2 || n == 0 {
		t.Errorf("the busy repo holds %d bytes in %d entries: it should have most of the budget", busyHeld, n)
	}
	if idleHeld > idleBefore/4 {
		t.Errorf("the idle repo still holds %d of its %d bytes", idleHeld, idleBefore)
	}
}
