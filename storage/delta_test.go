package storage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

func TestMakeDelta(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB: copies over 64 KiB
	edit := func(b []byte, at int, with string) []byte {
		out := append([]byte(nil), b[:at]...)
		out = append(out, with...)
		return append(out, b[at+len(with):]...)
	}
	tests := []struct {
		name         string
		base, target []byte
		wantDelta    bool
	}{
		{"one entry changed in the middle", big, edit(big, 150000, "XXXXXXXXXXXXXXXXXXXX"), true},
		{"changed at the start", big, edit(big, 0, "YY"), true},
		{"changed at the end", big, edit(big, len(big)-3, "ZZZ"), true},
		{"an entry inserted", big, append(append(append([]byte(nil), big[:70000]...), "new entry 0123456789"...), big[70000:]...), true},
		{"an entry removed", big, append(append([]byte(nil), big[:70000]...), big[70100:]...), true},
		{"grown at the end", big[:1000], big[:1300], true},
		{"a copy of exactly 64 KiB", big[:maxCopy+1], append(append([]byte(nil), big[:maxCopy]...), 'q'), true},
		{"nothing in common", bytes.Repeat([]byte("a"), 500), bytes.Repeat([]byte("b"), 500), false},
		{"mostly different", big[:1000], append(bytes.Repeat([]byte("c"), 800), big[800:1000]...), false},
		{"empty base", nil, []byte("abc"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := makeDelta(tc.base, tc.target)
			if (d != nil) != tc.wantDelta {
				t.Fatalf("delta of %d bytes for a %d-byte target; want a delta: %v", len(d), len(tc.target), tc.wantDelta)
			}
			if d == nil {
				return
			}
			if len(d) > len(tc.target)/2 {
				t.Errorf("delta of %d bytes for a %d-byte target", len(d), len(tc.target))
			}
			got, err := packfile.PatchDelta(tc.base, d)
			if err != nil || !bytes.Equal(got, tc.target) {
				t.Fatalf("patched: %d bytes, %v; want the %d-byte target", len(got), err, len(tc.target))
			}
		})
	}
}

func FuzzMakeDelta(f *testing.F) {
	f.Add([]byte("tree entries, the same at both ends"), []byte("tree entries, not the same at both ends"))
	f.Add(bytes.Repeat([]byte{0}, 300), bytes.Repeat([]byte{0}, 301))
	f.Fuzz(func(t *testing.T, base, target []byte) {
		d := makeDelta(base, target)
		if d == nil {
			return
		}
		got, err := packfile.PatchDelta(base, d)
		if err != nil || !bytes.Equal(got, target) {
			t.Fatalf("patched %q with %x: %q, %v", base, d, got, err)
		}
	})
}

func TestOfsDeltaOffsetRoundTrip(t *testing.T) {
	for _, rel := range []int64{1, 127, 128, 129, 16383, 16384, 16511, 16512, 1 << 20, 1<<31 + 5, 1<<40 - 1} {
		hdr := appendPackHeader(nil, objOfsDelta, 12345)
		raw := appendOfsDeltaOffset(append([]byte(nil), hdr...), rel)
		raw = append(raw, "zlib"...)
		h, got, z, ok := splitOfsDelta(raw)
		if !ok || got != rel || !bytes.Equal(h, hdr) || string(z) != "zlib" {
			t.Errorf("rel %d: split as %x, %d, %q, %v", rel, h, got, z, ok)
		}
	}
	if _, _, _, ok := splitOfsDelta(appendPackHeader(nil, BlobObject, 10)); ok {
		t.Error("a blob entry split as a delta")
	}
}

