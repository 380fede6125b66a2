package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// The index maps each repo's keys at head to their blob ids, sizes and
// modification revisions (and small values inline), and keeps a record of
// every revision on main (its commit and the keys it changed). It is a cache
// of what Git holds: it can be deleted at any time and is rebuilt from Git at
// the next start. Writes to it are not synced; an index that lags Git after
// a crash is caught up at start from its recorded head.
//
// Layout (one pebble database for all repos; repo names never hold a NUL):
//
//	'e' repo 0 key            -> entry: blob, mode, size, mod revision, [value]
//	'r' repo 0 rev(BE64)      -> RevisionInfo (binary: see appendRevRecord)
//	'h' repo 0 key 0 rev(BE64) -> "" (the revisions that changed key)
//	'm' repo                  -> meta: format, head revision, head commit
type Index struct {
	db  *pebble.DB
	log *slog.Logger

	// written counts the bytes committed since the last flush at a pause
	// (flushIdle); last is when the last batch was committed (Unix ns);
	// armed is set while a check for a pause is scheduled.
	written, last atomic.Int64
	armed         atomic.Bool
	// mu orders flushes at a pause with Close; closed is set by Close.
	mu     sync.Mutex
	closed bool
	// batches keeps indexBatches' buffers for reuse.
	batches sync.Pool
}

// The index's memtable is flushed once writes pause for indexIdleFlush, if
// at least indexIdleFlushBytes were written to it. Pebble flushes a full
// memtable (32 MiB) wherever the writes are; the flush, and the compactions
// the new table starts, then take the CPU of a burst of writes. Flushed at
// the pause after a burst, the next burst starts with an empty memtable
// (whose inserts are also cheaper), and a crash leaves less of the log to
// replay. Smaller amounts wait for the next pause, so that a trickle of
// writes does not make a table each.
const (
	indexIdleFlush      = 250 * time.Millisecond
	indexIdleFlushBytes = 4 << 20
)

// indexFormat is the layout's version: an index of another is rebuilt.
// Format 2 made revision records binary (see appendRevRecord).
const indexFormat = 2

// IndexEntry is what the index knows of a key at head.
type IndexEntry struct {
	Blob   Hash
	Mode   uint32
	Size   int64
	ModRev int64
	// Value is the value when it is small enough to be kept inline, else nil.
	Value  []byte
	Inline bool
}

// RevisionInfo describes one revision of main.
type RevisionInfo struct {
	Revision int64       `json:"revision"`
	Commit   string      `json:"commit"`
	Parents  []string    `json:"parents"`
	Author   string      `json:"author"`
	Email    string      `json:"email"`
	Time     int64       `json:"time"`
	Message  string      `json:"message"`
	Changes  []KeyChange `json:"changes"`
}

// KeyChange is one key changed by a revision. Op is "put", "delete" or
// "move" (then From is the key it moved from). ETag is the new blob id (empty
// for a delete).
type KeyChange struct {
	Key  string `json:"key"`
	Op   string `json:"op"`
	From string `json:"from,omitempty"`
	ETag string `json:"etag,omitempty"`
}

// indexMeta is the index's record of a repo.
type indexMeta struct {
	Format   int    `json:"format"`
	Revision int64  `json:"revision"`
	Commit   string `json:"commit"`
}

// OpenIndex opens (creating it if needed) the index in dir.
func OpenIndex(dir string, cacheBytes int64, log *slog.Logger) (*Index, error) {
	if cacheBytes <= 0 {
		cacheBytes = 64 << 20
	}
	// Every commit writes its keys' entries and a revision record; a larger
	// memtable than the 4 MiB default flushes less often and leaves
	// compactions less to rewrite.
	const memTableSize = 32 << 20
	// Pebble charges its memtables to the block cache: each reserves its
	// size there (the one being written, the one being flushed or kept
	// for reuse). The cache is sized for both, so that cacheBytes are left
	// for blocks; sized at cacheBytes alone, two 32 MiB memtables took all
	// of it and no block stayed cached.
	cache := pebble.NewCache(cacheBytes + 2*memTableSize)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:        cache,
		Logger:       pebbleLogger{log},
		MemTableSize: memTableSize,
	}
	// Point reads at head (GET of a key, a missing key) skip tables with a
	// bloom filter.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", dir, err)
	}
	return &Index{db: db, log: log}, nil
}

