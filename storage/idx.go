package storage

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
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

// encode returns the index of a pack whose checksum is packSum.
func (b *idxBuilder) encode(packSum Hash) []byte {
	ents := b.ents
	slices.SortFunc(ents, func(x, y idxEntry) int { return bytes.Compare(x.h[:], y.h[:]) })
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
