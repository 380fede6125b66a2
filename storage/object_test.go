package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
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

// decodeTreeReference is DecodeTree as it was before names shared one
// allocation, kept to fuzz the new one against.
func decodeTreeReference(data []byte) (*Tree, error) {
	t := &Tree{Entries: make([]TreeEntry, 0, bytes.Count(data, []byte{0}))}
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		if sp < 0 {
			return nil, errors.New("tree: missing mode")
		}
		mode, err := strconv.ParseUint(string(data[:sp]), 8, 32)
		if err != nil {
			return nil, fmt.Errorf("tree: bad mode %q", data[:sp])
		}
		data = data[sp+1:]
		nul := bytes.IndexByte(data, 0)
		if nul < 0 || len(data) < nul+1+20 {
			return nil, errors.New("tree: truncated entry")
		}
		e := TreeEntry{Name: string(data[:nul]), Mode: uint32(mode)}
		copy(e.Hash[:], data[nul+1:nul+21])
		t.Entries = append(t.Entries, e)
		data = data[nul+21:]
	}
	return t, nil
}

func FuzzDecodeTree(f *testing.F) {
	var tree Tree
	for i, m := range []uint32{ModeFile, ModeDir, ModeExecutable, ModeSymlink, ModeSubmodule, 0o644} {
		tree.Entries = append(tree.Entries, TreeEntry{Name: fmt.Sprintf("e%d", i), Mode: m, Hash: HashObject(BlobObject, []byte{byte(i)})})
	}
	valid := tree.Encode()
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add([]byte("0100644 a\x00" + strings.Repeat("h", 20)))
	f.Add([]byte("100644 \x00" + strings.Repeat("h", 20) + "x"))
	f.Add([]byte("9 a\x00" + strings.Repeat("h", 20) + "40000 b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeTree(data)
		want, wantErr := decodeTreeReference(data)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Fatalf("DecodeTree(%q): error %v, want %v", data, err, wantErr)
		}
		if err != nil {
			return
		}
		if !slices.Equal(got.Entries, want.Entries) {
			t.Fatalf("DecodeTree(%q):\n got %+v\nwant %+v", data, got.Entries, want.Entries)
		}
	})
}

// BenchmarkTreeDecode: a directory of 100 files, as the env directories
// the side-by-side runs write into, decoded on a tree cache miss.
func BenchmarkTreeDecode(b *testing.B) {
	var tree Tree
	for i := range 100 {
		tree.Entries = append(tree.Entries, TreeEntry{Name: fmt.Sprintf("res%03d.yaml", i), Mode: ModeFile, Hash: HashObject(BlobObject, []byte{byte(i)})})
	}
	data := tree.Encode()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeTree(data); err != nil {
			b.Fatal(err)
		}
	}
}