// wrote records a committed batch of n bytes, and schedules a flush at the
// next pause once enough is written.
func (ix *Index) wrote(n int) {
	ix.last.Store(time.Now().UnixNano())
	if ix.written.Add(int64(n)) >= indexIdleFlushBytes && ix.armed.CompareAndSwap(false, true) {
		time.AfterFunc(indexIdleFlush, ix.flushIdle)
	}
}

// flushIdle flushes the memtable if no batch was committed for
// indexIdleFlush, or else looks again when that much time has passed since
// the last one.
func (ix *Index) flushIdle() {
	if wait := indexIdleFlush - time.Since(time.Unix(0, ix.last.Load())); wait > 0 {
		time.AfterFunc(wait, ix.flushIdle)
		return
	}
	ix.written.Store(0)
	ix.armed.Store(false)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return
	}
	if err := ix.db.Flush(); err != nil {
		ix.log.Warn("index flush at a pause failed; pebble flushes when its memtable fills", "err", err)
	}
}

// Close flushes and closes the index. Pebble does not flush its memtable
// on close; flushing first makes the next open fast (no log to replay).
func (ix *Index) Close() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.closed = true
	err := ix.db.Flush()
	if cerr := ix.db.Close(); err == nil {
		err = cerr
	}
	return err
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "index")
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "index")
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "index")
	panic(fmt.Sprintf(format, args...))
}

func repoKey(tag byte, repo string) []byte {
	return appendRepoKey(make([]byte, 0, 2+len(repo)+64), tag, repo)
}

func appendRepoKey(b []byte, tag byte, repo string) []byte {
	b = append(b, tag)
	b = append(b, repo...)
	return append(b, 0)
}

func entryKey(repo, key string) []byte { return append(repoKey('e', repo), key...) }

func revKey(repo string, rev int64) []byte { return appendRevKey(nil, repo, rev) }

func appendRevKey(b []byte, repo string, rev int64) []byte {
	return binary.BigEndian.AppendUint64(appendRepoKey(b, 'r', repo), uint64(rev))
}

func appendHistoryKey(b []byte, repo, key string, rev int64) []byte {
	b = append(appendRepoKey(b, 'h', repo), key...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, uint64(rev))
}

func metaKey(repo string) []byte { return []byte("m" + repo) }

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func appendEntry(b []byte, e *IndexEntry) []byte {
	b = append(b, e.Blob[:]...)
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.AppendUvarint(b, uint64(e.Size))
	b = binary.AppendUvarint(b, uint64(e.ModRev))
	if e.Inline {
		b = append(b, 1)
		b = append(b, e.Value...)
	} else {
		b = append(b, 0)
	}
	return b
}

var errBadEntry = errors.New("index: malformed entry")

// decodeEntry decodes an entry; the value aliases b.
func decodeEntry(b []byte) (IndexEntry, error) {
	var e IndexEntry
	if len(b) < 21 {
		return e, errBadEntry
	}
	copy(e.Blob[:], b)
	b = b[20:]
	var vals [3]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return e, errBadEntry
		}
		vals[i] = v
		b = b[n:]
	}
	e.Mode, e.Size, e.ModRev = uint32(vals[0]), int64(vals[1]), int64(vals[2])
	if len(b) < 1 {
		return e, errBadEntry
	}
	if b[0] == 1 {
		e.Inline = true
		e.Value = b[1:]
	}
	return e, nil
}

// indexReader reads the index: the database itself or a snapshot of it.
type indexReader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

func getValue(r indexReader, key []byte) ([]byte, bool, error) {
	v, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := bytes.Clone(v)
	c.Close()
	return out, true, nil
}

func (ix *Index) meta(repo string) (indexMeta, bool, error) {
	v, ok, err := getValue(ix.db, metaKey(repo))
	if err != nil || !ok {
		return indexMeta{}, ok, err
	}
	var m indexMeta
	if err := json.Unmarshal(v, &m); err != nil {
		return indexMeta{}, false, fmt.Errorf("index meta: %w", err)
	}
	return m, true, nil
}

