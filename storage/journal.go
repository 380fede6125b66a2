package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The journal is a repo's write-ahead log. A group of commits is durable
// once its record (every new object, every ref update) is in the journal and
// the journal is synced: one fdatasync covers the whole group. A flusher
// later writes the same objects as a pack and the refs as files, which is
// what Git sees, and then writes a checkpoint record; at open, the records
// after the last checkpoint are applied again (they are idempotent).
//
// A segment is a file of records:
//
//	record := length uint32 | crc32c(payload) uint32 | payload
//	payload := recGroup objects refs [notes] | recCheckpoint seg off
//
// A group's notes (see NoteSink) follow its refs; a group without notes
// ends after its refs, as groups did before notes existed.
//
// A torn record at the end of the last segment (a crash in the middle of a
// write that was never acknowledged) is cut off at open.

const (
	// journalSegmentSize is the size past which a segment is rotated, and
	// the size new segments are preallocated to. The first segments of a
	// repo are smaller (see segmentSize), so that an idle repo's journal
	// stays small.
	journalSegmentSize = 64 << 20
	journalSegmentMin  = 1 << 20
	recGroup           = 1
	recCheckpoint      = 2
	// journalDelta, set in an object's type byte, marks it as written as
	// a delta: the base's id, then the delta in Git's format.
	journalDelta  = 0x80
	maxRecordSize = 1 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// journalPos is a position in the journal: a segment and an offset in it.
type journalPos struct {
	seg uint64
	off int64
}

func (p journalPos) less(q journalPos) bool {
	return p.seg < q.seg || p.seg == q.seg && p.off < q.off
}

// RefUpdate moves a ref from Old to New. A zero Old means the ref must not
// exist; a zero New deletes it.
type RefUpdate struct {
	Name     string
	Old, New Hash
}

// group is the content of one group record.
type group struct {
	objects []*Object
	refs    []RefUpdate
	notes   [][]byte
}

type journal struct {
	dir string

	mu    sync.Mutex // guards the fields below
	f     *os.File
	seg   uint64 // the segment being written
	first uint64 // the oldest segment not yet removed
	size  int64
	buf   []byte
	// prep is the next segment, preallocated in the background under its
	// .prep name (nil until it is ready); preparing is set meanwhile.
	prep      *os.File
	prepSeg   uint64
	preparing bool
	closed    bool
	wg        sync.WaitGroup
	// synced is the position up to which every record is durable.
	synced journalPos

	syncMu sync.Mutex // serializes syncs
}

func segmentName(seg uint64) string { return fmt.Sprintf("%016x.wal", seg) }

// segmentSize is the preallocated size of a segment: 1 MiB for the first,
// doubling up to journalSegmentSize.
func segmentSize(seg uint64) int64 {
	if seg > 7 {
		return journalSegmentSize
	}
	return min(int64(journalSegmentMin)<<(seg-1), journalSegmentSize)
}

// Segments are preallocated: written with zeros and synced before the
// first record goes in, so that an fdatasync after an append flushes data
// only (the file's size and block map do not change), which is both faster
// and steadier. The zeros after the last record mark the end of a segment.

// preallocate writes a segment of size zero bytes under path and syncs it.
func preallocate(path string, size int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	zeros := make([]byte, min(size, 1<<20))
	for off := int64(0); off < size; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), size-off)], off); err != nil {
			f.Close()
			os.Remove(path)
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return f, nil
}

// prepareNextLocked starts preallocating the segment after the current one
// in the background, unless that is under way or done.
func (j *journal) prepareNextLocked() {
	if j.preparing || j.closed || (j.prep != nil && j.prepSeg == j.seg+1) {
		return
	}
	if j.prep != nil {
		j.prep.Close()
		os.Remove(j.prep.Name())
		j.prep = nil
	}
	seg := j.seg + 1
	j.preparing = true
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		f, err := preallocate(filepath.Join(j.dir, segmentName(seg)+".prep"), segmentSize(seg))
		j.mu.Lock()
		defer j.mu.Unlock()
		j.preparing = false
		if err != nil {
			return // rotation creates the segment itself
		}
		if j.closed || j.seg+1 != seg {
			f.Close()
			os.Remove(f.Name())
			return
		}
		j.prep, j.prepSeg = f, seg
	}()
}

