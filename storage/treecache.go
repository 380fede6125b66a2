package storage

import (
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
)

// treeCaches keeps a store's decoded trees, least recently used first out,
// under one bound for all its repos: by count and by an estimate of the
// bytes they hold (a directory of a few hundred entries costs tens of KiB
// decoded, and a busy repo makes several new ones per commit, so a bound
// by count alone let the cache grow to hundreds of MiB). A bound per repo
// let memory grow with the number of repos instead; under one bound, the
// repos in use keep the trees and idle ones give theirs up.
//
// Each repo sees the cache through its own treeCache: the key holds the
// repo, since the committer takes a tree it finds cached for a tree the
// repo's Git store already holds.
type treeCaches struct {
	c        *lru.Cache[treeKey, *Tree]
	bytes    atomic.Int64
	maxBytes int64
	mu       sync.Mutex // serializes the trimming
}

// treeKey is a tree of one repo.
type treeKey struct {
	repo *treeCache
	h    Hash
}

func newTreeCaches(entries int, maxBytes int64) (*treeCaches, error) {
	s := &treeCaches{maxBytes: maxBytes}
	c, err := lru.NewWithEvict[treeKey, *Tree](entries, func(k treeKey, t *Tree) {
		n := treeBytes(t)
		k.repo.bytes.Add(-n)
		s.bytes.Add(-n)
	})
	if err != nil {
		return nil, err
	}
	s.c = c
	return s, nil
}

// forRepo returns a new repo's view of the cache.
func (s *treeCaches) forRepo() *treeCache { return &treeCache{shared: s} }

// treeCache is one repo's view of its store's tree cache, with the
// repo's own counts.
type treeCache struct {
	shared       *treeCaches
	bytes        atomic.Int64 // what this repo's trees hold, as estimated
	hits, misses atomic.Int64
}

// treeBytes estimates the memory a decoded tree holds: its entries (name
// header, id, mode) and their names, taken as 32 bytes on average (a GitOps
// layout's file and directory names), so that the estimate costs nothing
// for a directory of thousands of entries, and its encoding and SHA-1
// states when kept. It must give the same figure when the tree is evicted
// as when it was added: it reads only what does not change once a tree is
// made (the committer updates the states themselves in place).
func treeBytes(t *Tree) int64 {
	n := int64(64 + len(t.Entries)*(48+32) + len(t.raw))
	if t.mid != nil {
		n += midstatesBytes(len(t.raw))
	}
	return n
}

// Get returns the tree h and marks it recently used.
func (tc *treeCache) Get(h Hash) (*Tree, bool) {
	t, ok := tc.shared.c.Get(treeKey{tc, h})
	if ok {
		tc.hits.Add(1)
	} else {
		tc.misses.Add(1)
	}
	return t, ok
}

// Peek returns the tree h without marking it used.
func (tc *treeCache) Peek(h Hash) (*Tree, bool) { return tc.shared.c.Peek(treeKey{tc, h}) }

// Remove drops the tree h, if it is held.
func (tc *treeCache) Remove(h Hash) { tc.shared.c.Remove(treeKey{tc, h}) }

// Add stores t as the tree h, evicting the least recently used trees of
// any repo while the cache holds more than its bytes.
func (tc *treeCache) Add(h Hash, t *Tree) {
	s, k := tc.shared, treeKey{tc, h}
	if s.c.Contains(k) {
		return
	}
	n := treeBytes(t)
	tc.bytes.Add(n)
	s.bytes.Add(n)
	s.c.Add(k, t)
	if s.bytes.Load() <= s.maxBytes {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.bytes.Load() > s.maxBytes {
		if _, _, ok := s.c.RemoveOldest(); !ok {
			return
		}
	}
}
