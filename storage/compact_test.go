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