// openJournal opens the journal in dir, creating it if needed, and returns
// the groups recorded after the last checkpoint, in order. base reads the
// objects already in Git's files, which journaled deltas may refer to.
func openJournal(dir string, base func(Hash) (*Object, error)) (*journal, []group, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var segs []uint64
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".prep") {
			// A segment that was being preallocated: never used.
			os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		var seg uint64
		if n, _ := fmt.Sscanf(e.Name(), "%016x.wal", &seg); n == 1 && strings.HasSuffix(e.Name(), ".wal") {
			segs = append(segs, seg)
		}
	}
	slices.Sort(segs)
	j := &journal{dir: dir}
	type posGroup struct {
		end     journalPos
		payload []byte
	}
	var groups []posGroup
	var checkpoint journalPos
	for i, seg := range segs {
		last := i == len(segs)-1
		path := filepath.Join(dir, segmentName(seg))
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, err
		}
		off := int64(0)
		for {
			payload, n, err := readRecord(data[off:])
			if err == io.EOF {
				break
			}
			if err != nil {
				if !last {
					return nil, nil, fmt.Errorf("journal %s at %d: %w", path, off, err)
				}
				// A torn write at the tail: cut it off, zeroing what
				// follows the last good record, so that it can never be
				// read as records again.
				if err := zeroFrom(path, off); err != nil {
					return nil, nil, err
				}
				break
			}
			off += n
			switch payload[0] {
			case recGroup:
				groups = append(groups, posGroup{journalPos{seg, off}, payload[1:]})
			case recCheckpoint:
				if len(payload) != 17 {
					return nil, nil, fmt.Errorf("journal %s: bad checkpoint", path)
				}
				checkpoint = journalPos{binary.BigEndian.Uint64(payload[1:]), int64(binary.BigEndian.Uint64(payload[9:]))}
			default:
				return nil, nil, fmt.Errorf("journal %s: unknown record %d", path, payload[0])
			}
		}
		if last {
			j.seg, j.size = seg, off
		}
	}
	var out []group
	seen := map[Hash][]byte{}
	for _, pg := range groups {
		if checkpoint.less(pg.end) {
			g, err := decodeGroup(pg.payload, seen, base)
			if err != nil {
				return nil, nil, fmt.Errorf("journal %s: %w", segmentName(pg.end.seg), err)
			}
			out = append(out, g)
		}
	}
	if len(segs) == 0 {
		j.seg = 1
		j.first = 1
	} else {
		j.first = segs[0]
	}
	if len(segs) == 0 {
		path := filepath.Join(dir, segmentName(j.seg))
		if j.f, err = preallocate(path+".prep", segmentSize(j.seg)); err != nil {
			return nil, nil, err
		}
		if err := os.Rename(path+".prep", path); err != nil {
			j.f.Close()
			return nil, nil, err
		}
		if err := syncDir(dir); err != nil {
			j.f.Close()
			return nil, nil, err
		}
	} else if j.f, err = os.OpenFile(filepath.Join(dir, segmentName(j.seg)), os.O_WRONLY, 0o644); err != nil {
		return nil, nil, err
	}
	j.mu.Lock()
	j.synced = journalPos{j.seg, j.size}
	j.prepareNextLocked()
	j.mu.Unlock()
	return j, out, nil
}

// zeroFrom overwrites a segment with zeros from off to its end, and syncs
// it.
func zeroFrom(path string, off int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	zeros := make([]byte, 1<<20)
	for p := off; p < st.Size(); p += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), st.Size()-p)], p); err != nil {
			return err
		}
	}
	return f.Sync()
}

func readRecord(b []byte) (payload []byte, n int64, err error) {
	if len(b) == 0 {
		return nil, 0, io.EOF
	}
	if allZero(b[:min(len(b), 8)]) {
		// The preallocated end of the segment, if nothing but zeros
		// follows; anything else is damage.
		if allZero(b) {
			return nil, 0, io.EOF
		}
		return nil, 0, errors.New("data after the end of the records")
	}
	if len(b) < 8 {
		return nil, 0, errors.New("short record header")
	}
	l := binary.BigEndian.Uint32(b)
	if l == 0 || l > maxRecordSize || int64(len(b)-8) < int64(l) {
		return nil, 0, errors.New("bad record length")
	}
	payload = b[8 : 8+l]
	if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(b[4:]) {
		return nil, 0, errors.New("record checksum mismatch")
	}
	return payload, int64(8 + l), nil
}

