package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func compactOpts(o *Options) {
	o.FS.MaxPacks = 3
	o.FS.IdleFlush = time.Microsecond
}

// mergeNow merges be's packs as compaction does with maxPacks, between
// the flusher's flushes and merges.
func mergeNow(be *FSBackend, maxPacks int) error {
	be.flushMu.Lock()
	defer be.flushMu.Unlock()
	return be.compactTo(maxPacks)
}

// packFiles returns the names of the packs in a repository.
func packFiles(t testing.TB, repo string) []string {
	t.Helper()
	ps, err := filepath.Glob(filepath.Join(repo, "objects", "pack", "pack-*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range ps {
		ps[i] = filepath.Base(ps[i])
	}
	slices.Sort(ps)
	return ps
}

type revValue struct {
	rev        int64
	key, value string
}

func checkRevisions(t testing.TB, r *Repo, vs []revValue) {
	t.Helper()
	for _, v := range vs {
		if got := get(t, r, v.key, v.rev); got != v.value {
			t.Errorf("%s at %d = %.40q, want %.40q", v.key, v.rev, got, v.value)
		}
	}
}

// TestCompactionBoundsPacks makes a pack per write and checks that merging
// keeps their number at MaxPacks while every revision stays readable.
func TestCompactionBoundsPacks(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, compactOpts)
	r := defaultRepo(t, s)
	repo := s.repoDir(DefaultRepo)
	var vs []revValue
	for i := range 40 {
		key := fmt.Sprintf("k/%d", i%7)
		value := fmt.Sprintf("value %d %s", i, strings.Repeat("y", i*100))
		vs = append(vs, revValue{put(t, r, key, value).Revision, key, value})
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if n := len(packFiles(t, repo)); n > 3 {
			t.Fatalf("after flush %d: %d packs, want at most MaxPacks=3", i, n)
		}
	}
	// Writes left to the flusher, with no Flush between them.
	for i := range 60 {
		key := fmt.Sprintf("k/%d", i%7)
		value := fmt.Sprintf("more %d", i)
		vs = append(vs, revValue{put(t, r, key, value).Revision, key, value})
	}
	checkRevisions(t, r, vs)
	checkStore(t, s) // closes; git fsck; index rebuilt and compared
	if n := len(packFiles(t, repo)); n > 3 {
		t.Errorf("after close: %d packs", n)
	}
	s = reopenTestStore(t, dir, compactOpts)
	checkRevisions(t, defaultRepo(t, s), vs)
}

// TestCompactionMergesGitPack has git repack the repository into a pack with
// deltas, then makes gitstate merge that pack with its own.
func TestCompactionMergesGitPack(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, compactOpts)
	r := defaultRepo(t, s)
	repo := s.repoDir(DefaultRepo)
	// A value that changes a little at each revision: Git stores most of
	// its versions as deltas.
	lines := make([]string, 300)
	for i := range lines {
		lines[i] = fmt.Sprintf("line %03d: some configuration that stays the same", i)
	}
	var vs []revValue
	for i := range 30 {
		lines[i*7%300] = fmt.Sprintf("line %03d: changed at step %d", i*7%300, i)
		value := strings.Join(lines, "\n")
		vs = append(vs, revValue{put(t, r, "big/config", value).Revision, "big/config", value})
		vs = append(vs, revValue{put(t, r, fmt.Sprintf("small/%d", i), fmt.Sprint(i)).Revision, fmt.Sprintf("small/%d", i), fmt.Sprint(i)})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	git(t, repo, "repack", "-a", "-d", "-f", "-q")
	gitPacks := packFiles(t, repo)
	if len(gitPacks) != 1 {
		t.Fatalf("git repack left %d packs", len(gitPacks))
	}
	if n := countDeltas(t, repo, gitPacks[0]); n < 10 {
		t.Fatalf("git's pack holds %d deltas; the test needs some", n)
	}

	s = openTestStore(t, dir, compactOpts)
	r = defaultRepo(t, s)
	checkRevisions(t, r, vs)
	// Incompressible values, so that gitstate's packs outweigh half of
	// git's and the merge takes git's pack in.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; slices.Contains(packFiles(t, repo), gitPacks[0]); i++ {
		if i == 20 {
			t.Fatalf("git's pack %s still there after 20 flushes: %v", gitPacks[0], packFiles(t, repo))
		}
		value := make([]byte, 32<<10)
		for j := range value {
			value[j] = byte('a' + rng.IntN(26))
		}
		key := fmt.Sprintf("random/%d", i)
		vs = append(vs, revValue{put(t, r, key, string(value)).Revision, key, string(value)})
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing of git's pack is left: not its index, nor its .rev or
	// .bitmap.
	base := strings.TrimSuffix(gitPacks[0], ".pack")
	if left, _ := filepath.Glob(filepath.Join(repo, "objects", "pack", base+".*")); len(left) > 0 {
		t.Errorf("left of git's pack: %v", left)
	}
	checkRevisions(t, r, vs)
	checkStore(t, s)
	s = reopenTestStore(t, dir, compactOpts)
	checkRevisions(t, defaultRepo(t, s), vs)
	if out := git(t, repo, "count-objects", "-v"); !strings.Contains(out, "garbage: 0") {
		t.Errorf("git count-objects -v:\n%s", out)
	}
}

