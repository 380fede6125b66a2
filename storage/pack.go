package storage

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/adler32"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// Packs are the only form in which gitstate writes objects to a repository:
// one pack per flush of the journal, each object a zlib stream of stored
// (uncompressed) blocks, a tree that replaces one written earlier in the
// same pack as a delta against it (see FSBackend.writePack). That is valid
// Git and costs next to no CPU: compressing small objects one by one cost
// about half the CPU of a write-heavy load (Huffman tables are built per
// object). `git gc` or `git repack -adf` compresses and deltifies them when
// disk matters more.
// Packs written by Git itself (imports, git gc) may hold deltas; the reader
// resolves them.

const (
	objOfsDelta = 6
	objRefDelta = 7
)

// packBuffers recycles the buffered writers of packs: one is 256 KiB, and
// the flusher writes a pack every flush.
var packBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 256<<10) }}

// maxStored is the most a stored deflate block holds (RFC 1951, 3.2.4).
const maxStored = 1<<16 - 1

// appendZlibStored appends data to dst as a zlib stream (RFC 1950) of
// stored deflate blocks: what compress/zlib writes at NoCompression, but
// without a compressor's state to allocate and reset for every object.
func appendZlibStored(dst, data []byte) []byte {
	sum := adler32.Checksum(data)
	dst = append(dst, 0x78, 0x01) // deflate, 32 KiB window, no dictionary, fastest
	for {
		n := min(len(data), maxStored)
		final := byte(0)
		if n == len(data) {
			final = 1
		}
		dst = append(dst, final, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		dst = append(dst, data[:n]...)
		data = data[n:]
		if final == 1 {
			break
		}
	}
	return binary.BigEndian.AppendUint32(dst, sum)
}

// packWriter writes a pack and its index to temporary files in dir.
type packWriter struct {
	dir    string
	f      *os.File
	bw     *bufio.Writer
	sum    hash.Hash
	crc    hash.Hash32
	off    int64
	idx    idxBuilder
	count  uint32
	header []byte
	zbuf   []byte
}

func newPackWriter(dir string, count int) (*packWriter, error) {
	f, err := os.CreateTemp(dir, tempPrefix+"pack-")
	if err != nil {
		return nil, fmt.Errorf("create pack: %w", err)
	}
	w := &packWriter{dir: dir, f: f, sum: sha1.New(), crc: crc32.NewIEEE()}
	w.idx.ents = make([]idxEntry, 0, count)
	w.bw = packBuffers.Get().(*bufio.Writer)
	w.bw.Reset(io.MultiWriter(f, w.sum))
	var hdr [12]byte
	copy(hdr[:], "PACK")
	binary.BigEndian.PutUint32(hdr[4:], 2)
	binary.BigEndian.PutUint32(hdr[8:], uint32(count))
	if _, err := w.bw.Write(hdr[:]); err != nil {
		w.abort()
		return nil, err
	}
	w.off = 12
	return w, nil
}

// add appends one object. Objects must be added exactly as many times as the
// count given to newPackWriter, each id once.
func (w *packWriter) add(o *Object) error {
	return w.addCompressed(o.Hash, o.Type, int64(len(o.Data)), w.deflate(o.Data))
}

// addDelta appends object h as a delta against the object written at
// baseOff in this pack (an OFS_DELTA entry).
func (w *packWriter) addDelta(h Hash, baseOff int64, delta []byte) error {
	z := w.deflate(delta)
	w.header = appendPackHeader(w.header[:0], objOfsDelta, int64(len(delta)))
	w.header = appendOfsDeltaOffset(w.header, w.off-baseOff)
	return w.addEntry(h, w.header, z)
}

// deflate returns data as a zlib stream, in a buffer reused by the next
// call.
func (w *packWriter) deflate(data []byte) []byte {
	w.zbuf = appendZlibStored(w.zbuf[:0], data)
	return w.zbuf
}

func (w *packWriter) addCompressed(h Hash, t ObjectType, size int64, z []byte) error {
	w.header = appendPackHeader(w.header[:0], t, size)
	return w.addEntry(h, w.header, z)
}

// addEntry appends an entry: its header, then its zlib stream.
func (w *packWriter) addEntry(h Hash, header, z []byte) error {
	w.crc.Reset()
	w.crc.Write(header)
	w.crc.Write(z)
	if _, err := w.bw.Write(header); err != nil {
		return err
	}
	if _, err := w.bw.Write(z); err != nil {
		return err
	}
	w.idx.add(h, uint64(w.off), w.crc.Sum32())
	w.off += int64(len(header) + len(z))
	w.count++
	return nil
}

func appendPackHeader(b []byte, t ObjectType, size int64) []byte {
	c := byte(t)<<4 | byte(size&0x0f)
	size >>= 4
	for size != 0 {
		b = append(b, c|0x80)
		c = byte(size & 0x7f)
		size >>= 7
	}
	return append(b, c)
}

// finish writes the trailer and the index, makes both durable and renames
// them into place (the pack before its index, as Git expects). It returns
// the path of the index.
func (w *packWriter) finish() (string, error) {
	if err := w.bw.Flush(); err != nil {
		w.abort()
		return "", err
	}
	w.release()
	var sum Hash
	w.sum.Sum(sum[:0])
	if _, err := w.f.Write(sum[:]); err != nil {
		w.abort()
		return "", err
	}
	if err := w.f.Chmod(0o444); err != nil {
		w.abort()
		return "", err
	}
	if err := w.f.Sync(); err != nil {
		w.abort()
		return "", fmt.Errorf("sync pack: %w", err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return "", err
	}
	idx := w.idx.encode(sum)
	base := filepath.Join(w.dir, "pack-"+sum.String())
	if err := os.Rename(w.f.Name(), base+".pack"); err != nil {
		os.Remove(w.f.Name())
		return "", err
	}
	if err := writeFileSync(base+".idx", idx, 0o444); err != nil {
		return "", err
	}
	return base + ".idx", nil
}

func (w *packWriter) abort() {
	w.release()
	w.f.Close()
	os.Remove(w.f.Name())
}

// release gives the buffered writer back to packBuffers; the pack is not
// written to after.
func (w *packWriter) release() {
	if w.bw != nil {
		w.bw.Reset(nil)
		packBuffers.Put(w.bw)
		w.bw = nil
	}
}

// writeFileSync writes data to a temporary file in path's directory, syncs
// it and renames it to path. The directory itself is not synced.
func writeFileSync(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// syncDir makes a directory's entries (creations, renames) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// pack is an open pack file, mapped into memory, with its index. It is safe
// for concurrent use.
type pack struct {
	path  string // of the .pack
	data  []byte // the whole file, mapped read-only
	size  int64
	idx   *packIndex
	count int64
	// keep is set when a .keep file marks the pack (Git's convention for
	// a pack not to repack): compaction leaves it alone.
	keep bool
	// bases caches delta bases (may be nil).
	bases *baseCache
	// ids filters lookups of absent objects (nil: none).
	ids *idBloom
}

func openPack(idxPath string, bases *baseCache) (*pack, error) {
	ib, err := os.ReadFile(idxPath)
	if err != nil {
		return nil, err
	}
	x, err := parsePackIndex(ib)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", idxPath, err)
	}
	packPath := idxPath[:len(idxPath)-len(".idx")] + ".pack"
	f, err := os.Open(packPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < 32 {
		return nil, fmt.Errorf("pack %s: truncated", packPath)
	}
	// Packs never change once written: map them, so that a read costs no
	// system call.
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", packPath, err)
	}
	keep := fileExists(idxPath[:len(idxPath)-len(".idx")] + ".keep")
	return &pack{path: packPath, data: data, size: st.Size(), idx: x, count: int64(x.count()), keep: keep, bases: bases, ids: bloomFromIdx(ib)}, nil
}

// close unmaps the pack; no read may be in progress or follow.
func (p *pack) close() error {
	if p.bases != nil {
		p.bases.drop(p)
	}
	return unix.Munmap(p.data)
}

func (p *pack) has(h Hash) bool {
	if p.ids != nil && !p.ids.mayHave(h) {
		return false
	}
	_, ok := p.idx.find(h)
	return ok
}

// read returns the object h, or ErrObjectNotFound. base resolves the base of
// a ref-delta that lives elsewhere.
func (p *pack) read(h Hash, base func(Hash) (*Object, error)) (*Object, error) {
	if p.ids != nil && !p.ids.mayHave(h) {
		return nil, ErrObjectNotFound
	}
	off, ok := p.idx.findOffset(h)
	if !ok {
		return nil, ErrObjectNotFound
	}
	t, data, err := p.readAt(off, base, 0)
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", h, filepath.Base(p.path), err)
	}
	return &Object{Type: t, Hash: h, Data: data}, nil
}

const maxDeltaDepth = 10000

// readBase reads a delta base, through the cache. The data it returns is
// shared: it must not be modified.
func (p *pack) readBase(off int64, base func(Hash) (*Object, error), depth int) (ObjectType, []byte, error) {
	if p.bases != nil {
		if t, data, ok := p.bases.get(p, off); ok {
			return t, data, nil
		}
	}
	t, data, err := p.readAt(off, base, depth)
	if err == nil && p.bases != nil {
		p.bases.add(p, off, t, data)
	}
	return t, data, err
}

func (p *pack) readAt(off int64, base func(Hash) (*Object, error), depth int) (ObjectType, []byte, error) {
	if depth > maxDeltaDepth {
		return 0, nil, errors.New("delta chain too deep")
	}
	if off < 12 || off >= p.size-20 {
		return 0, nil, fmt.Errorf("offset %d out of range", off)
	}
	buf := p.data[off : p.size-20]
	pos := 0
	next := func() (byte, error) {
		if pos >= len(buf) {
			return 0, io.ErrUnexpectedEOF
		}
		c := buf[pos]
		pos++
		return c, nil
	}
	c, err := next()
	if err != nil {
		return 0, nil, err
	}
	t := ObjectType((c >> 4) & 7)
	size := int64(c & 0x0f)
	shift := uint(4)
	for c&0x80 != 0 {
		if c, err = next(); err != nil {
			return 0, nil, err
		}
		size |= int64(c&0x7f) << shift
		shift += 7
		if shift > 63 {
			return 0, nil, errors.New("bad object size")
		}
	}
	switch t {
	case CommitObject, TreeObject, BlobObject, plumbing.TagObject:
		data, err := inflate(buf[pos:], size)
		return t, data, err
	case objOfsDelta:
		c, err := next()
		if err != nil {
			return 0, nil, err
		}
		rel := int64(c & 0x7f)
		for c&0x80 != 0 {
			if c, err = next(); err != nil {
				return 0, nil, err
			}
			rel = ((rel + 1) << 7) | int64(c&0x7f)
		}
		delta, err := inflate(buf[pos:], size)
		if err != nil {
			return 0, nil, err
		}
		bt, bdata, err := p.readBase(off-rel, base, depth+1)
		if err != nil {
			return 0, nil, err
		}
		data, err := packfile.PatchDelta(bdata, delta)
		return bt, data, err
	case objRefDelta:
		if len(buf)-pos < 20 {
			return 0, nil, io.ErrUnexpectedEOF
		}
		var bh Hash
		copy(bh[:], buf[pos:])
		pos += 20
		delta, err := inflate(buf[pos:], size)
		if err != nil {
			return 0, nil, err
		}
		var bo *Object
		if boff, ok := p.idx.findOffset(bh); ok {
			bt, bdata, err := p.readBase(boff, base, depth+1)
			if err != nil {
				return 0, nil, err
			}
			bo = &Object{Type: bt, Data: bdata}
		} else if bo, err = base(bh); err != nil {
			return 0, nil, fmt.Errorf("delta base %s: %w", bh, err)
		}
		data, err := packfile.PatchDelta(bo.Data, delta)
		return bo.Type, data, err
	default:
		return 0, nil, fmt.Errorf("unknown object type %d", t)
	}
}

var zlibReaders sync.Pool

// inflate inflates the zlib stream at the start of z, which holds size
// bytes.
func inflate(z []byte, size int64) ([]byte, error) {
	br := bytesReaders.Get().(*bytes.Reader)
	br.Reset(z)
	defer bytesReaders.Put(br)
	var zr io.ReadCloser
	if v := zlibReaders.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if err := zr.(zlib.Resetter).Reset(br, nil); err != nil {
			return nil, err
		}
	} else {
		var err error
		if zr, err = zlib.NewReader(br); err != nil {
			return nil, err
		}
	}
	defer zlibReaders.Put(zr)
	data := make([]byte, size)
	if _, err := io.ReadFull(zr, data); err != nil {
		return nil, fmt.Errorf("inflate: %w", err)
	}
	return data, nil
}

