package storage

import (
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
)

// treeCache keeps decoded trees by id, least recently used first out,
// bounded both by count and by an estimate of the bytes they hold: a
// directory of a few hundred entries costs tens of KiB decoded, and a
// busy repo makes several new ones per commit, so a bound by count alone
// let the cache grow to hundreds of MiB.
type treeCache struct {
	c            *lru.Cache[Hash, *Tree]
	bytes        atomic.Int64
	maxBytes     int64
	mu           sync.Mutex // serializes the trimming
	hits, misses atomic.Int64
}

func newTreeCache(entries int, maxBytes int64) (*treeCache, error) {
	tc := &treeCache{maxBytes: maxBytes}
	c, err := lru.NewWithEvict[Hash, *Tree](entries, func(_ Hash, t *Tree) {
		tc.bytes.Add(-treeBytes(t))
	})
	if err != nil {
		return nil, err
	}
	tc.c = c
	return tc, nil
}

// treeBytes estimates the memory a decoded tree holds: its entries (name
// header, id, mode) and their names, taken as 32 bytes on average (a GitOps
// layout's file and directory names), so that the estimate costs nothing
// for a directory of thousands of entries, and its encoding when kept.
func treeBytes(t *Tree) int64 {
	return int64(64 + len(t.Entries)*(48+32) + len(t.raw))
}

// Get returns the tree h and marks it recently used.
func (tc *treeCache) Get(h Hash) (*Tree, bool) {
	t, ok := tc.c.Get(h)
	if ok {
		tc.hits.Add(1)
	} else {
		tc.misses.Add(1)
	}
	return t, ok
}

// Peek returns the tree h without marking it used.
func (tc *treeCache) Peek(h Hash) (*Tree, bool) { return tc.c.Peek(h) }

// Remove drops the tree h, if it is held.
func (tc *treeCache) Remove(h Hash) { tc.c.Remove(h) }

// Add stores t as the tree h, evicting the least recently used trees while
// the cache holds more than its bytes.
func (tc *treeCache) Add(h Hash, t *Tree) {
	if tc.c.Contains(h) {
		return
	}
	tc.bytes.Add(treeBytes(t))
	tc.c.Add(h, t)
	if tc.bytes.Load() <= tc.maxBytes {
		return
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for tc.bytes.Load() > tc.maxBytes {
		if _, _, ok := tc.c.RemoveOldest(); !ok {
			return
		}
	}
}
