package storage

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// TestTreeEncodeMatchesGoGit: a tree of every mode encodes to the bytes
// go-git's encoder writes, and decodes back.
func TestTreeEncodeMatchesGoGit(t *testing.T) {
	modes := []uint32{ModeDir, ModeFile, ModeExecutable, ModeSymlink, ModeSubmodule}
	var tree Tree
	var gt object.Tree
	for i, m := range modes {
		name := fmt.Sprintf("e%d", i)
		h := HashObject(BlobObject, []byte(name))
		tree.Entries = append(tree.Entries, TreeEntry{Name: name, Mode: m, Hash: h})
		gt.Entries = append(gt.Entries, object.TreeEntry{Name: name, Mode: filemode.FileMode(m), Hash: plumbing.Hash(h)})
	}
	mo := &plumbing.MemoryObject{}
	if err := gt.Encode(mo); err != nil {
		t.Fatal(err)
	}
	r, err := mo.Reader()
	if err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	got := tree.Encode()
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n%q\ngo-git\n%q", got, want)
	}
	back, err := DecodeTree(got)
	if err != nil || len(back.Entries) != len(modes) {
		t.Fatalf("decode: %v", err)
	}
	for i, e := range back.Entries {
		if e != tree.Entries[i] {
			t.Errorf("entry %d: %+v, want %+v", i, e, tree.Entries[i])
		}
	}
}

// BenchmarkTreeEncode: a directory of 1,000 subdirectories, as a busy
// GitOps repository's apps/ is, encoded once per commit that changes it.
func BenchmarkTreeEncode(b *testing.B) {
	var tree Tree
	for i := range 1000 {
		tree.Entries = append(tree.Entries, TreeEntry{Name: fmt.Sprintf("app%03d", i), Mode: ModeDir, Hash: HashObject(TreeObject, []byte{byte(i)})})
	}
	b.ReportAllocs()
	for b.Loop() {
		tree.Encode()
	}
}