// TestTreeDeltas writes many commits to one wide directory and checks that
// the packs store its versions as deltas (git verify-pack), that git fsck
// accepts them, that merging packs keeps them deltas, and that every
// revision reads back, with the caches cold after a reopen.
func TestTreeDeltas(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := func(o *Options) {
		o.FS.MaxPacks = 2
		o.FS.IdleFlush = time.Hour // flush only when asked: a pack per batch of commits
		o.FS.FlushDelay = time.Hour
	}
	s := openTestStore(t, dir, opts)
	r := defaultRepo(t, s)
	repo := s.repoDir(DefaultRepo)
	var ops []Op
	for i := range 400 {
		ops = append(ops, Op{Kind: OpPut, Key: fmt.Sprintf("apps/app%03d.yaml", i), Value: []byte(fmt.Sprintf("app: %d\n", i))})
	}
	if _, err := r.WriteOne(ctx, &Batch{Ops: ops}); err != nil {
		t.Fatal(err)
	}
	var vs []revValue
	for round := range 4 {
		for i := range 120 {
			key := fmt.Sprintf("apps/app%03d.yaml", (i*37+round)%400)
			value := fmt.Sprintf("app: %d\nround: %d\n", i, round)
			vs = append(vs, revValue{put(t, r, key, value).Revision, key, value})
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	deltas := func(when string) int {
		t.Helper()
		n := 0
		for _, p := range packFiles(t, repo) {
			out, err := exec.Command("git", "verify-pack", "-v", filepath.Join(repo, "objects", "pack", strings.TrimSuffix(p, ".pack")+".idx")).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: git verify-pack %s: %v\n%s", when, p, err, out)
			}
			for _, line := range strings.Split(string(out), "\n") {
				if f := strings.Fields(line); len(f) == 7 && f[1] == "tree" {
					n++ // a delta's line names its chain depth and base
				}
			}
		}
		return n
	}
	// 480 commits rewrite apps/ (about 20 KB); all but a chain's first
	// version in each pack are deltas.
	if n := deltas("written"); n < 400 {
		t.Errorf("%d trees stored as deltas, want most of the 480 versions of apps/", n)
	}
	if packs := len(packFiles(t, repo)); packs > 2 {
		t.Errorf("%d packs, want at most MaxPacks=2 after merging", packs)
	}
	gitFsck(t, repo)
	checkRevisions(t, r, vs)
	checkStore(t, s) // closes; fsck; index rebuilt from Git and compared
	if n := deltas("merged"); n < 400 {
		t.Errorf("after merging: %d trees stored as deltas", n)
	}
	s = reopenTestStore(t, dir, opts)
	checkRevisions(t, defaultRepo(t, s), vs)
}

// wideTree returns a tree of n files, the i-th holding blob h(i, round).
func wideTree(n, changed int, round byte) *Object {
	t := &Tree{}
	for i := range n {
		var h Hash
		h[0], h[1] = byte(i), byte(i>>8)
		if i == changed {
			h[2] = round
		}
		t.Entries = append(t.Entries, TreeEntry{Name: fmt.Sprintf("res%04d.yaml", i), Mode: ModeFile, Hash: h})
	}
	return NewObject(TreeObject, t.Encode())
}

// TestJournalDeltaRecords writes group records whose trees are deltas
// against a tree of the same record, of an earlier record, and of Git's
// files (base), and reads them back.
func TestJournalDeltaRecords(t *testing.T) {
	dir := t.TempDir()
	j, groups, err := openJournal(dir, nil)
	if err != nil || len(groups) != 0 {
		t.Fatalf("new journal: %v, %d groups", err, len(groups))
	}
	flushed := wideTree(500, -1, 0) // in "Git's files": the base of the first record
	v1, v2, v3 := wideTree(500, 10, 1), wideTree(500, 20, 2), wideTree(500, 30, 3)
	v1.DeltaBase, v2.DeltaBase, v3.DeltaBase = flushed.Hash, v1.Hash, v2.Hash
	v4 := wideTree(500, 40, 4)
	v4.DeltaBase = v3.Hash
	inGit := func(h Hash) []byte {
		if h == flushed.Hash {
			return flushed.Data
		}
		return nil
	}
	if _, err := j.appendGroup(&group{objects: []*Object{v1, v2}}, inGit); err != nil {
		t.Fatal(err)
	}
	// v3's base is in the previous record; the caller still holds it.
	if _, err := j.appendGroup(&group{objects: []*Object{v3}}, func(h Hash) []byte {
		if h == v2.Hash {
			return v2.Data
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// v4's base is nowhere to be found: it is written whole.
	if _, err := j.appendGroup(&group{objects: []*Object{v4}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := j.sync(); err != nil {
		t.Fatal(err)
	}
	size := j.size
	j.close()
	if whole := int64(4 * len(v1.Data)); size > whole/2 {
		t.Errorf("journal of %d bytes for four %d-byte trees: not deltas", size, len(v1.Data))
	}

	readGit := func(h Hash) (*Object, error) {
		if h == flushed.Hash {
			return flushed, nil
		}
		return nil, ErrObjectNotFound
	}
	j, groups, err = openJournal(dir, readGit)
	if err != nil {
		t.Fatal(err)
	}
	j.close()
	var got []Hash
	for _, g := range groups {
		for _, o := range g.objects {
			got = append(got, o.Hash)
		}
	}
	if want := []Hash{v1.Hash, v2.Hash, v3.Hash, v4.Hash}; !slices.Equal(got, want) {
		t.Fatalf("replayed %v, want %v", got, want)
	}
	// Without Git's files, the first record's base is missing: an error, not
	// a wrong object.
	if _, _, err := openJournal(dir, func(Hash) (*Object, error) { return nil, ErrObjectNotFound }); err == nil || !strings.Contains(err.Error(), "delta base") {
		t.Errorf("open without the base: %v, want an error naming the delta base", err)
	}
}

// TestJournalDeltasSurviveCrash makes commits to a wide directory that stay
// in the journal only (as deltas), abandons the store as kill -9 would, and
// checks that the reopened store and Git hold every revision.
func TestJournalDeltasSurviveCrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir, lazyFlush)
	r := defaultRepo(t, s)
	var ops []Op
	for i := range 500 {
		ops = append(ops, Op{Kind: OpPut, Key: fmt.Sprintf("apps/res%04d.yaml", i), Value: []byte(fmt.Sprintf("v: %d\n", i))})
	}
	if _, err := r.WriteOne(ctx, &Batch{Ops: ops}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	jdir := journalDir(s, DefaultRepo)
	before := dirSize(t, jdir)
	var vs []revValue
	for i := range 60 {
		key := fmt.Sprintf("apps/res%04d.yaml", (i*7)%500)
		value := fmt.Sprintf("v: %d\ncrash: true\n", i)
		vs = append(vs, revValue{put(t, r, key, value).Revision, key, value})
	}
	head := r.Head()
	if grown, tree := dirSize(t, jdir)-before, int64(500*40); grown > 60*tree/4 {
		t.Errorf("the journal grew %d bytes for 60 commits rewriting a ~%d-byte tree: not deltas", grown, tree)
	}
	crashStore(t, s)
	s2 := reopenTestStore(t, dir)
	r2 := defaultRepo(t, s2)
	if got := r2.Head(); got != head {
		t.Fatalf("head after reopen %+v, want %+v", got, head)
	}
	checkRevisions(t, r2, vs)
	gitFsck(t, s2.repoDir(DefaultRepo))
}

// dirSize is the bytes written to the journal's segments: their sizes
// less the zeros they were preallocated with.
func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	for _, name := range segments(t, dir) { // full paths
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		n += int64(len(bytes.TrimRight(b, "\x00")))
	}
	return n
}

// FuzzSpanDelta patches a base in a span, as the editor patches ids in a
// tree, and checks that the delta made from the span alone rebuilds the
// target; a span that does not fit (other lengths, out of range) must
// still give a delta that rebuilds it.
func FuzzSpanDelta(f *testing.F) {
	f.Add(bytes.Repeat([]byte("100644 name\x00"), 40), uint16(100), []byte("twenty bytes of id.."), int16(0))
	f.Add([]byte("short"), uint16(3), []byte("xx"), int16(1))
	f.Add(bytes.Repeat([]byte{7}, 500), uint16(0), []byte{1, 2, 3}, int16(-4))
	f.Fuzz(func(t *testing.T, base []byte, at uint16, patch []byte, skew int16) {
		target := bytes.Clone(base)
		from := min(int(at), len(target))
		to := from + copy(target[from:], patch)
		// A skew makes the span wrong (but within range) or out of range,
		// or grows the target: those must fall back to comparing.
		if skew != 0 {
			if skew > 0 && int(skew)%3 == 0 {
				target = append(target, byte(skew))
			}
			from, to = from+int(skew), to-int(skew)
		}
		fits := len(base) == len(target) && from >= 0 && from <= to && to <= len(target)
		if fits && (!bytes.Equal(base[:from], target[:from]) || !bytes.Equal(base[to:], target[to:])) {
			// A span inside the patch is not what the editor gives.
			return
		}
		d := makeSpanDelta(base, target, from, to)
		if d == nil {
			return
		}
		got, err := packfile.PatchDelta(base, d)
		if err != nil || !bytes.Equal(got, target) {
			t.Fatalf("span [%d,%d) of %d bytes: patched to %q, %v; want %q", from, to, len(base), got, err, target)
		}
	})
}
