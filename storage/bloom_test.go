package storage

import (
	"encoding/binary"
	"fmt"
	"os"
	"testing"
)

// TestPackBloom: a pack's filter never hides an object it holds, rejects
// most it does not, and an index it cannot read leaves lookups to the
// index itself.
func TestPackBloom(t *testing.T) {
	dir := t.TempDir()
	const n = 5000
	w, err := newPackWriter(dir, n)
	if err != nil {
		t.Fatal(err)
	}
	var in []Hash
	for i := range n {
		o := NewObject(BlobObject, fmt.Appendf(nil, "in-%d", i))
		if err := w.add(o); err != nil {
			t.Fatal(err)
		}
		in = append(in, o.Hash)
	}
	idx, err := w.finish()
	if err != nil {
		t.Fatal(err)
	}
	p, err := openPack(idx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if p.ids == nil {
		t.Fatal("no filter for a version-2 index")
	}
	for _, h := range in {
		if !p.has(h) {
			t.Fatalf("%s hidden by the filter", h)
		}
		if o, err := p.read(h, nil); err != nil || o.Hash != h {
			t.Fatalf("read %s: %v", h, err)
		}
	}
	passed := 0
	const probes = 20000
	for i := range probes {
		h := HashObject(BlobObject, fmt.Appendf(nil, "out-%d", i))
		if p.ids.mayHave(h) {
			passed++
		}
		if p.has(h) {
			t.Fatalf("absent %s found", h)
		}
	}
	if rate := float64(passed) / probes; rate > 0.05 {
		t.Errorf("false-positive rate %.3f", rate)
	} else {
		t.Logf("false-positive rate %.4f with %d bits per id", rate, bloomBitsPerID)
	}

	raw, err := os.ReadFile(idx)
	if err != nil {
		t.Fatal(err)
	}
	bad := [][]byte{
		nil,
		raw[:100],
		raw[:len(raw)/2], // ids cut short
		binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0xff744f63), 3), // another version
	}
	for i, b := range bad {
		if bloomFromIdx(b) != nil {
			t.Errorf("index %d: a filter from an unreadable index", i)
		}
	}
}
