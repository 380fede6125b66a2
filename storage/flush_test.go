package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// commitValue commits to be a group of a ~1 KB blob and a tree holding
// it, moving ref to the tree, and returns the tree's id.
func commitValue(t *testing.T, be *FSBackend, ref string, i int) Hash {
	t.Helper()
	blob := NewObject(BlobObject, fmt.Appendf(nil, "value %d %s\n", i, strings.Repeat("x", 1000)))
	tree := NewObject(TreeObject, (&Tree{Entries: []TreeEntry{{Name: "v", Mode: ModeFile, Hash: blob.Hash}}}).Encode())
	if err := be.Commit([]*Object{blob, tree}, []RefUpdate{{Name: ref, Old: be.Ref(ref), New: tree.Hash}}, nil); err != nil {
		t.Fatal(err)
	}
	return tree.Hash
}

// TestFlushTriggers checks what makes the flusher write the journal's
// groups to Git's files: a pause in the writes (IdleFlush), the age of the
// oldest waiting group while writes keep coming (FlushDelay), or the bytes
// waiting (FlushBytes); and that with none of them due, nothing is
// written. Each case writes a group every 2 ms and watches the loose ref
// on disk, which only a flush writes.
func TestFlushTriggers(t *testing.T) {
	const never = time.Hour
	tests := []struct {
		name string
		opts FSOptions
		// pause stops the writes after the first group, so that only a
		// pause can be what triggers.
		pause bool
		want  bool
	}{
		{"idle", FSOptions{IdleFlush: 10 * time.Millisecond, FlushDelay: never, FlushBytes: 1 << 30}, true, true},
		{"delay under load", FSOptions{IdleFlush: never, FlushDelay: 50 * time.Millisecond, FlushBytes: 1 << 30}, false, true},
		{"bytes under load", FSOptions{IdleFlush: never, FlushDelay: never, FlushBytes: 64 << 10}, false, true},
		{"nothing due", FSOptions{IdleFlush: never, FlushDelay: never, FlushBytes: 1 << 30}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			be, err := OpenFS(dir, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			const ref = "refs/heads/flush-test"
			onDisk := func() string {
				b, err := os.ReadFile(filepath.Join(dir, ref))
				if err != nil {
					return ""
				}
				return strings.TrimSpace(string(b))
			}
			written := map[string]bool{}
			write := func(i int) { written[commitValue(t, be, ref, i).String()] = true }
			// The negative case watches for long enough that a wrong
			// trigger (every 20 ms, say) would have fired many times.
			deadline := time.Now().Add(5 * time.Second)
			if !tc.want {
				deadline = time.Now().Add(500 * time.Millisecond)
			}
			write(0)
			flushed := ""
			for i := 1; time.Now().Before(deadline); i++ {
				if flushed = onDisk(); flushed != "" {
					break
				}
				if !tc.pause {
					write(i)
				}
				time.Sleep(2 * time.Millisecond)
			}
			if got := flushed != ""; got != tc.want {
				t.Fatalf("flushed: %v, want %v (%d groups written)", got, tc.want, len(written))
			}
			if tc.want && !written[flushed] {
				t.Fatalf("the ref on disk names %s, which no write made", flushed)
			}
			if !tc.want {
				// Flush writes what waits, whatever the triggers.
				if err := be.Flush(); err != nil {
					t.Fatal(err)
				}
				if got, want := onDisk(), be.Ref(ref).String(); got != want {
					t.Fatalf("after Flush the ref on disk is %q, want %q", got, want)
				}
			}
		})
	}
}

