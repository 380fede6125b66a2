package storage

import (
	"slices"
	"sync"
	"sync/atomic"
)

// hotCache keeps the index entries of keys read at head, so that a key read
// again and again (a reconciler's config, a dashboard's favourite) costs a
// map lookup instead of an index read. An entry is valid at the repo's
// current head: the committer removes the keys a revision changes while it
// holds the repo's view lock for writing, and readers fill it while holding
// it for reading, so an entry never outlives the head it was read at. It is
// bounded by bytes, under a budget all of a store's repos share (hotBudget).
//
// It remembers absent keys too (as the absent entry): the server looks up
// per-repo configuration such as .gitstate/policy.yaml on every write, and
// in most repos it does not exist.
type hotCache struct {
	m            sync.Map     // key -> *IndexEntry (Value owned by the cache)
	bytes        atomic.Int64 // what this repo's entries take
	budget       *hotBudget
	hits, misses atomic.Int64
}

// hotBudget is the bound a store's hot caches share (Options.HotCacheBytes),
// so that the memory they take does not grow with the number of repos.
// When the caches together pass it, each gives up a quarter of what it
// holds: a repo read often fills its cache again, an idle one shrinks.
type hotBudget struct {
	bytes    atomic.Int64
	max      int64
	mu       sync.Mutex // guards caches
	caches   []*hotCache
	evicting sync.Mutex
}

// newCache returns a repo's hot cache, under the budget.
func (b *hotBudget) newCache() *hotCache {
	c := &hotCache{budget: b}
	b.mu.Lock()
	b.caches = append(b.caches, c)
	b.mu.Unlock()
	return c
}

// absent is the entry of a key that does not exist at head.
var absent = &IndexEntry{}

// get returns key's entry, or absent, and whether the cache knows the key.
func (c *hotCache) get(key string) (*IndexEntry, bool) {
	v, ok := c.m.Load(key)
	if !ok {
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return v.(*IndexEntry), true
}

// put stores an inline entry; the caller holds the view lock for reading.
func (c *hotCache) put(key string, e IndexEntry) {
	if !e.Inline || c.budget.max <= 0 {
		return
	}
	e.Value = append([]byte(nil), e.Value...)
	c.store(key, &e)
}

// putAbsent records that key does not exist at head; the caller holds the
// view lock for reading.
func (c *hotCache) putAbsent(key string) {
	if c.budget.max <= 0 {
		return
	}
	c.store(key, absent)
}

func entrySize(key string, e *IndexEntry) int64 { return int64(len(key) + len(e.Value) + 64) }

// store adds e, replacing what key had, and makes room when the caches
// hold more than their budget.
func (c *hotCache) store(key string, e *IndexEntry) {
	if prev, loaded := c.m.Swap(key, e); loaded {
		c.add(-entrySize(key, prev.(*IndexEntry)))
	}
	c.add(entrySize(key, e))
	if c.budget.bytes.Load() > c.budget.max {
		c.budget.evict()
	}
}

// add counts n bytes more (or fewer) in c and in its budget.
func (c *hotCache) add(n int64) {
	c.bytes.Add(n)
	c.budget.bytes.Add(n)
}

// evict drops entries until the caches hold three quarters of their
// budget, a quarter of each cache's bytes at a time. A map's iteration
// order is a function of the keys' hashes, so what is dropped is a sample
// of the keys, not the newest: a working set larger than the cache keeps a
// steady share of hits instead of emptying the cache each time it fills.
// One goroutine evicts at a time; the others go on.
func (b *hotBudget) evict() {
	// The check after unlocking catches an entry stored while this
	// goroutine was finishing (its storer found the lock taken).
	for b.bytes.Load() > b.max && b.evicting.TryLock() {
		dropped := b.trim()
		b.evicting.Unlock()
		if !dropped {
			return
		}
	}
}

// trim drops a quarter of each cache's bytes until the caches hold three
// quarters of the budget, and reports whether it dropped anything.
func (b *hotBudget) trim() bool {
	b.mu.Lock()
	caches := slices.Clone(b.caches)
	b.mu.Unlock()
	start := b.bytes.Load()
	for b.bytes.Load() > b.max-b.max/4 {
		before := b.bytes.Load()
		for _, c := range caches {
			held := c.bytes.Load()
			c.shrink(held - held/4)
		}
		if b.bytes.Load() >= before {
			break // nothing left to drop
		}
	}
	return b.bytes.Load() < start
}

// shrink drops entries of c until it holds at most target bytes.
func (c *hotCache) shrink(target int64) {
	c.m.Range(func(k, _ any) bool {
		if c.bytes.Load() <= target {
			return false
		}
		if v, ok := c.m.LoadAndDelete(k); ok {
			c.add(-entrySize(k.(string), v.(*IndexEntry)))
		}
		return true
	})
}

// forget drops key; the caller holds the view lock for writing.
func (c *hotCache) forget(key string) {
	if v, ok := c.m.LoadAndDelete(key); ok {
		c.add(-entrySize(key, v.(*IndexEntry)))
	}
}

// clear drops every entry.
func (c *hotCache) clear() { c.shrink(-1) }
