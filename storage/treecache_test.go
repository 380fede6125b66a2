package storage

import (
	"fmt"
	"testing"
)

func TestTreeCacheBounds(t *testing.T) {
	wide := func(i int) *Tree {
		tr := &Tree{}
		for j := range 100 {
			tr.Entries = append(tr.Entries, TreeEntry{Name: fmt.Sprintf("entry-%03d-%d", j, i), Mode: ModeFile})
		}
		return tr
	}
	size := treeBytes(wide(0))
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
			c, err := newTreeCache(tc.entries, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			hashes := make([]Hash, tc.add)
			for i := range tc.add {
				tr := wide(i)
				hashes[i] = NewObject(TreeObject, tr.Encode()).Hash
				c.Add(hashes[i], tr)
				c.Add(hashes[i], tr) // a second Add counts once
			}
			if n := c.c.Len(); n != tc.wantAfter {
				t.Errorf("holds %d trees, want %d", n, tc.wantAfter)
			}
			if b := c.bytes.Load(); b != int64(tc.wantAfter)*size {
				t.Errorf("counts %d bytes, want %d", b, int64(tc.wantAfter)*size)
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
