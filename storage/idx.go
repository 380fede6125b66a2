package storage

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// idxBuilder collects a pack's entries and encodes its index in Git's
// version 2 format (gitformat-pack(5)): a fan-out table, the sorted object
// ids, their CRC-32s, their offsets (31 bits, or an index into a table of
// 64-bit offsets), the pack's checksum and the index's own. It does what
// go-git's idxfile.Writer does for a pack written in one go, with a slice
// and one sort instead of per-entry bookkeeping: pack merging adds hundreds
// of thousands of entries at a time.
type idxBuilder struct {
	ents []idxEntry
}

type idxEntry struct {
	h   Hash
	crc uint32
	off uint64
}

func (b *idxBuilder) add(h Hash, off uint64, crc uint32) {
	b.ents = append(b.ents, idxEntry{h: h, crc: crc, off: off})
}

// sortIdxEntries sorts entries by id. Ids are uniformly distributed, so it
// distributes them into 65,536 buckets by their first two bytes (a counting
// sort, two passes) and sorts each bucket, a few entries, by insertion (a
// bucket crowded on purpose, by a comparison sort). A comparison sort of a
// merge's hundreds of thousands of entries was a fifth of the merge's time.
func sortIdxEntries(ents []idxEntry) []idxEntry {
	if len(ents) < 1<<12 {
		slices.SortFunc(ents, func(x, y idxEntry) int { return bytes.Compare(x.h[:], y.h[:]) })
		return ents
	}
	start := make([]int32, 1<<16+1)
	for i := range ents {
		start[int(ents[i].h[0])<<8|int(ents[i].h[1])+1]++
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	out := make([]idxEntry, len(ents))
	next := slices.Clone(start[:1<<16])
	for _, e := range ents {
		k := int(e.h[0])<<8 | int(e.h[1])
		out[next[k]] = e
		next[k]++
	}
	for k := range 1 << 16 {
		bucket := out[start[k]:start[k+1]]
		if len(bucket) > 32 {
			// Not by chance: ids chosen to share a prefix.
			slices.SortFunc(bucket, func(x, y idxEntry) int { return bytes.Compare(x.h[:], y.h[:]) })
			continue
		}
		for i := 1; i < len(bucket); i++ {
			for j := i; j > 0 && bytes.Compare(bucket[j].h[2:], bucket[j-1].h[2:]) < 0; j-- {
				bucket[j], bucket[j-1] = bucket[j-1], bucket[j]
			}
		}
	}
	return out
}

// encode returns the index of a pack whose checksum is packSum.
func (b *idxBuilder) encode(packSum Hash) []byte {
	ents := sortIdxEntries(b.ents)
	b.ents = ents
	n := len(ents)
	out := make([]byte, 0, 8+256*4+n*(20+4+4)+40)
	out = append(out, 0xff, 't', 'O', 'c', 0, 0, 0, 2)
	var fan [256]uint32
	for _, e := range ents {
		fan[e.h[0]]++
	}
	var sum uint32
	for i := range fan {
		sum += fan[i]
		out = binary.BigEndian.AppendUint32(out, sum)
	}
	for _, e := range ents {
		out = append(out, e.h[:]...)
	}
	for _, e := range ents {
		out = binary.BigEndian.AppendUint32(out, e.crc)
	}
	var large []uint64
	for _, e := range ents {
		if e.off < 1<<31 {
			out = binary.BigEndian.AppendUint32(out, uint32(e.off))
			continue
		}
		out = binary.BigEndian.AppendUint32(out, 1<<31|uint32(len(large)))
		large = append(large, e.off)
	}
	for _, off := range large {
		out = binary.BigEndian.AppendUint64(out, off)
	}
	out = append(out, packSum[:]...)
	idxSum := sha1.Sum(out)
	return append(out, idxSum[:]...)
}

// packIndex reads a version 2 pack index (the format idxBuilder writes) in
// place: lookups search its sorted ids through the fan-out table, and
// opening one allocates nothing per object. (go-git's MemoryIndex copied
// every id, CRC and offset into slices when a pack was opened, and its
// entry iterator allocated once per object: the flusher opens a pack every
// flush and iterates hundreds of thousands of entries when it merges.)
type packIndex struct {
	b     []byte // the whole index file
	n     int
	names []byte // n ids of 20 bytes, sorted
	crcs  []byte // n big-endian CRC-32s
	offs  []byte // n big-endian 32-bit offsets
	large []byte // the 64-bit offsets
}

const (
	idxHeader   = 8 + 256*4 // magic, version, fan-out table
	idxTrailer  = 2 * 20    // the pack's checksum and the index's
	idxMaxCount = 1<<31 - 1
)

// errIdxFormat is the error for an index that is not one packIndex reads.
var errIdxFormat = errors.New("not a version 2 pack index")

// parsePackIndex checks the layout of an index file b (its header, a
// fan-out table that never decreases, its length against its count and
// number of 64-bit offsets, and its checksum) and returns a packIndex over
// it.
func parsePackIndex(b []byte) (*packIndex, error) {
	if len(b) < idxHeader+idxTrailer || binary.BigEndian.Uint32(b) != 0xff744f63 || binary.BigEndian.Uint32(b[4:]) != 2 {
		return nil, errIdxFormat
	}
	var prev uint32
	for i := range 256 {
		v := binary.BigEndian.Uint32(b[8+4*i:])
		if v < prev {
			return nil, fmt.Errorf("%w: fan-out table decreases at %d", errIdxFormat, i)
		}
		prev = v
	}
	if prev > idxMaxCount {
		return nil, fmt.Errorf("%w: %d objects", errIdxFormat, prev)
	}
	n := int(prev)
	rest := len(b) - idxHeader - idxTrailer - n*28
	if rest < 0 || rest%8 != 0 {
		return nil, fmt.Errorf("%w: %d bytes for %d objects", errIdxFormat, len(b), n)
	}
	x := &packIndex{b: b, n: n}
	p := idxHeader
	x.names, p = b[p:p+n*20], p+n*20
	x.crcs, p = b[p:p+n*4], p+n*4
	x.offs, p = b[p:p+n*4], p+n*4
	x.large = b[p : p+rest]
	for i := range n {
		if o := binary.BigEndian.Uint32(x.offs[4*i:]); o&(1<<31) != 0 && int(o&^(1<<31)) >= rest/8 {
			return nil, fmt.Errorf("%w: offset %d of %d is past the 64-bit table", errIdxFormat, i, n)
		}
	}
	if sum := sha1.Sum(b[:len(b)-20]); !bytes.Equal(sum[:], b[len(b)-20:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", errIdxFormat)
	}
	return x, nil
}

// count returns the number of objects the index lists.
func (x *packIndex) count() int { return x.n }

// name returns the i-th id, in sorted order.
func (x *packIndex) name(i int) (h Hash) {
	copy(h[:], x.names[20*i:])
	return h
}

// crc returns the CRC-32 of the i-th object's packed entry.
func (x *packIndex) crc(i int) uint32 { return binary.BigEndian.Uint32(x.crcs[4*i:]) }

// offset returns the i-th object's offset in the pack.
func (x *packIndex) offset(i int) int64 {
	o := binary.BigEndian.Uint32(x.offs[4*i:])
	if o&(1<<31) == 0 {
		return int64(o)
	}
	return int64(binary.BigEndian.Uint64(x.large[8*int(o&^(1<<31)):]))
}

// find returns the position of h among the ids, if listed.
func (x *packIndex) find(h Hash) (int, bool) {
	lo := 0
	if h[0] > 0 {
		lo = int(binary.BigEndian.Uint32(x.b[8+4*(int(h[0])-1):]))
	}
	hi := int(binary.BigEndian.Uint32(x.b[8+4*int(h[0]):]))
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch c := bytes.Compare(x.names[20*m:20*m+20], h[:]); {
		case c == 0:
			return m, true
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return 0, false
}

// findOffset returns the offset of h in the pack, if listed.
func (x *packIndex) findOffset(h Hash) (int64, bool) {
	i, ok := x.find(h)
	if !ok {
		return 0, false
	}
	return x.offset(i), true
}
