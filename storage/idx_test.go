package storage

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
)

// TestIdxMatchesGoGit encodes the same entries with idxBuilder and with
// go-git's writer, which Git's readers have long accepted: the bytes must
// be the same, large offsets included.
func TestIdxMatchesGoGit(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		maxOff  uint64
		noLarge bool
		// prefixes, when set, limits the first two bytes of the ids to
		// that many values: buckets of many entries.
		prefixes int
	}{
		{"empty", 0, 1, true, 0},
		{"one", 1, 1 << 20, true, 0},
		{"small pack", 1000, 1 << 30, true, 0},
		{"past 2 GiB", 500, 1 << 34, false, 0},
		{"bucket sort", 50000, 1 << 30, true, 0},
		{"bucket sort, crowded buckets", 20000, 1 << 30, true, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.n), 7))
			var ours idxBuilder
			var theirs idxfile.Writer
			for range tc.n {
				var h Hash
				for i := range h {
					h[i] = byte(rng.UintN(256))
				}
				if tc.prefixes > 0 {
					h[0], h[1] = byte(rng.IntN(tc.prefixes)), 0x42
				}
				off, crc := rng.Uint64N(tc.maxOff)+12, rng.Uint32()
				ours.add(h, off, crc)
				theirs.Add(plumbing.Hash(h), off, crc)
			}
			var sum Hash
			sum[0], sum[19] = 0xab, 0xcd
			got := ours.encode(sum)
			theirs.OnFooter(plumbing.Hash(sum))
			mi, err := theirs.Index()
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			if _, err := idxfile.NewEncoder(&want).Encode(mi); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("index of %d bytes differs from go-git's %d bytes", len(got), want.Len())
			}
			// And it reads back.
			back := idxfile.NewMemoryIndex()
			if err := idxfile.NewDecoder(bytes.NewReader(got)).Decode(back); err != nil {
				t.Fatal(err)
			}
			for _, e := range ours.ents {
				if off, err := back.FindOffset(plumbing.Hash(e.h)); err != nil || uint64(off) != e.off {
					t.Fatalf("%x: offset %d, %v; want %d", e.h, off, err, e.off)
				}
			}
			// And packIndex reads it as go-git does.
			x, err := parsePackIndex(got)
			if err != nil {
				t.Fatal(err)
			}
			comparePackIndex(t, x, back, rng)
		})
	}
}

// comparePackIndex checks that x lists what go-git's index mi lists, in
// the same order, and that neither finds ids they do not list.
func comparePackIndex(t *testing.T, x *packIndex, mi *idxfile.MemoryIndex, rng *rand.Rand) {
	t.Helper()
	n, _ := mi.Count()
	if int64(x.count()) != n {
		t.Fatalf("count %d, go-git %d", x.count(), n)
	}
	it, err := mi.Entries()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for i := range x.count() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if h := x.name(i); h != Hash(e.Hash) || uint64(x.offset(i)) != e.Offset || x.crc(i) != e.CRC32 {
			t.Fatalf("entry %d: %s at %d, crc %08x; go-git %s at %d, crc %08x", i, h, x.offset(i), x.crc(i), e.Hash, e.Offset, e.CRC32)
		}
		if off, ok := x.findOffset(Hash(e.Hash)); !ok || uint64(off) != e.Offset {
			t.Fatalf("find %s: %d, %v; want %d", e.Hash, off, ok, e.Offset)
		}
	}
	for range 1000 {
		var h Hash
		for i := range h {
			h[i] = byte(rng.UintN(256))
		}
		_, ok := x.find(h)
		theirs, _ := mi.Contains(plumbing.Hash(h))
		if ok != theirs {
			t.Fatalf("find %s: %v, go-git %v", h, ok, theirs)
		}
	}
}

// TestPackIndexRejects: an index that is cut, mislabelled, inconsistent or
// altered is refused with errIdxFormat rather than read wrong.
func TestPackIndexRejects(t *testing.T) {
	var b idxBuilder
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 100 {
		var h Hash
		for j := range h {
			h[j] = byte(rng.UintN(256))
		}
		off := uint64(12 + i)
		if i%10 == 0 {
			off = 1<<32 + uint64(i) // in the 64-bit table
		}
		b.add(h, off, rng.Uint32())
	}
	good := b.encode(Hash{1})
	if _, err := parsePackIndex(good); err != nil {
		t.Fatalf("the good index: %v", err)
	}
	resum := func(b []byte) []byte {
		sum := sha1.Sum(b[:len(b)-20])
		copy(b[len(b)-20:], sum[:])
		return b
	}
	tests := map[string][]byte{
		"empty":        nil,
		"header only":  good[:8],
		"cut":          good[:len(good)-1],
		"cut, resumed": resum(slices.Clone(good[:len(good)-8])),
		"longer":       resum(append(slices.Clone(good), make([]byte, 4)...)),
		"bad magic":    resum(append([]byte{0xff, 't', 'O', 'd'}, good[4:]...)),
		"version 1":    resum(append([]byte{0xff, 't', 'O', 'c', 0, 0, 0, 1}, good[8:]...)),
		"fan-out decreases": resum(func() []byte {
			c := slices.Clone(good)
			binary.BigEndian.PutUint32(c[8+4*10:], 1<<20)
			return c
		}()),
		"64-bit offset out of range": resum(func() []byte {
			c := slices.Clone(good)
			x, _ := parsePackIndex(good)
			at := idxHeader + x.count()*24
			binary.BigEndian.PutUint32(c[at:], 1<<31|500)
			return c
		}()),
		"checksum": func() []byte {
			c := slices.Clone(good)
			c[idxHeader] ^= 1
			return c
		}(),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := parsePackIndex(b); !errors.Is(err, errIdxFormat) {
				t.Fatalf("err %v, want errIdxFormat", err)
			}
		})
	}
}

// FuzzPackIndex: whatever the bytes, parsePackIndex does not panic, and an
// index it accepts answers consistently: each listed id is found where
// it is listed, and its offset reads.
func FuzzPackIndex(f *testing.F) {
	var b idxBuilder
	b.add(Hash{1, 2}, 12, 7)
	b.add(Hash{9}, 1<<33, 8)
	f.Add(b.encode(Hash{}))
	f.Add([]byte{0xff, 't', 'O', 'c', 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) >= idxHeader+idxTrailer && len(data)%2 == 0 {
			// Half the inputs get a valid checksum, so that the checks
			// behind it are reached. (The fuzzer's input must not change.)
			data = slices.Clone(data)
			sum := sha1.Sum(data[:len(data)-20])
			copy(data[len(data)-20:], sum[:])
		}
		x, err := parsePackIndex(data)
		if err != nil {
			return
		}
		for i := range x.count() {
			h := x.name(i)
			j, ok := x.find(h)
			if !ok || x.name(j) != h {
				// Unsorted ids are not checked at open; a listed id may
				// then be missed, but never found somewhere else.
				if ok {
					t.Fatalf("find %s: at %d, which is %s", h, j, x.name(j))
				}
			}
			_ = x.offset(i)
			_ = x.crc(i)
		}
	})
}
