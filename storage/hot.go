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
// bounded by bytes; when full it is emptied, which is cheap and rare.
//
// It remembers absent keys too (as the absent entry): the server looks up
// per-repo configuration such as .gitstate/policy.yaml on every write, and
// in most repos it does not exist.
type hotCache struct {
	m     sync.Map // key -> *IndexEntry (Value owned by the cache)
	bytes atomic.Int64
	max   int64
}

// absent is the entry of a key that does not exist at head.
var absent = &IndexEntry{}

// get returns key's entry, or absent, and whether the cache knows the key.
func (c *hotCache) get(key string) (*IndexEntry, bool) {
	v, ok := c.m.Load(key)
	if !ok {
		return nil, false
	}
	return v.(*IndexEntry), true
}

// put stores an inline entry; the caller holds the view lock for reading.
func (c *hotCache) put(key string, e IndexEntry) {
	if !e.Inline || c.max <= 0 {
		return
	}
	size := int64(len(key) + len(e.Value) + 64)
	if c.bytes.Add(size) > c.max {
		c.clear()
		c.bytes.Add(size)
	}
	e.Value = append([]byte(nil), e.Value...)
	c.m.Store(key, &e)
}

// putAbsent records that key does not exist at head; the caller holds the
// view lock for reading.
func (c *hotCache) putAbsent(key string) {
	if c.max <= 0 {
		return
	}
	size := int64(len(key) + 64)
	if c.bytes.Add(size) > c.max {
		c.clear()
		c.bytes.Add(size)
	}
	c.m.Store(key, absent)
}

// forget drops key; the caller holds the view lock for writing.
func (c *hotCache) forget(key string) {
	if v, ok := c.m.LoadAndDelete(key); ok {
		e := v.(*IndexEntry)
		c.bytes.Add(-int64(len(key) + len(e.Value) + 64))
	}
}

func (c *hotCache) clear() {
	c.m.Clear()
	c.bytes.Store(0)
}