var bytesReaders = sync.Pool{New: func() any { return bytes.NewReader(nil) }}

// readLoose reads a loose object from objects/xx/yyyy...
func readLoose(objectsDir string, h Hash) (*Object, error) {
	s := h.String()
	f, err := os.Open(filepath.Join(objectsDir, s[:2], s[2:]))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrObjectNotFound
		}
		return nil, err
	}
	defer f.Close()
	zr, err := zlib.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("loose %s: %w", s, err)
	}
	defer zr.Close()
	br := bufio.NewReader(zr)
	hdr, err := br.ReadString(0)
	if err != nil {
		return nil, fmt.Errorf("loose %s: header: %w", s, err)
	}
	typ, sz, ok := bytes.Cut([]byte(hdr[:len(hdr)-1]), []byte(" "))
	if !ok {
		return nil, fmt.Errorf("loose %s: bad header", s)
	}
	t, err := plumbing.ParseObjectType(string(typ))
	if err != nil {
		return nil, fmt.Errorf("loose %s: %w", s, err)
	}
	size, err := strconv.ParseInt(string(sz), 10, 64)
	if err != nil || size < 0 {
		return nil, fmt.Errorf("loose %s: bad size", s)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(br, data); err != nil {
		return nil, fmt.Errorf("loose %s: %w", s, err)
	}
	return &Object{Type: t, Hash: h, Data: data}, nil
}

// addRaw appends an entry copied from another pack: its header and
// compressed data, which must not be a delta.
func (w *packWriter) addRaw(h Hash, raw []byte) error {
	return w.addRawCRC(h, raw, crc32.ChecksumIEEE(raw))
}

// addRawCRC is addRaw for an entry whose CRC-32 is known.
func (w *packWriter) addRawCRC(h Hash, raw []byte, crc uint32) error {
	if _, err := w.bw.Write(raw); err != nil {
		return err
	}
	w.idx.add(h, uint64(w.off), crc)
	w.off += int64(len(raw))
	w.count++
	return nil
}
