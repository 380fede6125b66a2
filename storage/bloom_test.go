package storage

import (
	"encoding/binary"
	"fmt"
	"os"
	"testing"
)

// writeBlobPack writes a pack of n blobs "<tag>-<i>" in dir and opens it
// (closed at the end of the test); it returns the blobs' ids and the path
// of the pack's index.
func writeBlobPack(t *testing.T, dir, tag string, n int) (*pack, []Hash, string) {
	t.Helper()
	w, err := newPackWriter(dir, n)
	if err != nil {
		t.Fatal(err)
	}
	var ids []Hash
	for i := range n {
		o := NewObject(BlobObject, fmt.Appendf(nil, "%s-%d", tag, i))
		if err := w.add(o); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, o.Hash)
	}
	idx, err := w.finish()
	if err != nil {
		t.Fatal(err)
	}
	p, err := openPack(idx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.close() })
	return p, ids, idx
}

// TestPackBloom: a pack's filter never hides an object it holds, rejects
// most it does not, and an index it cannot read leaves lookups to the
// index itself.
func TestPackBloom(t *testing.T) {
	p, in, idx := writeBlobPack(t, t.TempDir(), "in", 5000)
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

// TestPackIDs: the filter over all packs holds every id of every pack
// added to it, across the rebuild that doubles it, and still rejects most
// absent ids.
func TestPackIDs(t *testing.T) {
	dir := t.TempDir()
	var s packIDs
	var packs []*pack
	var all []Hash
	// The first sizes it for 1<<16 ids; the third outgrows that.
	for i, n := range []int{1000, 30000, 50000, 10} {
		p, ids, _ := writeBlobPack(t, dir, fmt.Sprint(i), n)
		packs = append(packs, p)
		all = append(all, ids...)
		limit := s.limit
		s.add(packs, p)
		if s.f == nil {
			t.Fatalf("pack %d: no filter", i)
		}
		if grew := s.limit != limit; grew != (i == 0 || i == 2) {
			t.Errorf("pack %d: limit %d -> %d", i, limit, s.limit)
		}
		if s.n != int64(len(all)) {
			t.Errorf("pack %d: %d ids counted, want %d", i, s.n, len(all))
		}
		for _, h := range all {
			if !s.mayHave(h) {
				t.Fatalf("pack %d: %s hidden", i, h)
			}
		}
	}
	passed := 0
	const probes = 20000
	for i := range probes {
		if s.mayHave(HashObject(BlobObject, fmt.Appendf(nil, "absent-%d", i))) {
			passed++
		}
	}
	if rate := float64(passed) / probes; rate > 0.05 {
		t.Errorf("false-positive rate %.3f", rate)
	}
}

// TestBackendPackIDs: through flushes, merges and a reopen, the backend's
// filter over its packs hides none of their objects.
func TestBackendPackIDs(t *testing.T) {
	dir := t.TempDir()
	check := func(s *Store) {
		t.Helper()
		b := defaultRepo(t, s).Backend().(*FSBackend)
		b.mu.RLock()
		defer b.mu.RUnlock()
		if b.ids.f == nil {
			t.Fatal("no filter over the packs")
		}
		n := 0
		for _, p := range b.packs {
			for i := range p.idx.count() {
				if h := p.idx.name(i); !b.ids.mayHave(h) {
					t.Fatalf("%s of %s hidden", h, p.path)
				}
				n++
			}
		}
		if n == 0 {
			t.Fatal("no object in the packs")
		}
	}
	s := openTestStore(t, dir, compactOpts)
	r := defaultRepo(t, s)
	for i := range 30 {
		put(t, r, fmt.Sprintf("k/%d", i%7), fmt.Sprintf("value %d", i))
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopenTestStore(t, dir, compactOpts)
	check(s)
}