func getEntry(r indexReader, repo, key string) (IndexEntry, bool, error) {
	v, ok, err := getValue(r, entryKey(repo, key))
	if err != nil || !ok {
		return IndexEntry{}, ok, err
	}
	e, err := decodeEntry(v)
	return e, err == nil, err
}

// scanEntries calls fn for each entry of repo whose key starts with prefix
// and sorts after after, in key order, until fn returns false.
func scanEntries(r indexReader, repo, prefix, after string, fn func(key string, e IndexEntry) bool) error {
	base := repoKey('e', repo)
	lower := append(bytes.Clone(base), prefix...)
	upper := prefixEnd(lower)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	var ok bool
	if after != "" {
		seek := append(bytes.Clone(base), after...)
		seek = append(seek, 0) // the first key after "after"
		ok = it.SeekGE(seek)
	} else {
		ok = it.First()
	}
	for ; ok; ok = it.Next() {
		e, err := decodeEntry(it.Value())
		if err != nil {
			return err
		}
		if !fn(string(it.Key()[len(base):]), e) {
			break
		}
	}
	return it.Error()
}

func getRevision(r indexReader, repo string, rev int64) (*RevisionInfo, bool, error) {
	v, ok, err := getValue(r, revKey(repo, rev))
	if err != nil || !ok {
		return nil, ok, err
	}
	ri, err := decodeRevRecord(v)
	if err != nil {
		return nil, false, fmt.Errorf("index revision %d: %w", rev, err)
	}
	return ri, true, nil
}

// indexBatch collects the index changes of a group of commits. Keys and
// values are encoded into buffers it reuses (Set copies them into the
// batch): a commit writes four or five records, and encoding each into a
// new slice was most of what indexing a commit allocated.
// indexBatch collects a batch of index writes and applies them in key
// order. Pebble inserts a batch's keys into its memtable (a skiplist) in the
// batch's order, and each insert starts its search from where the last one
// ended when the new key lies beyond it. In commit order a commit's entry,
// revision and history keys lie far apart, and every insert searched the
// skiplist from its top (the memtable's inserts were 9% of the server's CPU
// under 64 writers). Sorted, a group's revision records go in one after
// another, and the other keys' searches start lower. The sort is stable, so
// that of two writes of one key the later still wins.
type indexBatch struct {
	ix   *Index
	repo string
	// buf holds the ops' keys and values, back to back.
	buf []byte
	ops []batchOp
	// key and value are scratch space for encoding one op.
	key, value []byte
}

// batchOp is one write of an indexBatch: its key is buf[off:off+klen], and
// its value follows it.
type batchOp struct {
	off, klen, vlen uint32
	del             bool
}

// maxPooledBatch is the largest buffer a batch keeps for reuse: the
// publisher's batches take a few KiB, a rebuild's a few MiB.
const maxPooledBatch = 1 << 20

func (ix *Index) newBatch(repo string) *indexBatch {
	ib, _ := ix.batches.Get().(*indexBatch)
	if ib == nil {
		ib = &indexBatch{ix: ix}
	}
	ib.repo = repo
	return ib
}

// add queues a write of key (a delete if del).
func (ib *indexBatch) add(key, value []byte, del bool) {
	ib.ops = append(ib.ops, batchOp{off: uint32(len(ib.buf)), klen: uint32(len(key)), vlen: uint32(len(value)), del: del})
	ib.buf = append(append(ib.buf, key...), value...)
}

func (ib *indexBatch) opKey(op batchOp) []byte { return ib.buf[op.off : op.off+op.klen] }

func (ib *indexBatch) opValue(op batchOp) []byte {
	return ib.buf[op.off+op.klen : op.off+op.klen+op.vlen]
}

func (ib *indexBatch) setEntry(key string, e *IndexEntry) {
	ib.key = append(appendRepoKey(ib.key[:0], 'e', ib.repo), key...)
	ib.value = appendEntry(ib.value[:0], e)
	ib.add(ib.key, ib.value, false)
}

func (ib *indexBatch) deleteEntry(key string) {
	ib.key = append(appendRepoKey(ib.key[:0], 'e', ib.repo), key...)
	ib.add(ib.key, nil, true)
}