// countDeltas returns how many objects of a pack are stored as deltas.
func countDeltas(t testing.TB, repo, pack string) int {
	t.Helper()
	out := git(t, repo, "verify-pack", "-v", filepath.Join(repo, "objects", "pack", pack))
	n := 0
	for line := range strings.SplitSeq(out, "\n") {
		// "<id> <type> <size> <size-in-pack> <offset> <depth> <base>"
		if f := strings.Fields(line); len(f) == 7 && len(f[0]) == 40 {
			n++
		}
	}
	return n
}

// TestPickMerge checks the tiers: a full tier is merged with everything
// smaller, larger packs are left alone, and maxPacks bounds the rest.
func TestPickMerge(t *testing.T) {
	const k, m = 1 << 10, 1 << 20
	sizes := func(ss ...int64) []*pack {
		var ps []*pack
		for _, s := range ss {
			ps = append(ps, &pack{size: s})
		}
		return ps
	}
	rep := func(n int, s int64) []int64 { return slices.Repeat([]int64{s}, n) }
	cat := func(xs ...[]int64) []int64 { return slices.Concat(xs...) }
	tests := []struct {
		name     string
		sizes    []int64
		maxPacks int
		want     int // how many of the smallest are merged
	}{
		{"nothing", nil, 32, 0},
		{"tier 0 not full", rep(7, 800*k), 32, 0},
		{"tier 0 full", rep(8, 800*k), 32, 8},
		{"tier 0 full, larger left alone", cat(rep(8, 800*k), []int64{5 * m, 79 * m}), 32, 8},
		{"tier 1 full takes tier 0 along", cat(rep(3, 800*k), rep(8, 6*m), []int64{79 * m}), 32, 11},
		{"tier 1 full, tier 0 full too", cat(rep(8, 800*k), rep(8, 6*m)), 32, 16},
		{"tiers below full", cat(rep(7, 800*k), rep(7, 6*m), rep(7, 40*m)), 32, 0},
		{"maxPacks bounds", cat(rep(7, 800*k), rep(7, 6*m)), 10, 5},
		{"maxPacks 2", []int64{100, 200, 5000}, 2, 2},
		{"maxPacks 3 unmet", []int64{100, 200, 5000}, 3, 0},
		{"unsorted input", []int64{79 * m, 800 * k, 800 * k, 800 * k, 800 * k, 800 * k, 800 * k, 800 * k, 900 * k}, 32, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pickMerge(sizes(tt.sizes...), tt.maxPacks)
			if len(got) != tt.want {
				t.Fatalf("merges %d packs, want %d", len(got), tt.want)
			}
			sorted := slices.Sorted(slices.Values(tt.sizes))
			for i, p := range got {
				if p.size != sorted[i] {
					t.Errorf("merge %d: size %d, want the %d'th smallest, %d", i, p.size, i, sorted[i])
				}
			}
		})
	}
}

func TestPackTier(t *testing.T) {
	for _, tt := range []struct {
		size int64
		want int
	}{{0, 0}, {1<<20 - 1, 0}, {1 << 20, 1}, {8<<20 - 1, 1}, {8 << 20, 2}, {64 << 20, 3}, {300 << 20, 3}, {512 << 20, 4}} {
		if got := packTier(tt.size); got != tt.want {
			t.Errorf("packTier(%d) = %d, want %d", tt.size, got, tt.want)
		}
	}
}

