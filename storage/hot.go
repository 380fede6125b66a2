package storage

import (
	"sync"
	"sync/atomic"
)

// hotCache keeps the index entries of keys read at head, so that a key read
// again and again (a reconciler's config, a dashboard's favourite) costs a
// map lookup instead of an index read. An entry is valid at the repo's
// current head: the committer removes the keys a revision changes while it
// holds the repo's view lock for writing, and readers fill it while holding
// it for reading, so an entry never outlives the head it was read at. It is
// bounded by bytes; when full, a quarter of it is dropped.
//
// It remembers absent keys too (as the absent entry): the server looks up
// per-repo configuration such as .gitstate/policy.yaml on every write, and
// in most repos it does not exist.
type hotCache struct {
	m            sync.Map // key -> *IndexEntry (Value owned by the cache)
	bytes        atomic.Int64
	max          int64
	evicting     sync.Mutex
	hits, misses atomic.Int64
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
	if !e.Inline || c.max <= 0 {
		return
	}
	e.Value = append([]byte(nil), e.Value...)
	c.store(key, &e)
}

// putAbsent records that key does not exist at head; the caller holds the
// view lock for reading.
func (c *hotCache) putAbsent(key string) {
	if c.max <= 0 {
		return
	}
	c.store(key, absent)
}

func entrySize(key string, e *IndexEntry) int64 { return int64(len(key) + len(e.Value) + 64) }

// store adds e, replacing what key had, and makes room when the cache holds
// more than its bytes.
func (c *hotCache) store(key string, e *IndexEntry) {
	if prev, loaded := c.m.Swap(key, e); loaded {
		c.bytes.Add(-entrySize(key, prev.(*IndexEntry)))
	}
	if c.bytes.Add(entrySize(key, e)) > c.max {
		c.evict()
	}
}

// evict drops entries until the cache holds three quarters of its bytes.
// The map's iteration order is a function of the keys' hashes, so what is
// dropped is a sample of the keys, not the newest: a working set larger
// than the cache keeps a steady share of hits instead of emptying the cache
// each time it fills. One goroutine evicts at a time; the others go on.
func (c *hotCache) evict() {
	// The check after unlocking catches an entry stored while this
	// goroutine was finishing (its storer found the lock taken).
	for c.bytes.Load() > c.max && c.evicting.TryLock() {
		target := c.max - c.max/4
		c.m.Range(func(k, _ any) bool {
			if c.bytes.Load() <= target {
				return false
			}
			if v, ok := c.m.LoadAndDelete(k); ok {
				c.bytes.Add(-entrySize(k.(string), v.(*IndexEntry)))
			}
			return true
		})
		c.evicting.Unlock()
	}
}

// forget drops key; the caller holds the view lock for writing.
func (c *hotCache) forget(key string) {
	if v, ok := c.m.LoadAndDelete(key); ok {
		c.bytes.Add(-entrySize(key, v.(*IndexEntry)))
	}
}

func (c *hotCache) clear() {
	c.m.Clear()
	c.bytes.Store(0)
}
