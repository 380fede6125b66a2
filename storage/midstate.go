package storage

import (
	"crypto/sha1"
	"encoding"
	"hash"
	"strconv"
)

// A busy directory (every commit changes one of its thousand entries) is
// hashed again for every commit: SHA-1 was a quarter of the committer's
// tree work. An entry's id is patched in place in the tree's encoding, so
// every byte before it is the same as in the version before; the SHA-1
// state over those bytes is then the same too. midstates keeps that state
// at regular offsets of a tree's object stream ("tree <size>\0" then the
// encoding), and hashing the next version resumes from the last state
// before the first changed byte.

const (
	// midstateEvery is the distance between two kept states, in bytes of
	// the object stream (a multiple of SHA-1's 64-byte block).
	midstateEvery = 512
	// midstateMin is the smallest encoding whose states are kept: below
	// it, hashing again costs less than keeping them.
	midstateMin = 4 * midstateEvery
)

// midstatesBytes estimates what the states over an encoding of n bytes
// hold: the struct and its digest, and one marshaled state (~100 bytes)
// per midstateEvery bytes.
func midstatesBytes(n int) int64 { return int64(256 + (n/midstateEvery+1)*100) }

// midstates are the SHA-1 states over one tree encoding's object stream:
// states[k] (marshaled, size bytes each) is the state after (k+1) *
// midstateEvery bytes. They belong to the encoding whose first byte is at
// raw and whose length is n; the committer updates them in place for the
// next version of the directory, after which the older encoding no longer
// matches them and is hashed in full if it is ever edited again. Only the
// committer uses them.
type midstates struct {
	raw    *byte
	n      int
	size   int // length of one marshaled state
	states []byte
	d      hash.Hash
	head   [32]byte
	sum    [sha1.Size]byte
}

// matches reports whether ms holds the states of the encoding raw.
func (ms *midstates) matches(raw []byte) bool {
	return ms != nil && len(raw) > 0 && ms.raw == &raw[0] && ms.n == len(raw)
}

// hashTree returns the id of the tree whose encoding is raw, and the
// states over it. prev is the encoding of the version raw replaces, equal
// to raw before offset from; when ms holds prev's states, hashing resumes
// from the last of them before from. ms is updated in place (nil: new
// states are made, when raw is long enough to keep them).
func hashTree(raw, prev []byte, from int, ms *midstates) (Hash, *midstates) {
	if len(raw) < midstateMin {
		return HashObject(TreeObject, raw), ms
	}
	resume := ms.matches(prev) && len(prev) == len(raw) && ms.size > 0
	if ms == nil {
		ms = &midstates{d: sha1.New()}
	}
	// The header and the sum are buffers of ms: passed to the hash's
	// methods, a local array would be allocated.
	head := append(ms.head[:0], "tree "...)
	head = strconv.AppendInt(head, int64(len(raw)), 10)
	head = append(head, 0)
	pos := 0 // in the stream: head then raw
	if resume {
		k := min((len(head)+from)/midstateEvery, len(ms.states)/ms.size)
		if k > 0 {
			if err := ms.d.(encoding.BinaryUnmarshaler).UnmarshalBinary(ms.states[(k-1)*ms.size : k*ms.size]); err == nil {
				pos = k * midstateEvery
				ms.states = ms.states[:k*ms.size]
			}
		}
	}
	if pos == 0 {
		ms.d.Reset()
		ms.states = ms.states[:0]
		ms.d.Write(head)
		pos = len(head)
	}
	end := len(head) + len(raw)
	keep := true
	for pos < end {
		next := min((pos/midstateEvery+1)*midstateEvery, end)
		ms.d.Write(raw[pos-len(head) : next-len(head)])
		if keep && next%midstateEvery == 0 {
			n := len(ms.states)
			st, err := ms.d.(encoding.BinaryAppender).AppendBinary(ms.states)
			if err != nil {
				// Never for SHA-1. Without states, the next hash is whole.
				ms.states, ms.size, keep = ms.states[:0], 0, false
			} else {
				ms.states, ms.size = st, len(st)-n
			}
		}
		pos = next
	}
	var out Hash
	copy(out[:], ms.d.Sum(ms.sum[:0]))
	ms.raw, ms.n = &raw[0], len(raw)
	return out, ms
}
