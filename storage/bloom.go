package storage

import "encoding/binary"

// idBloom is a Bloom filter over object ids, one per pack: most lookups
// of an object in a pack miss (a new blob is looked for in every pack
// before it is stored), and the filter answers a miss with four bit tests
// instead of a binary search of the pack's index. Object ids are SHA-1
// digests, already uniform: the filter's hashes are slices of the id.
type idBloom struct {
	bits []uint64
	mask uint32
}

// bloomBitsPerID gives a false-positive rate of about 1.5% with 4 probes.
const bloomBitsPerID = 10

// newIDBloom returns a filter sized for n ids.
func newIDBloom(n int) *idBloom {
	m := uint32(64)
	for int64(m) < int64(n)*bloomBitsPerID && m < 1<<31 {
		m <<= 1
	}
	return &idBloom{bits: make([]uint64, m/64), mask: m - 1}
}

func (f *idBloom) add(h Hash) {
	for i := 0; i < 16; i += 4 {
		b := binary.LittleEndian.Uint32(h[i:]) & f.mask
		f.bits[b/64] |= 1 << (b % 64)
	}
}

// mayHave reports whether h may have been added; false is certain.
func (f *idBloom) mayHave(h Hash) bool {
	for i := 0; i < 16; i += 4 {
		b := binary.LittleEndian.Uint32(h[i:]) & f.mask
		if f.bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// bloomFromIdx builds the filter of a version-2 pack index from its raw
// bytes (the sorted ids follow the header and the fan-out table), or
// returns nil when the index is not one.
func bloomFromIdx(idx []byte) *idBloom {
	const hdr = 8 + 256*4
	if len(idx) < hdr || binary.BigEndian.Uint32(idx) != 0xff744f63 || binary.BigEndian.Uint32(idx[4:]) != 2 {
		return nil
	}
	n := int(binary.BigEndian.Uint32(idx[hdr-4:]))
	if len(idx) < hdr+n*20 {
		return nil
	}
	f := newIDBloom(n)
	var h Hash
	for i := range n {
		copy(h[:], idx[hdr+i*20:])
		f.add(h)
	}
	return f
}
