package storage

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestHashTreeResumes hashes a chain of versions of a long encoding, each
// patched from some offset on, and checks every id against a whole hash:
// resumed from the states, from states that belong to another version
// (a branch off an older version, or a length change), and without.
func TestHashTreeResumes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{midstateMin - 1, midstateMin, midstateMin + 1, 3*midstateEvery - 7, 20000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			raw := make([]byte, size)
			for i := range raw {
				raw[i] = byte(rng.Uint32())
			}
			versions := [][]byte{raw}
			h, ms := hashTree(raw, nil, 0, nil)
			if want := HashObject(TreeObject, raw); h != want {
				t.Fatalf("first hash %s, want %s", h, want)
			}
			// The states are kept (without them every hash is whole,
			// and right): one per midstateEvery bytes of the stream.
			if size >= midstateMin {
				stream := len(fmt.Sprintf("tree %d\x00", size)) + size
				if ms == nil || ms.size == 0 || len(ms.states) != stream/midstateEvery*ms.size {
					t.Fatalf("states over %d bytes: %+v", stream, ms)
				}
			}
			for step := range 300 {
				// Edit the last version, or at times an older one: its
				// states have moved on and must not be used.
				base := versions[len(versions)-1]
				if step%7 == 6 {
					base = versions[rng.IntN(len(versions))]
				}
				next := append([]byte(nil), base...)
				switch step % 11 {
				case 10: // longer: every offset moves
					next = append(next, byte(step))
				case 9: // a change in the first block
					next[rng.IntN(min(64, len(next)))]++
				}
				from := rng.IntN(len(next))
				for i := from; i < len(next) && i < from+20; i++ {
					next[i] = byte(rng.Uint32())
				}
				if step%11 >= 9 {
					from = 0
				}
				var got Hash
				got, ms = hashTree(next, base, from, ms)
				if want := HashObject(TreeObject, next); got != want {
					t.Fatalf("step %d (size %d, from %d): %s, want %s", step, len(next), from, got, want)
				}
				versions = append(versions, next)
			}
		})
	}
}

// FuzzHashTree checks hashTree against a whole hash for an encoding and a
// second version that differs from it from an offset on.
func FuzzHashTree(f *testing.F) {
	f.Add(make([]byte, midstateMin+100), uint16(1000), byte(1))
	f.Add(make([]byte, 5000), uint16(0), byte(7))
	f.Fuzz(func(t *testing.T, raw []byte, at uint16, b byte) {
		h, ms := hashTree(raw, nil, 0, nil)
		if want := HashObject(TreeObject, raw); h != want {
			t.Fatalf("hash %s, want %s", h, want)
		}
		if len(raw) == 0 {
			return
		}
		from := int(at) % len(raw)
		next := append([]byte(nil), raw...)
		next[from] ^= b | 1
		got, _ := hashTree(next, raw, from, ms)
		if want := HashObject(TreeObject, next); got != want {
			t.Fatalf("patched at %d: %s, want %s", from, got, want)
		}
	})
}
