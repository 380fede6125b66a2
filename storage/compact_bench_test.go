package storage

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCompact merges the packs of a tier (seven of about 3 MiB and 21,000
// objects each, a third of them trees stored as deltas against the
// version before, as the flusher writes them): the merge that promotes a
// full tier.
func BenchmarkCompact(b *testing.B) {
	tmpl := b.TempDir()
	be, err := OpenFS(tmpl, FSOptions{MaxPacks: 1000})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var prev *Object
	entries := make([]TreeEntry, 100)
	for i := range entries {
		entries[i] = TreeEntry{Name: fmt.Sprintf("res%03d.yaml", i), Mode: ModeFile}
	}
	for p := range mergeFanIn - 1 {
		var objs []*Object
		for i := range 14000 {
			v := make([]byte, 250)
			for j := range v {
				v[j] = byte('a' + rng.IntN(26))
			}
			blob := NewObject(BlobObject, v)
			objs = append(objs, blob)
			if i%2 == 0 {
				entries[rng.IntN(len(entries))].Hash = blob.Hash
				t := &Tree{Entries: entries}
				o := NewObject(TreeObject, t.Encode())
				if prev != nil {
					o.DeltaBase = prev.Hash
				}
				objs = append(objs, o)
				prev = o
			}
		}
		if err := be.Commit(objs, []RefUpdate{{Name: "refs/heads/main", Old: be.Ref("refs/heads/main"), New: prev.Hash}}, nil); err != nil {
			b.Fatal(err)
		}
		if err := be.Flush(); err != nil {
			b.Fatal(err)
		}
		_ = p
	}
	if err := be.Close(); err != nil {
		b.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(tmpl, "objects", "pack", "*.pack"))
	var size int64
	for _, p := range packs {
		st, _ := os.Stat(p)
		size += st.Size()
	}
	if len(packs) != mergeFanIn-1 {
		b.Fatalf("%d packs, want %d", len(packs), mergeFanIn-1)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		if err := os.CopyFS(dir, os.DirFS(tmpl)); err != nil {
			b.Fatal(err)
		}
		be, err := OpenFS(dir, FSOptions{MaxPacks: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := mergeNow(be, 1); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if n, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack")); len(n) != 1 {
			b.Fatalf("%d packs after the merge", len(n))
		}
		be.Close()
		b.StartTimer()
	}
}
