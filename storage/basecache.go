package storage

import (
	"container/list"
	"sync"
)

// baseCache keeps recently resolved delta bases of a backend's packs, up to
// a budget of bytes, so that reading consecutive versions of a tree or a
// file (whose deltas chain through one another) does not resolve the whole
// chain each time: Git's delta base cache. It is safe for concurrent use.
type baseCache struct {
	mu     sync.Mutex // guards the fields below
	budget int
	used   int
	lru    *list.List // of *baseEntry, most recent first
	byKey  map[baseKey]*list.Element
}

type baseKey struct {
	p   *pack
	off int64
}

type baseEntry struct {
	key  baseKey
	t    ObjectType
	data []byte
}

func newBaseCache(budget int) *baseCache {
	return &baseCache{budget: budget, lru: list.New(), byKey: map[baseKey]*list.Element{}}
}

func (c *baseCache) get(p *pack, off int64) (ObjectType, []byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[baseKey{p, off}]
	if !ok {
		return 0, nil, false
	}
	c.lru.MoveToFront(e)
	be := e.Value.(*baseEntry)
	return be.t, be.data, true
}

func (c *baseCache) add(p *pack, off int64, t ObjectType, data []byte) {
	if len(data) > c.budget/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := baseKey{p, off}
	if _, ok := c.byKey[k]; ok {
		return
	}
	c.byKey[k] = c.lru.PushFront(&baseEntry{key: k, t: t, data: data})
	c.used += len(data)
	for c.used > c.budget {
		last := c.lru.Back()
		be := last.Value.(*baseEntry)
		c.lru.Remove(last)
		delete(c.byKey, be.key)
		c.used -= len(be.data)
	}
}

// drop forgets the bases of a pack that is closing.
func (c *baseCache) drop(p *pack) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		if be := e.Value.(*baseEntry); be.key.p == p {
			c.lru.Remove(e)
			delete(c.byKey, be.key)
			c.used -= len(be.data)
		}
		e = next
	}
}
