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
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// ErrBadPack is wrapped by the errors of ReadPack for a malformed pack.
var ErrBadPack = errors.New("malformed pack")

// ReadPack reads a Git pack stream (what a client sends with a push, what
// git pack-objects writes) and returns its objects, whole: deltas are
// applied against objects of the same pack or, for a thin pack, against
// objects base holds (base may be nil). Objects come back in pack order.
// maxBytes bounds the total size of the objects once inflated (0: no
// bound). The pack's trailing checksum is verified, and nothing after it is
// read.
//
// The whole pack is held in memory: it is meant for pushes and fetches of a
// desired-state repository, which are small next to the memory of a server.
func ReadPack(r io.Reader, base ObjectReader, maxBytes int64) ([]*Object, error) {
	pr := &packStream{br: bufio.NewReaderSize(r, 64<<10), sum: sha1.New()}
	var hdr [12]byte
	if _, err := io.ReadFull(pr, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadPack, err)
	}
	if string(hdr[:4]) != "PACK" {
		return nil, fmt.Errorf("%w: no PACK signature", ErrBadPack)
	}
	if v := binary.BigEndian.Uint32(hdr[4:]); v != 2 && v != 3 {
		return nil, fmt.Errorf("%w: version %d", ErrBadPack, v)
	}
	count := binary.BigEndian.Uint32(hdr[8:])
	type delta struct {
		at      int // index of the entry
		baseOff int64
		baseID  Hash
		ofs     bool
		data    []byte
	}
	ents := make([]*Object, count)
	offs := make(map[int64]int, count)
	var deltas []delta
	var total int64
	zr := zlibStreamReader{}
	for i := range int(count) {
		off := pr.off
		offs[off] = i
		c, err := pr.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrBadPack, i, err)
		}
		t := ObjectType((c >> 4) & 7)
		size := int64(c & 0x0f)
		shift := uint(4)
		for c&0x80 != 0 {
			if c, err = pr.ReadByte(); err != nil {
				return nil, fmt.Errorf("%w: entry %d: %v", ErrBadPack, i, err)
			}
			if shift > 56 {
				return nil, fmt.Errorf("%w: entry %d: size overflows", ErrBadPack, i)
			}
			size |= int64(c&0x7f) << shift
			shift += 7
		}
		total += size
		if maxBytes > 0 && total > maxBytes {
			return nil, fmt.Errorf("pack is over the limit of %d bytes", maxBytes)
		}
		d := delta{at: i}
		switch t {
		case CommitObject, TreeObject, BlobObject, plumbing.TagObject:
		case objOfsDelta:
			d.ofs = true
			c, err := pr.ReadByte()
			if err != nil {
				return nil, fmt.Errorf("%w: entry %d: %v", ErrBadPack, i, err)
			}
			rel := int64(c & 0x7f)
			for c&0x80 != 0 {
				if c, err = pr.ReadByte(); err != nil {
					return nil, fmt.Errorf("%w: entry %d: %v", ErrBadPack, i, err)
				}
				rel = ((rel + 1) << 7) | int64(c&0x7f)
			}
			if rel <= 0 || rel > off {
				return nil, fmt.Errorf("%w: entry %d: delta base offset out of range", ErrBadPack, i)
			}
			d.baseOff = off - rel
		case objRefDelta:
			if _, err := io.ReadFull(pr, d.baseID[:]); err != nil {
				return nil, fmt.Errorf("%w: entry %d: %v", ErrBadPack, i, err)
			}
		default:
			return nil, fmt.Errorf("%w: entry %d: unknown type %d", ErrBadPack, i, t)
		}
		data, err := zr.inflate(pr, size)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrBadPack, i, err)
		}
		if t == objOfsDelta || t == objRefDelta {
			d.data = data
			deltas = append(deltas, d)
			continue
		}
		ents[i] = NewObject(t, data)
	}
	want := pr.sum.Sum(nil)
	var trailer [20]byte
	if _, err := io.ReadFull(pr.br, trailer[:]); err != nil {
		return nil, fmt.Errorf("%w: trailer: %v", ErrBadPack, err)
	}
	if !bytes.Equal(want, trailer[:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrBadPack)
	}
	// Resolve the deltas, in as many passes as chains need (a ref-delta's
	// base may come later in the pack).
	byID := make(map[Hash]*Object, count)
	for _, o := range ents {
		if o != nil {
			byID[o.Hash] = o
		}
	}
	for len(deltas) > 0 {
		var left []delta
		for _, d := range deltas {
			var bo *Object
			if d.ofs {
				j, ok := offs[d.baseOff]
				if !ok {
					return nil, fmt.Errorf("%w: delta base at %d is not an entry", ErrBadPack, d.baseOff)
				}
				bo = ents[j]
			} else if bo = byID[d.baseID]; bo == nil && base != nil {
				if o, err := base.ReadObject(d.baseID); err == nil {
					bo = o
				}
			}
			if bo == nil {
				left = append(left, d)
				continue
			}
			data, err := packfile.PatchDelta(bo.Data, d.data)
			if err != nil {
				return nil, fmt.Errorf("%w: entry %d: %v", ErrBadPack, d.at, err)
			}
			total += int64(len(data))
			if maxBytes > 0 && total > maxBytes {
				return nil, fmt.Errorf("pack is over the limit of %d bytes", maxBytes)
			}
			o := NewObject(bo.Type, data)
			ents[d.at] = o
			byID[o.Hash] = o
		}
		if len(left) == len(deltas) {
			d := left[0]
			if d.ofs {
				return nil, fmt.Errorf("%w: entry %d: delta chain has no base", ErrBadPack, d.at)
			}
			return nil, fmt.Errorf("%w: entry %d: delta base %s is missing", ErrBadPack, d.at, d.baseID)
		}
		deltas = left
	}
	return ents, nil
}

// packStream reads a pack, hashing what it consumes and counting the
// offset. It is an io.ByteReader, so that zlib reads no further than the
// end of each entry.
type packStream struct {
	br  *bufio.Reader
	sum hash.Hash
	off int64
}

func (p *packStream) Read(b []byte) (int, error) {
	n, err := p.br.Read(b)
	p.sum.Write(b[:n])
	p.off += int64(n)
	return n, err
}

func (p *packStream) ReadByte() (byte, error) {
	c, err := p.br.ReadByte()
	if err == nil {
		p.sum.Write([]byte{c})
		p.off++
	}
	return c, err
}

// zlibStreamReader inflates consecutive zlib streams of one reader, reusing
// its decompressor.
type zlibStreamReader struct {
	zr io.ReadCloser
}

// inflate reads one zlib stream of exactly size bytes, to its end (its
// checksum included).
func (z *zlibStreamReader) inflate(r io.Reader, size int64) ([]byte, error) {
	if z.zr == nil {
		zr, err := zlib.NewReader(r)
		if err != nil {
			return nil, err
		}
		z.zr = zr
	} else if err := z.zr.(zlib.Resetter).Reset(r, nil); err != nil {
		return nil, err
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(z.zr, data); err != nil {
		return nil, fmt.Errorf("inflate: %w", err)
	}
	var one [1]byte
	if n, err := z.zr.Read(one[:]); n != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			return nil, errors.New("inflate: object larger than its header says")
		}
		return nil, fmt.Errorf("inflate: %w", err)
	}
	return data, nil
}
