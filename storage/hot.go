package storage

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/VictoriaMetrics/fastcache"
)

// hotCache keeps the index entries of keys read at head, so that a key read
// again and again (a reconciler's config, a dashboard's favourite) costs a
// map lookup instead of an index read. An entry is valid at the repo's
// current head: the committer removes the keys a revision changes while it
// holds the repo's view lock for writing, and readers fill it while holding
// it for reading, so an entry never outlives the head it was read at.
//
// It remembers absent keys too (as an empty record): the server looks up
// per-repo configuration such as .gitstate/policy.yaml on every write, and
// in most repos it does not exist.
//
// The entries live in one cache for all of a store's repos (hotStore), off
// the Go heap: a map of a hundred thousand small entries, each a few
// pointers, made every garbage collection scan them. Under writes, after
// reads had filled it, that was 7% of the server's CPU.
type hotCache struct {
	store *hotStore
	// id prefixes this cache's keys in the shared cache. clear gives the
	// cache a new one, which leaves the old entries unreachable (they age
	// out), and a repo opened again under the same name never sees the
	// entries of the one before.
	id           atomic.Uint64
	hits, misses atomic.Int64
}

// hotStore is the cache a store's repos share (Options.HotCacheBytes), so
// that the memory the values take does not grow with the number of repos.
// It is a set of ring buffers: when it is full, the oldest entries give way,
// whichever repo they are of. A nil cache (HotCacheBytes < 0) holds nothing.
type hotStore struct {
	c   *fastcache.Cache
	ids atomic.Uint64
}

// hotMaxRecord is the largest record the cache keeps: larger values are read
// from the index each time rather than pushing out dozens of small ones.
const hotMaxRecord = 16 << 10

func newHotStore(maxBytes int64) *hotStore {
	s := &hotStore{}
	if maxBytes > 0 {
		s.c = fastcache.New(int(maxBytes))
	}
	return s
}

// newCache returns a repo's hot cache.
func (s *hotStore) newCache() *hotCache {
	c := &hotCache{store: s}
	c.id.Store(s.ids.Add(1))
	return c
}

// bytes returns what the cache's entries take.
func (s *hotStore) bytes() int64 {
	if s.c == nil {
		return 0
	}
	var st fastcache.Stats
	s.c.UpdateStats(&st)
	return int64(st.BytesSize)
}

// close gives the cache's memory back.
func (s *hotStore) close() {
	if s.c != nil {
		s.c.Reset()
	}
}

// hotResult is what the cache knows of a key.
type hotResult uint8

const (
	hotMiss    hotResult = iota // nothing
	hotAbsent                   // the key does not exist at head
	hotPresent                  // the key's entry
)

// key returns the cache's key for key, in buf when it fits.
func (c *hotCache) key(buf []byte, key string) []byte {
	buf = binary.BigEndian.AppendUint64(buf[:0], c.id.Load())
	return append(buf, key...)
}

// get returns key's entry and what the cache knows of it. The entry's value
// is a copy the caller owns.
func (c *hotCache) get(key string) (IndexEntry, hotResult) {
	if c.store.c == nil {
		return IndexEntry{}, hotMiss
	}
	var buf [128]byte
	rec, ok := c.store.c.HasGet(nil, c.key(buf[:], key))
	if !ok {
		c.misses.Add(1)
		return IndexEntry{}, hotMiss
	}
	if len(rec) == 0 {
		c.hits.Add(1)
		return IndexEntry{}, hotAbsent
	}
	e, err := decodeEntry(rec)
	if err != nil || !e.Inline {
		c.misses.Add(1)
		return IndexEntry{}, hotMiss
	}
	c.hits.Add(1)
	return e, hotPresent
}

// put stores an inline entry; the caller holds the view lock for reading.
func (c *hotCache) put(key string, e *IndexEntry) {
	if c.store.c == nil || !e.Inline || len(e.Value) > hotMaxRecord {
		return
	}
	var buf [128]byte
	var rec [256]byte
	c.store.c.Set(c.key(buf[:], key), appendEntry(rec[:0], e))
}

// putAbsent records that key does not exist at head; the caller holds the
// view lock for reading.
func (c *hotCache) putAbsent(key string) {
	if c.store.c == nil {
		return
	}
	var buf [128]byte
	c.store.c.Set(c.key(buf[:], key), nil)
}

// forget drops key; the caller holds the view lock for writing.
func (c *hotCache) forget(key string) {
	if c.store.c == nil {
		return
	}
	var buf [128]byte
	c.store.c.Del(c.key(buf[:], key))
}

// clear drops every entry of the cache; the caller holds the view lock for
// writing.
func (c *hotCache) clear() { c.id.Store(c.store.ids.Add(1)) }
