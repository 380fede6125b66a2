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

// packIDs is a Bloom filter over the ids of all of a backend's packs, in
// front of the packs' own: a new blob is looked for in every pack before
// it is stored, and with a pack's filter answering each in one or two
// cache misses, the lookup cost grew with the number of packs (1.6% of
// the server's CPU under 64 writers with ~20 packs). Merging packs adds
// no id, so only new packs are added; the filter is rebuilt, twice as
// large, when the ids outgrow it (~40 ms per million ids: the flusher
// rebuilds it outside the backend's lock, see Flush). An id of a pack
// since removed may stay: that is a false positive, which the packs'
// filters then answer. A pack whose index cannot be listed turns the
// filter off for the backend's life.
type packIDs struct {
	f        *idBloom
	n, limit int64 // ids added; ids the filter is sized for
	off      bool
}

// add adds p's ids, or rebuilds the filter over packs (which hold p) when
// they would outgrow it.
func (s *packIDs) add(packs []*pack, p *pack) {
	switch {
	case s.off:
	case s.f != nil && s.n+p.count <= s.limit:
		if !addPackIDs(s.f, p) {
			s.f, s.off = nil, true
			return
		}
		s.n += p.count
	default:
		s.rebuild(packs)
	}
}

// outgrownBy reports whether adding p would rebuild the filter.
func (s *packIDs) outgrownBy(p *pack) bool {
	return !s.off && (s.f == nil || s.n+p.count > s.limit)
}

// rebuild makes the filter anew over packs, sized for twice their ids.
func (s *packIDs) rebuild(packs []*pack) {
	var total int64
	for _, q := range packs {
		total += q.count
	}
	s.limit = max(2*total, 1<<16)
	s.f, s.n = newIDBloom(int(s.limit)), total
	for _, q := range packs {
		if !addPackIDs(s.f, q) {
			s.f, s.off = nil, true
			return
		}
	}
}

// mayHave reports whether some pack may hold h; false is certain.
func (s *packIDs) mayHave(h Hash) bool { return s.f == nil || s.f.mayHave(h) }

// addPackIDs adds the ids p's index lists to f, or returns false when it
// lists fewer than the pack holds.
func addPackIDs(f *idBloom, p *pack) bool {
	n := p.idx.count()
	for i := range n {
		f.add(p.idx.name(i))
	}
	return int64(n) == p.count
}
