package storage

import "bytes"

// Git's delta format (gitformat-pack(5), "Deltified representation"): the
// base's size and the result's size as little-endian base-128 numbers, then
// instructions that either copy a range of the base (high bit set) or insert
// up to 127 literal bytes.

const (
	// maxDeltaChain bounds how many deltas a reader resolves to reach an
	// object gitstate wrote: every maxDeltaChain-th version of a directory
	// is stored whole. Git's own default (pack.depth) is 50.
	maxDeltaChain = 50
	// maxCopy is the largest range one copy instruction takes here (the
	// format allows 2^24-1; Git's writer, and so every reader, uses 64 KiB).
	maxCopy = 0x10000
)

// makeDelta returns a delta that turns base into target, made of the bytes
// they share at both ends and the bytes between inserted: what an edit of
// one directory entry, or a few, does to a tree. It returns nil when the
// delta would not be much smaller than target itself.
func makeDelta(base, target []byte) []byte {
	n := min(len(base), len(target))
	pre := commonPrefix(base[:n], target[:n])
	suf := commonSuffix(base[pre:], target[pre:])
	return buildDelta(base, target, pre, suf)
}

// makeSpanDelta is makeDelta for a target known to differ from base only
// in target[from:to], base and target being of one length: the editor
// patched ids in place there (Object.span). It does not compare the two:
// an edit of a busy directory diffed its whole encoding against the
// version before, ~5 µs per PUT under load. A span that does not fit falls
// back to makeDelta.
func makeSpanDelta(base, target []byte, from, to int) []byte {
	if len(base) != len(target) || from < 0 || from > to || to > len(target) {
		return makeDelta(base, target)
	}
	return buildDelta(base, target, from, len(target)-to)
}

// buildDelta returns the delta that copies base's first pre and last suf
// bytes and inserts target's between, or nil when it would not be much
// smaller than target.
func buildDelta(base, target []byte, pre, suf int) []byte {
	mid := target[pre : len(target)-suf]
	// Worth it only when most of target is copied.
	if len(mid)+len(mid)/127+32 > len(target)/2 {
		return nil
	}
	d := make([]byte, 0, 32+len(mid)+len(mid)/127)
	d = appendVarint(d, uint64(len(base)))
	d = appendVarint(d, uint64(len(target)))
	d = appendCopies(d, 0, pre)
	for len(mid) > 0 {
		k := min(len(mid), 127)
		d = append(d, byte(k))
		d = append(d, mid[:k]...)
		mid = mid[k:]
	}
	d = appendCopies(d, len(base)-suf, suf)
	return d
}

// commonPrefix returns how many bytes a and b share at their start,
// comparing blocks at a time (bytes.Equal is vectorized) before bytes.
func commonPrefix(a, b []byte) int {
	const block = 256
	n, i := min(len(a), len(b)), 0
	for i+block <= n && bytes.Equal(a[i:i+block], b[i:i+block]) {
		i += block
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// commonSuffix returns how many bytes a and b share at their end.
func commonSuffix(a, b []byte) int {
	const block = 256
	n, i := min(len(a), len(b)), 0
	for i+block <= n && bytes.Equal(a[len(a)-i-block:len(a)-i], b[len(b)-i-block:len(b)-i]) {
		i += block
	}
	for i < n && a[len(a)-1-i] == b[len(b)-1-i] {
		i++
	}
	return i
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// appendCopies appends copy instructions for base[off:off+size].
func appendCopies(b []byte, off, size int) []byte {
	for size > 0 {
		k := min(size, maxCopy)
		op := len(b)
		b = append(b, 0x80)
		for i := range 4 {
			if c := byte(off >> (8 * i)); c != 0 {
				b[op] |= 1 << i
				b = append(b, c)
			}
		}
		if k != maxCopy { // a size of 0x10000 is written as no size bytes
			for i := range 3 {
				if c := byte(k >> (8 * i)); c != 0 {
					b[op] |= 0x10 << i
					b = append(b, c)
				}
			}
		}
		off += k
		size -= k
	}
	return b
}

// appendOfsDeltaOffset appends the distance back to a delta's base in Git's
// offset encoding (each continuation byte stands for one more than its value).
func appendOfsDeltaOffset(b []byte, rel int64) []byte {
	var tmp [10]byte
	i := len(tmp) - 1
	tmp[i] = byte(rel & 0x7f)
	for rel >>= 7; rel != 0; rel >>= 7 {
		rel--
		i--
		tmp[i] = 0x80 | byte(rel&0x7f)
	}
	return append(b, tmp[i:]...)
}

// splitOfsDelta splits a pack entry that is an OFS_DELTA into its type and
// size header, the distance back to its base, and its zlib stream.
func splitOfsDelta(raw []byte) (hdr []byte, rel int64, z []byte, ok bool) {
	if len(raw) == 0 || (raw[0]>>4)&7 != objOfsDelta {
		return nil, 0, nil, false
	}
	i := 0
	for i < len(raw) && raw[i]&0x80 != 0 {
		i++
	}
	i++ // the last byte of the size
	if i >= len(raw) {
		return nil, 0, nil, false
	}
	hdr = raw[:i]
	c := raw[i]
	i++
	rel = int64(c & 0x7f)
	for c&0x80 != 0 {
		if i >= len(raw) || rel > 1<<55 {
			return nil, 0, nil, false
		}
		c = raw[i]
		i++
		rel = ((rel + 1) << 7) | int64(c&0x7f)
	}
	return hdr, rel, raw[i:], true
}
