package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
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
//
// A torn record at the end of the last segment (a crash in the middle of a
// write that was never acknowledged) is cut off at open.

const (
	journalSegmentSize = 64 << 20
	recGroup           = 1
	recCheckpoint      = 2
	maxRecordSize      = 1 << 30
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
}

type journal struct {
	dir string

	mu    sync.Mutex // guards the fields below
	f     *os.File
	seg   uint64 // the segment being written
	first uint64 // the oldest segment not yet removed
	size  int64
	buf   []byte
}

func segmentName(seg uint64) string { return fmt.Sprintf("%016x.wal", seg) }

// openJournal opens the journal in dir, creating it if needed, and returns
// the groups recorded after the last checkpoint, in order.
func openJournal(dir string) (*journal, []group, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var segs []uint64
	for _, e := range ents {
		var seg uint64
		if n, _ := fmt.Sscanf(e.Name(), "%016x.wal", &seg); n == 1 && strings.HasSuffix(e.Name(), ".wal") {
			segs = append(segs, seg)
		}
	}
	slices.Sort(segs)
	j := &journal{dir: dir}
	type posGroup struct {
		end journalPos
		g   group
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
				// A torn write at the tail: cut it off.
				if err := os.Truncate(path, off); err != nil {
					return nil, nil, err
				}
				break
			}
			off += n
			switch payload[0] {
			case recGroup:
				g, err := decodeGroup(payload[1:])
				if err != nil {
					return nil, nil, fmt.Errorf("journal %s: %w", path, err)
				}
				groups = append(groups, posGroup{journalPos{seg, off}, g})
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
	for _, pg := range groups {
		if checkpoint.less(pg.end) {
			out = append(out, pg.g)
		}
	}
	if len(segs) == 0 {
		j.seg = 1
		j.first = 1
	} else {
		j.first = segs[0]
	}
	flags := os.O_WRONLY | os.O_CREATE
	j.f, err = os.OpenFile(filepath.Join(dir, segmentName(j.seg)), flags, 0o644)
	if err != nil {
		return nil, nil, err
	}
	if _, err := j.f.Seek(j.size, io.SeekStart); err != nil {
		j.f.Close()
		return nil, nil, err
	}
	if len(segs) == 0 {
		if err := syncDir(dir); err != nil {
			j.f.Close()
			return nil, nil, err
		}
	}
	return j, out, nil
}

func readRecord(b []byte) (payload []byte, n int64, err error) {
	if len(b) == 0 {
		return nil, 0, io.EOF
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
// after it.
func (j *journal) appendGroup(g *group) (journalPos, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	b := j.buf[:0]
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, recGroup)
	b = binary.AppendUvarint(b, uint64(len(g.objects)))
	for _, o := range g.objects {
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
	if _, err := j.f.Write(b); err != nil {
		// The file may now hold part of the record; a later record would
		// follow garbage. Cut it back.
		_ = j.f.Truncate(j.size)
		_, _ = j.f.Seek(j.size, io.SeekStart)
		return journalPos{}, fmt.Errorf("journal write: %w", err)
	}
	j.size += int64(len(b))
	return journalPos{j.seg, j.size}, nil
}

// sync makes every record written so far durable, and starts a new segment
// when the current one is full.
func (j *journal) sync() error {
	j.mu.Lock()
	f, size := j.f, j.size
	j.mu.Unlock()
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("journal sync: %w", err)
	}
	if size < journalSegmentSize {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != f {
		return nil
	}
	// A checkpoint may have been written since the sync above: sync again,
	// so that only the last segment can ever end in a torn record (Open
	// refuses one anywhere else).
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("journal sync: %w", err)
	}
	// Everything in the old segment is synced; records go to a new one.
	nf, err := os.OpenFile(filepath.Join(j.dir, segmentName(j.seg+1)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("journal rotate: %w", err)
	}
	if err := syncDir(j.dir); err != nil {
		nf.Close()
		return err
	}
	j.f.Close()
	j.f, j.seg, j.size = nf, j.seg+1, 0
	return nil
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
	defer j.mu.Unlock()
	return j.f.Close()
}

func decodeGroup(b []byte) (group, error) {
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
		t := ObjectType(b[0])
		l, k := binary.Uvarint(b[1:])
		if k <= 0 || uint64(len(b)-1-k) < l {
			return g, bad
		}
		data := b[1+k : 1+k+int(l)]
		g.objects = append(g.objects, NewObject(t, data))
		b = b[1+k+int(l):]
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
	return g, nil
}
