package storage

import (
	"bytes"
	"compress/zlib"
	"io"
	"math/rand/v2"
	"testing"
)

// TestAppendZlibStored: the stream inflates back to the data, with its
// Adler-32 checked by compress/zlib, at the sizes where stored blocks
// split, and after what dst already held.
func TestAppendZlibStored(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, n := range []int{0, 1, 100, maxStored - 1, maxStored, maxStored + 1, 2 * maxStored, 3*maxStored + 7} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		prefix := []byte("held")
		z := appendZlibStored(bytes.Clone(prefix), data)
		if !bytes.HasPrefix(z, prefix) {
			t.Fatalf("%d bytes: dst's bytes changed", n)
		}
		if got := inflateAll(t, z[len(prefix):]); !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: inflated to %d bytes that differ", n, len(got))
		}
		// Each block costs 5 bytes; the header 2, the checksum 4.
		if blocks := max(1, (n+maxStored-1)/maxStored); len(z)-len(prefix) != n+5*blocks+6 {
			t.Errorf("%d bytes: stream of %d bytes, want %d", n, len(z)-len(prefix), n+5*blocks+6)
		}
	}
}

func inflateAll(t testing.TB, z []byte) []byte {
	t.Helper()
	zr, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if err := zr.Close(); err != nil {
		t.Fatal(err)
	}
	return got
}

// FuzzAppendZlibStored: any data inflates back.
func FuzzAppendZlibStored(f *testing.F) {
	f.Add([]byte("tree 0\x00"))
	f.Add(make([]byte, maxStored+1))
	f.Fuzz(func(t *testing.T, data []byte) {
		if got := inflateAll(t, appendZlibStored(nil, data)); !bytes.Equal(got, data) {
			t.Fatalf("inflated to %d bytes that differ", len(got))
		}
	})
}