// appendGroup writes a group record (not synced) and returns the position
// after it. An object with a DeltaBase that this group holds, or that base
// returns (objects committed earlier and not yet flushed), is written as a
// delta against it: a commit rewrites each directory on its key's path, and
// the journal then holds the changed entries rather than the whole trees.
// base may be nil.
func (j *journal) appendGroup(g *group, base func(Hash) []byte) (journalPos, error) {
	var here map[Hash][]byte
	j.mu.Lock()
	defer j.mu.Unlock()
	b := j.buf[:0]
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, recGroup)
	b = binary.AppendUvarint(b, uint64(len(g.objects)))
	for _, o := range g.objects {
		var d []byte
		if !o.DeltaBase.IsZero() {
			bd, ok := here[o.DeltaBase]
			if !ok && base != nil {
				bd = base(o.DeltaBase)
			}
			if bd != nil {
				if o.spanSet {
					d = makeSpanDelta(bd, o.Data, o.span[0], o.span[1])
				} else {
					d = makeDelta(bd, o.Data)
				}
				o.delta = d
			}
		}
		if o.Type == TreeObject {
			if here == nil {
				here = map[Hash][]byte{}
			}
			here[o.Hash] = o.Data
		}
		if d != nil {
			b = append(b, byte(o.Type)|journalDelta)
			b = append(b, o.DeltaBase[:]...)
			b = binary.AppendUvarint(b, uint64(len(d)))
			b = append(b, d...)
			continue
		}
		b = append(b, byte(o.Type))
		b = binary.AppendUvarint(b, uint64(len(o.Data)))
		b = append(b, o.Data...)
	}
	b = binary.AppendUvarint(b, uint64(len(g.refs)))
	for _, r := range g.refs {
		b = binary.AppendUvarint(b, uint64(len(r.Name)))
		b = append(b, r.Name...)
		b = append(b, r.Old[:]...)
		b = append(b, r.New[:]...)
	}
	if len(g.notes) > 0 {
		b = binary.AppendUvarint(b, uint64(len(g.notes)))
		for _, n := range g.notes {
			b = binary.AppendUvarint(b, uint64(len(n)))
			b = append(b, n...)
		}
	}
	j.buf = b
	return j.writeLocked(b)
}

func (j *journal) writeLocked(b []byte) (journalPos, error) {
	payload := b[8:]
	if len(payload) > maxRecordSize {
		return journalPos{}, errors.New("journal record too large")
	}
	binary.BigEndian.PutUint32(b, uint32(len(payload)))
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(payload, crcTable))
	if _, err := j.f.WriteAt(b, j.size); err != nil {
		// The file may now hold part of the record: the next record is
		// written over it.
		return journalPos{}, fmt.Errorf("journal write: %w", err)
	}
	j.size += int64(len(b))
	return journalPos{j.seg, j.size}, nil
}

// sync makes every record written so far durable, and starts a new segment
// when the current one is full.
func (j *journal) sync() error {
	_, err := j.syncTo(journalPos{seg: ^uint64(0)})
	return err
}