// TestMergeWaitsForPause checks when the flusher merges packs whose tier is
// full: not while writes keep coming, at once when writes pause for
// IdleMerge, and under a long burst as soon as the packs pass MaxPacks.
// Each case writes a group every 2 ms for a while, the flusher making a
// pack every FlushDelay, and watches the packs on disk.
func TestMergeWaitsForPause(t *testing.T) {
	const never = time.Hour
	tests := []struct {
		name string
		opts FSOptions
		// mergeUnderLoad says whether packs may be merged while the
		// writes go on; maxPacks, if set, bounds them meanwhile.
		mergeUnderLoad bool
		maxPacks       int
		// mergedAfter says whether the full tier is merged once the
		// writes stop.
		mergedAfter bool
	}{
		{"pause", FSOptions{IdleMerge: 300 * time.Millisecond, MaxPacks: 1000}, false, 0, true},
		{"no pause long enough", FSOptions{IdleMerge: never, MaxPacks: 1000}, false, 0, false},
		// MaxPacks+1 packs start a merge, whose pack is written before
		// they are removed.
		{"past MaxPacks", FSOptions{IdleMerge: never, MaxPacks: 4}, true, 4 + 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := tc.opts
			opts.IdleFlush, opts.FlushDelay = 5*time.Millisecond, 25*time.Millisecond
			be, err := OpenFS(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			const ref = "refs/heads/merge-test"
			write := func(i int) { commitValue(t, be, ref, i) }
			seen := map[string]bool{}
			count := func() int {
				ps := packFiles(t, dir)
				for _, p := range ps {
					seen[p] = true
				}
				return len(ps)
			}
			most, merged := 0, false
			var gap time.Duration // the longest between two writes
			last := time.Now()
			for i := 0; len(seen) < 3*mergeFanIn; i++ {
				if i > 5000 {
					t.Fatalf("%d packs made after %d writes", len(seen), i)
				}
				write(i)
				gap, last = max(gap, time.Since(last)), time.Now()
				n := count()
				merged = merged || n < most
				most = max(most, n)
				if tc.maxPacks > 0 && n > tc.maxPacks {
					t.Fatalf("%d packs under load, want at most %d", n, tc.maxPacks)
				}
				time.Sleep(2 * time.Millisecond)
			}
			if merged && !tc.mergeUnderLoad && gap >= tc.opts.IdleMerge/2 {
				// A stalled machine paused the writer: a merge was due.
				t.Skipf("the writer stalled for %v: the pause rule cannot be judged", gap)
			}
			if merged != tc.mergeUnderLoad {
				t.Fatalf("packs merged under load: %v, want %v (%d packs made, %d at most)", merged, tc.mergeUnderLoad, len(seen), most)
			}
			// The writes stop.
			deadline := time.Now().Add(3 * time.Second)
			if !tc.mergedAfter {
				deadline = time.Now().Add(500 * time.Millisecond)
			}
			n := count()
			for n >= mergeFanIn && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				n = count()
			}
			if got := n < mergeFanIn; got != tc.mergedAfter {
				t.Fatalf("after the writes stopped: %d packs (merged: %v, want %v)", n, got, tc.mergedAfter)
			}
		})
	}
}

// TestPacksBelowGitAutoGC: under a long burst, with the default MaxPacks,
// the packs are merged before they pass git's gc.autoPackLimit (50), so
// that a git command run in the repository (gc --auto) finds nothing to
// repack behind the server's back.
func TestPacksBelowGitAutoGC(t *testing.T) {
	const gitAutoPackLimit = 50
	dir := t.TempDir()
	be, err := OpenFS(dir, FSOptions{IdleMerge: time.Hour, IdleFlush: 5 * time.Millisecond, FlushDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const ref = "refs/heads/burst"
	seen := map[string]bool{}
	most := 0
	for i := 0; len(seen) <= defaultMaxPacks+mergeFanIn; i++ {
		if i > 20000 {
			t.Fatalf("%d packs made after %d writes", len(seen), i)
		}
		commitValue(t, be, ref, i)
		ps := packFiles(t, dir)
		for _, p := range ps {
			seen[p] = true
		}
		most = max(most, len(ps))
		time.Sleep(time.Millisecond)
	}
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	// The flush that passes MaxPacks adds one, and the merge's pack is
	// written before its sources are removed: MaxPacks+2 at the peak. Git
	// repacks when there are more than gc.autoPackLimit.
	if most > gitAutoPackLimit {
		t.Errorf("%d packs at most under the burst: more than git's gc.autoPackLimit (%d)", most, gitAutoPackLimit)
	}
	before := packFiles(t, dir)
	if len(before) > gitAutoPackLimit {
		t.Fatalf("%d packs after the burst: git gc --auto would repack", len(before))
	}
	git(t, dir, "-c", "gc.autoDetach=false", "gc", "--auto")
	if after := packFiles(t, dir); !slices.Equal(after, before) {
		t.Errorf("git gc --auto repacked: %d packs before, %d after", len(before), len(after))
	}
}
