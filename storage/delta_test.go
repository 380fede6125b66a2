package storage

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
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