func (ib *indexBatch) addRevision(ri *RevisionInfo) error {
	v, err := appendRevRecord(ib.value[:0], ri)
	if err != nil {
		return err
	}
	ib.value = v
	ib.key = appendRevKey(ib.key[:0], ib.repo, ri.Revision)
	ib.add(ib.key, v, false)
	for _, c := range ri.Changes {
		ib.key = appendHistoryKey(ib.key[:0], ib.repo, c.Key, ri.Revision)
		ib.add(ib.key, nil, false)
		if c.From != "" {
			ib.key = appendHistoryKey(ib.key[:0], ib.repo, c.From, ri.Revision)
			ib.add(ib.key, nil, false)
		}
	}
	return nil
}

func (ib *indexBatch) setHead(rev int64, commit Hash) {
	v, _ := json.Marshal(indexMeta{Format: indexFormat, Revision: rev, Commit: commit.String()})
	ib.add(metaKey(ib.repo), v, false)
}

// commit applies the batch, in key order, without syncing. The batch is
// not to be used after.
func (ib *indexBatch) commit() error {
	defer ib.discard()
	slices.SortStableFunc(ib.ops, func(a, b batchOp) int { return bytes.Compare(ib.opKey(a), ib.opKey(b)) })
	b := ib.ix.db.NewBatch()
	defer b.Close()
	for _, op := range ib.ops {
		var err error
		if op.del {
			err = b.Delete(ib.opKey(op), nil)
		} else {
			err = b.Set(ib.opKey(op), ib.opValue(op), nil)
		}
		if err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	ib.ix.wrote(len(b.Repr()))
	return nil
}

// discard drops the batch's writes; the batch is not to be used after.
func (ib *indexBatch) discard() {
	if cap(ib.buf) > maxPooledBatch {
		return
	}
	ib.buf, ib.ops = ib.buf[:0], ib.ops[:0]
	ib.ix.batches.Put(ib)
}

// dropRepo removes everything the index holds for repo.
func (ix *Index) dropRepo(repo string) error {
	for _, tag := range []byte{'e', 'r', 'c', 'h'} {
		k := repoKey(tag, repo)
		if err := ix.db.DeleteRange(k, prefixEnd(k), pebble.NoSync); err != nil {
			return err
		}
	}
	return ix.db.Delete(metaKey(repo), pebble.NoSync)
}

// revisions returns the commit of every revision of repo, from 1, as the
// index records them: the commit is the first field of each revision
// record. (Format 2 indexes written before this also hold a 'c' record per
// commit, its revision: they are no longer read, and dropRepo removes
// them.)
func (ix *Index) revisions(repo string, head int64) ([]Hash, error) {
	revs := make([]Hash, head+1)
	lower := repoKey('r', repo)
	it, err := ix.db.NewIter(&pebble.IterOptions{
		LowerBound: revKey(repo, 1),
		UpperBound: revKey(repo, head+1),
	})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(lower)+8 {
			return nil, errors.New("index: malformed revision key")
		}
		rev := int64(binary.BigEndian.Uint64(k[len(lower):]))
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		h, err := revRecordCommit(v, rev)
		if err != nil {
			return nil, fmt.Errorf("index: revision %d: %w", rev, err)
		}
		revs[rev] = h
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	for i := int64(1); i <= head; i++ {
		if revs[i].IsZero() {
			return nil, fmt.Errorf("index: revision %d has no commit", i)
		}
	}
	return revs, nil
}

// keyHistory calls fn with the revisions that changed key, newest first,
// below before (0 = no bound), until fn returns false.
func (ix *Index) keyHistory(repo, key string, before int64, fn func(rev int64) bool) error {
	lower := append(repoKey('h', repo), key...)
	lower = append(lower, 0)
	it, err := ix.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return err
	}
	defer it.Close()
	var ok bool
	if before > 0 {
		ok = it.SeekLT(binary.BigEndian.AppendUint64(bytes.Clone(lower), uint64(before)))
	} else {
		ok = it.Last()
	}
	for ; ok; ok = it.Prev() {
		k := it.Key()
		if len(k) != len(lower)+8 {
			continue
		}
		if !fn(int64(binary.BigEndian.Uint64(k[len(lower):]))) {
			break
		}
	}
	return it.Error()
}
