package storage

import (
	"bytes"
	"math/rand/v2"
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
		})
	}
}