// TestCompactionDuplicates merges packs that hold the same objects (as a
// replay after a crash between a pack and its checkpoint leaves them),
// including the base of a delta: each object is kept once, the delta
// points at the copy kept, and Git reads the result.
func TestCompactionDuplicates(t *testing.T) {
	dir := t.TempDir()
	be, err := OpenFS(dir, FSOptions{MaxPacks: 1000})
	if err != nil {
		t.Fatal(err)
	}
	blobA, blobB := NewObject(BlobObject, []byte("a\n")), NewObject(BlobObject, []byte("b\n"))
	entries := make([]TreeEntry, 100) // large enough to be stored as a delta
	for i := range entries {
		entries[i] = TreeEntry{Name: fmt.Sprintf("key%03d", i), Mode: ModeFile, Hash: blobA.Hash}
	}
	t1 := NewObject(TreeObject, (&Tree{Entries: entries}).Encode())
	entries[50].Hash = blobB.Hash
	t2 := NewObject(TreeObject, (&Tree{Entries: slices.Clone(entries)}).Encode())
	t2.DeltaBase = t1.Hash
	mkCommit := func(tree Hash, parents ...Hash) *Object {
		c := &Commit{Tree: tree, Parents: parents, Author: Signature{Name: "t", Email: "t@t", When: time.Unix(1, 0)}, Message: "m\n"}
		c.Committer = c.Author
		return NewObject(CommitObject, c.Encode())
	}
	c1 := mkCommit(t1.Hash)
	c2 := mkCommit(t2.Hash, c1.Hash)
	groups := [][]*Object{
		{blobA, t1, c1},
		{blobA, blobB, t1, t2, c1, c2}, // all of the first again, and more
		{blobB, c2},
	}
	var head Hash
	for _, objs := range groups {
		last := objs[len(objs)-1]
		if err := be.Commit(objs, []RefUpdate{{Name: "refs/heads/main", Old: head, New: last.Hash}}, nil); err != nil {
			t.Fatal(err)
		}
		head = last.Hash
		if err := be.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	repo := dir
	if n := len(packFiles(t, repo)); n != 3 {
		t.Fatalf("%d packs before the merge, want 3", n)
	}
	if n := countDeltas(t, repo, packFiles(t, repo)[0]) + countDeltas(t, repo, packFiles(t, repo)[1]) + countDeltas(t, repo, packFiles(t, repo)[2]); n != 1 {
		t.Fatalf("%d deltas before the merge, want 1 (t2 against t1)", n)
	}
	if err := mergeNow(be, 1); err != nil {
		t.Fatal(err)
	}
	ps := packFiles(t, repo)
	if len(ps) != 1 {
		t.Fatalf("%d packs after the merge", len(ps))
	}
	if n := countDeltas(t, repo, ps[0]); n != 1 {
		t.Errorf("%d deltas after the merge, want t2's", n)
	}
	out := git(t, repo, "verify-pack", "-v", filepath.Join("objects", "pack", strings.TrimSuffix(ps[0], ".pack")+".idx"))
	if !strings.Contains(out, "non delta: 5 objects") {
		t.Errorf("git verify-pack:\n%s", out)
	}
	for _, o := range []*Object{blobA, blobB, t1, t2, c1, c2} {
		got, err := be.ReadObject(o.Hash)
		if err != nil || !bytes.Equal(got.Data, o.Data) {
			t.Errorf("%s after the merge: %v", o.Hash, err)
		}
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "fsck", "--strict", "--no-dangling")
}

// TestCompactionRefusesCorruptEntry flips a byte inside a pack entry: the
// merge fails on the entry's CRC and leaves every pack as it was, instead
// of copying the damage into a new pack with a valid checksum.
func TestCompactionRefusesCorruptEntry(t *testing.T) {
	dir := t.TempDir()
	be, err := OpenFS(dir, FSOptions{MaxPacks: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var head Hash
	for i := range 2 {
		o := NewObject(BlobObject, []byte(strings.Repeat(fmt.Sprint(i), 100)))
		if err := be.Commit([]*Object{o}, []RefUpdate{{Name: "refs/heads/x", Old: head, New: o.Hash}}, nil); err != nil {
			t.Fatal(err)
		}
		head = o.Hash
		if err := be.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	before := packFiles(t, dir)
	path := filepath.Join(dir, "objects", "pack", before[0])
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[12+20] ^= 0xff // inside the only entry's zlib stream
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o444); err != nil {
		t.Fatal(err)
	}
	be, err = OpenFS(dir, FSOptions{MaxPacks: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if err := mergeNow(be, 1); err == nil || !strings.Contains(err.Error(), "CRC") {
		t.Fatalf("merge over a corrupt entry: %v, want a CRC error", err)
	}
	if after := packFiles(t, dir); !slices.Equal(after, before) {
		t.Errorf("packs after the failed merge: %v, want %v", after, before)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", tempPrefix+"*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// oneKeyCommit returns the objects of a commit at time when (on parent,
// unless zero) whose tree holds one key with value.
func oneKeyCommit(value string, when int64, parent Hash) (blob, tree, commit *Object) {
	blob = NewObject(BlobObject, []byte(value))
	tree = NewObject(TreeObject, (&Tree{Entries: []TreeEntry{{Name: "key", Mode: ModeFile, Hash: blob.Hash}}}).Encode())
	c := &Commit{Tree: tree.Hash, Author: Signature{Name: "t", Email: "t@t", When: time.Unix(when, 0)}, Message: "m\n"}
	if !parent.IsZero() {
		c.Parents = []Hash{parent}
	}
	c.Committer = c.Author
	return blob, tree, NewObject(CommitObject, c.Encode())
}

// copyFile copies src to dst, for the tests that put back files a crash
// would have left.
func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o444); err != nil {
		t.Fatal(err)
	}
}

// TestCompactionCutShort is a merge that a crash cut short after its pack
// was in place and before it removed the packs it merged. At the next
// merge, those packs and the merged one are merged again: the result is
// the merged pack once more, byte for byte and so under the same name,
// and it must not be removed with the sources (found by TestNotesKill9:
// 700 commits of history lost).
func TestCompactionCutShort(t *testing.T) {
	dir := t.TempDir()
	be, err := OpenFS(dir, FSOptions{MaxPacks: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var objs []*Object
	var head Hash
	for i := range 4 {
		// Values of growing sizes: packs of distinct sizes, which a
		// merge takes in one order only.
		blob, tree, co := oneKeyCommit(fmt.Sprintf("value %d %s\n", i, strings.Repeat("x", 100*i)), int64(i), head)
		if err := be.Commit([]*Object{blob, tree, co}, []RefUpdate{{Name: "refs/heads/main", Old: head, New: co.Hash}}, nil); err != nil {
			t.Fatal(err)
		}
		if err := be.Flush(); err != nil {
			t.Fatal(err)
		}
		head = co.Hash
		objs = append(objs, blob, tree, co)
	}
	packDir := filepath.Join(dir, "objects", "pack")
	sources := packFiles(t, dir)
	saved := t.TempDir()
	for _, p := range sources {
		for _, ext := range []string{".pack", ".idx"} {
			name := strings.TrimSuffix(p, ".pack") + ext
			copyFile(t, filepath.Join(packDir, name), filepath.Join(saved, name))
		}
	}
	if err := mergeNow(be, 1); err != nil {
		t.Fatal(err)
	}
	merged := packFiles(t, dir)
	if len(merged) != 1 {
		t.Fatalf("packs after the merge: %v", merged)
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	// The crash: the sources are still there.
	for _, p := range sources {
		for _, ext := range []string{".pack", ".idx"} {
			name := strings.TrimSuffix(p, ".pack") + ext
			copyFile(t, filepath.Join(saved, name), filepath.Join(packDir, name))
		}
	}
	be, err = OpenFS(dir, FSOptions{MaxPacks: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := mergeNow(be, 1); err != nil {
		t.Fatal(err)
	}
	if got := packFiles(t, dir); !slices.Equal(got, merged) {
		t.Errorf("packs after merging again: %v, want %v", got, merged)
	}
	check := func(when string) {
		t.Helper()
		for _, o := range objs {
			got, err := be.ReadObject(o.Hash)
			if err != nil || !bytes.Equal(got.Data, o.Data) {
				t.Fatalf("%s: %s %s: %v", when, o.Type, o.Hash, err)
			}
		}
	}
	check("after merging again")
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	if be, err = OpenFS(dir, FSOptions{MaxPacks: 1}); err != nil {
		t.Fatal(err)
	}
	check("reopened")
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "fsck", "--strict", "--no-dangling")
}

// TestFlushSamePackAgain flushes the same group twice (as a replay after a
// crash between a pack and its checkpoint does): the second pack is the
// first, byte for byte, under the same name. It is not opened twice, and a
// merge afterwards loses nothing.
func TestFlushSamePackAgain(t *testing.T) {
	dir := t.TempDir()
	be, err := OpenFS(dir, FSOptions{MaxPacks: 1000})
	if err != nil {
		t.Fatal(err)
	}
	blob, tree, co := oneKeyCommit("value\n", 1, ZeroHash)
	objs := []*Object{blob, tree, co}
	var old Hash
	for range 2 {
		if err := be.Commit(objs, []RefUpdate{{Name: "refs/heads/main", Old: old, New: co.Hash}}, nil); err != nil {
			t.Fatal(err)
		}
		old = co.Hash
		if err := be.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	be.mu.RLock()
	open := len(be.packs)
	be.mu.RUnlock()
	if n := len(packFiles(t, dir)); n != 1 || open != 1 {
		t.Fatalf("%d pack files, %d packs open; want 1 and 1", n, open)
	}
	// Another pack, so that there is something to merge.
	other := NewObject(BlobObject, []byte("other\n"))
	if err := be.Commit([]*Object{other}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := be.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := mergeNow(be, 1); err != nil {
		t.Fatal(err)
	}
	for _, o := range append(objs, other) {
		if _, err := be.ReadObject(o.Hash); err != nil {
			t.Fatalf("%s after the merge: %v", o.Hash, err)
		}
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "fsck", "--strict")
}

// TestOpenRemovesTempFiles leaves the temporary files a crash can leave
// (a pack and an index being written, refs and packed-refs before their
// rename) and one of Git's own, and opens the repository: gitstate's go,
// Git's stays, and the repository is whole.
func TestOpenRemovesTempFiles(t *testing.T) {
	dir := t.TempDir()
	be, err := OpenFS(dir, FSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	blob, tree, co := oneKeyCommit("value\n", 1, ZeroHash)
	if err := be.Commit([]*Object{blob, tree, co}, []RefUpdate{{Name: "refs/heads/main", New: co.Hash}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	ours := []string{
		filepath.Join("objects", "pack", tempPrefix+"pack-123"),
		filepath.Join("objects", "pack", tempPrefix+"pack-abc.idx-456"),
		filepath.Join("refs", "heads", tempPrefix+"main-789"),
		filepath.Join("refs", "heads", "team", tempPrefix+"x-1"),
		tempPrefix + "packed-refs-2",
	}
	gits := filepath.Join("objects", "pack", "tmp_pack_abc")
	for _, p := range append(slices.Clone(ours), gits) {
		path := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if be, err = OpenFS(dir, FSOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range ours {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after open: %v, want it removed", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, gits)); err != nil {
		t.Errorf("git's %s after open: %v, want it left", gits, err)
	}
	if _, err := be.ReadObject(co.Hash); err != nil {
		t.Fatal(err)
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, gits))
	git(t, dir, "fsck", "--strict")
}

// TestMergeStopsOnClose checks that a merge stops when the backend is
// closing: the sources stay as they were, no temporary file is left, and
// the repository reopens with every object.
func TestMergeStopsOnClose(t *testing.T) {
	dir := t.TempDir()
	be, err := OpenFS(dir, FSOptions{MaxPacks: 1000, IdleMerge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var objs []*Object
	var head Hash
	for p := range 4 {
		blob := NewObject(BlobObject, fmt.Appendf(nil, "value %d\n", p))
		tree := NewObject(TreeObject, (&Tree{Entries: []TreeEntry{{Name: "v", Mode: ModeFile, Hash: blob.Hash}}}).Encode())
		c := &Commit{Tree: tree.Hash, Author: Signature{Name: "t", Email: "t@t", When: time.Unix(1, 0)}, Message: fmt.Sprintf("m %d\n", p)}
		if !head.IsZero() {
			c.Parents = []Hash{head}
		}
		c.Committer = c.Author
		commit := NewObject(CommitObject, c.Encode())
		group := []*Object{blob, tree, commit}
		if err := be.Commit(group, []RefUpdate{{Name: "refs/heads/main", Old: head, New: commit.Hash}}, nil); err != nil {
			t.Fatal(err)
		}
		head = commit.Hash
		objs = append(objs, group...)
		if err := be.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	before := packFiles(t, dir)
	if len(before) != 4 {
		t.Fatalf("%d packs, want 4", len(before))
	}
	be.closing.Store(true) // as Close does first
	if err := mergeNow(be, 1); !errors.Is(err, errMergeStopped) {
		t.Fatalf("merge while closing: %v, want errMergeStopped", err)
	}
	if after := packFiles(t, dir); !slices.Equal(after, before) {
		t.Fatalf("packs after the stopped merge %v, want %v", after, before)
	}
	tmps, err := filepath.Glob(filepath.Join(dir, "objects", "pack", ".tmp-*"))
	if err != nil || len(tmps) != 0 {
		t.Fatalf("left behind: %v (%v)", tmps, err)
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "fsck", "--strict")
	be, err = OpenFS(dir, FSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	for _, o := range objs {
		if got, err := be.ReadObject(o.Hash); err != nil || !bytes.Equal(got.Data, o.Data) {
			t.Errorf("%s after reopening: %v", o.Hash, err)
		}
	}
}