// syncTo makes every record up to pos durable, syncing only if an earlier
// sync has not already covered it (a committer that writes the next group
// while the last one syncs finds it synced by then). It reports whether it
// synced.
func (j *journal) syncTo(pos journalPos) (bool, error) {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	f, seg, size := j.f, j.seg, j.size
	done := !j.synced.less(pos) || j.synced == journalPos{seg, size}
	j.mu.Unlock()
	if done {
		return false, nil
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return true, fmt.Errorf("journal sync: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	// Only syncs rotate segments, and syncs are serialized: f is still
	// the current segment.
	j.synced = journalPos{seg, size}
	if size < segmentSize(j.seg) {
		return true, nil
	}
	// A checkpoint, or a group, may have been written since the sync
	// above: sync again, so that only the last segment can ever end in a
	// torn record (Open refuses one anywhere else).
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return true, fmt.Errorf("journal sync: %w", err)
	}
	j.synced = journalPos{seg, j.size}
	// Everything in the old segment is synced; records go to a new one,
	// preallocated in the background if it is ready.
	next := filepath.Join(j.dir, segmentName(j.seg+1))
	var nf *os.File
	if j.prep != nil && j.prepSeg == j.seg+1 {
		if err := os.Rename(j.prep.Name(), next); err != nil {
			return true, fmt.Errorf("journal rotate: %w", err)
		}
		nf, j.prep = j.prep, nil
	} else {
		var err error
		if nf, err = os.OpenFile(next, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
			return true, fmt.Errorf("journal rotate: %w", err)
		}
	}
	if err := syncDir(j.dir); err != nil {
		nf.Close()
		return true, err
	}
	j.f.Close()
	j.f, j.seg, j.size = nf, j.seg+1, 0
	j.prepareNextLocked()
	return true, nil
}

// checkpoint records that every group up to pos is in Git's own files, and
// removes the segments that hold nothing newer. The record is not synced: if
// it is lost, the groups are applied again at the next open, harmlessly.
func (j *journal) checkpoint(pos journalPos) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	b := j.buf[:0]
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, recCheckpoint)
	b = binary.BigEndian.AppendUint64(b, pos.seg)
	b = binary.BigEndian.AppendUint64(b, uint64(pos.off))
	j.buf = b
	if _, err := j.writeLocked(b); err != nil {
		return err
	}
	for ; j.first < pos.seg && j.first < j.seg; j.first++ {
		if err := os.Remove(filepath.Join(j.dir, segmentName(j.first))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (j *journal) close() error {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	j.wg.Wait()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.prep != nil {
		j.prep.Close()
		os.Remove(j.prep.Name())
		j.prep = nil
	}
	return j.f.Close()
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// decodeGroup decodes a group record. An object written as a delta is
// patched onto its base, which is an object of this record or an earlier
// one (in seen), or, once flushed, in a pack (read by base); every object
// decoded is added to seen. The ids are computed from the contents, so a
// delta patched wrongly cannot pass for its object.
func decodeGroup(b []byte, seen map[Hash][]byte, base func(Hash) (*Object, error)) (group, error) {
	var g group
	bad := errors.New("malformed group record")
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return g, bad
	}
	b = b[k:]
	for i := uint64(0); i < n; i++ {
		if len(b) < 1 {
			return g, bad
		}
		t := ObjectType(b[0] &^ journalDelta)
		isDelta := b[0]&journalDelta != 0
		b = b[1:]
		var bh Hash
		if isDelta {
			if len(b) < len(bh) {
				return g, bad
			}
			copy(bh[:], b)
			b = b[len(bh):]
		}
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return g, bad
		}
		data := b[k : k+int(l)]
		b = b[k+int(l):]
		if isDelta {
			bd, ok := seen[bh]
			if !ok && base != nil {
				if bo, err := base(bh); err == nil {
					bd, ok = bo.Data, true
				}
			}
			if !ok {
				return g, fmt.Errorf("delta base %s of a journaled object not found", bh)
			}
			var err error
			if data, err = packfile.PatchDelta(bd, data); err != nil {
				return g, fmt.Errorf("journaled delta against %s: %w", bh, err)
			}
		}
		o := NewObject(t, data)
		if seen != nil {
			seen[o.Hash] = o.Data
		}
		g.objects = append(g.objects, o)
	}
	n, k = binary.Uvarint(b)
	if k <= 0 {
		return g, bad
	}
	b = b[k:]
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l+40 {
			return g, bad
		}
		var r RefUpdate
		r.Name = string(b[k : k+int(l)])
		b = b[k+int(l):]
		copy(r.Old[:], b[:20])
		copy(r.New[:], b[20:40])
		b = b[40:]
		g.refs = append(g.refs, r)
	}
	if len(b) == 0 {
		return g, nil
	}
	n, k = binary.Uvarint(b)
	if k <= 0 {
		return g, bad
	}
	b = b[k:]
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return g, bad
		}
		g.notes = append(g.notes, b[k:k+int(l)])
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return g, bad
	}
	return g, nil
}
