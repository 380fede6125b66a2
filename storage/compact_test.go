package storage

import (
	"fmt"
	"math/rand/v2"
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
