package storage

import (
	"fmt"
	"testing"
)

// cacheTree returns a tree of 100 entries, distinct for each i.
func cacheTree(i int) *Tree {
	tr := &Tree{}
	for j := range 100 {
		tr.Entries = append(tr.Entries, TreeEntry{Name: fmt.Sprintf("entry-%03d-%d", j, i), Mode: ModeFile})
	}
	return tr
}

func TestTreeCacheBounds(t *testing.T) {
	size := treeBytes(cacheTree(0))
	tests := []struct {
		name           string
		entries        int
		maxBytes       int64
		add, wantAfter int
	}{
		{"by bytes", 1000, 10 * size, 50, 10},
		{"by count", 5, 1 << 30, 50, 5},
		{"under both", 100, 1 << 30, 20, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := newTreeCaches(tc.entries, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			c := s.forRepo()
			hashes := make([]Hash, tc.add)
			for i := range tc.add {
				tr := cacheTree(i)
				hashes[i] = NewObject(TreeObject, tr.Encode()).Hash
				c.Add(hashes[i], tr)
				c.Add(hashes[i], tr) // a second Add counts once
			}
			if n := len(c.keys()); n != tc.wantAfter {
				t.Errorf("holds %d trees, want %d", n, tc.wantAfter)
			}
			if b := c.bytes.Load(); b != int64(tc.wantAfter)*size || s.bytes.Load() != b {
				t.Errorf("counts %d bytes (all repos %d), want %d", b, s.bytes.Load(), int64(tc.wantAfter)*size)
			}
			if _, ok := c.Peek(hashes[tc.add-1]); !ok {
				t.Error("the newest tree was evicted")
			}
			if _, ok := c.Get(hashes[0]); ok && tc.wantAfter < tc.add {
				t.Error("the oldest tree was kept")
			}
		})
	}
}

// TestTreeCacheShared checks that repos share one bound, each seeing only
// its own trees, and that an idle repo's trees give way to a busy one's.
func TestTreeCacheShared(t *testing.T) {
	size := treeBytes(cacheTree(0))
	s, err := newTreeCaches(1000, 10*size)
	if err != nil {
		t.Fatal(err)
	}
	idle, busy := s.forRepo(), s.forRepo()
	same := cacheTree(0)
	h := NewObject(TreeObject, same.Encode()).Hash
	idle.Add(h, same)
	if _, ok := busy.Peek(h); ok {
		t.Fatal("a tree cached for one repo is found for another")
	}
	busy.Add(h, same)
	if idle.bytes.Load() != size || busy.bytes.Load() != size || s.bytes.Load() != 2*size {
		t.Fatalf("bytes: idle %d, busy %d, all %d; want %d, %d, %d", idle.bytes.Load(), busy.bytes.Load(), s.bytes.Load(), size, size, 2*size)
	}
	busy.Remove(h)
	if _, ok := idle.Peek(h); !ok {
		t.Fatal("removing one repo's tree removed another's")
	}
	for i := 1; i <= 20; i++ {
		tr := cacheTree(i)
		busy.Add(NewObject(TreeObject, tr.Encode()).Hash, tr)
	}
	if _, ok := idle.Peek(h); ok {
		t.Error("the idle repo's old tree outlived 20 newer ones under a bound of 10")
	}
	if n := len(busy.keys()); n != 10 || idle.bytes.Load() != 0 || s.bytes.Load() != 10*size {
		t.Errorf("busy repo holds %d trees, idle %d bytes, all %d bytes; want 10, 0, %d", n, idle.bytes.Load(), s.bytes.Load(), 10*size)
	}
}

// keys returns the ids of the trees held for this repo, oldest first.
func (tc *treeCache) keys() []Hash {
	var hs []Hash
	for _, k := range tc.shared.c.Keys() {
		if k.repo == tc {
			hs = append(hs, k.h)
		}
	}
	return hs
}
