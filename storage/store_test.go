package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gitstate/gitstate"
)

// newTestStore opens a store in a temporary directory. At cleanup it closes
// the store and checks that every repo is a valid Git repository (git fsck
// --strict) and that a freshly rebuilt index agrees with the one the store
// kept.
func newTestStore(t testing.TB, opts ...func(*Options)) *Store {
	t.Helper()
	dir := t.TempDir()
	s := openTestStore(t, dir, opts...)
	t.Cleanup(func() {
		if s.repos == nil {
			return
		}
		checkStore(t, s)
	})
	return s
}

func openTestStore(t testing.TB, dir string, opts ...func(*Options)) *Store {
	t.Helper()
	var o Options
	for _, f := range opts {
		f(&o)
	}
	s, err := Open(context.Background(), dir, o)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

// checkStore closes s, runs git fsck on every repo, and compares the index
// with one rebuilt from Git.
func checkStore(t testing.TB, s *Store) {
	t.Helper()
	names := s.Repos()
	before := map[string]*ListResult{}
	for _, n := range names {
		r, _ := s.Repo(n)
		res, err := r.List(context.Background(), ListOptions{Limit: 1 << 30})
		if err != nil {
			t.Fatalf("list %s: %v", n, err)
		}
		before[n] = res
		// The index must agree with Git's trees at head.
		fromGit, err := r.ListAt(context.Background(), r.Head().Commit, ListOptions{Limit: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		if len(fromGit.Items) != len(res.Items) {
			t.Errorf("repo %s: index has %d keys, git %d", n, len(res.Items), len(fromGit.Items))
		}
		for i := range min(len(res.Items), len(fromGit.Items)) {
			a, b := res.Items[i], fromGit.Items[i]
			if a.Key != b.Key || a.Blob != b.Blob || a.Size != b.Size {
				t.Errorf("repo %s: index %+v, git %+v", n, a, b)
				break
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	s.repos = nil
	for _, n := range names {
		gitFsck(t, s.repoDir(n))
	}
	// Rebuild the index from scratch and compare mod revisions too.
	if err := os.RemoveAll(filepath.Join(s.dir, "index")); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(context.Background(), s.dir, Options{})
	if err != nil {
		t.Fatalf("reopen without index: %v", err)
	}
	defer s2.Close()
	for _, n := range names {
		r, _ := s2.Repo(n)
		res, err := r.List(context.Background(), ListOptions{Limit: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		want := before[n]
		if res.Revision != want.Revision || len(res.Items) != len(want.Items) {
			t.Errorf("repo %s: rebuilt index at %d with %d keys, was %d with %d", n, res.Revision, len(res.Items), want.Revision, len(want.Items))
			continue
		}
		for i := range res.Items {
			a, b := res.Items[i], want.Items[i]
			if a.Key != b.Key || a.Blob != b.Blob || a.ModRevision != b.ModRevision || a.Size != b.Size {
				t.Errorf("repo %s: rebuilt %+v, was %+v", n, a, b)
				break
			}
		}
	}
}

func gitFsck(t testing.TB, dir string) {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "fsck", "--strict", "--no-progress").CombinedOutput()
	var problems []string
	for line := range strings.Lines(string(out)) {
		// An empty repo has no main yet: notices, not problems.
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "notice:") {
			problems = append(problems, line)
		}
	}
	if err != nil || len(problems) > 0 {
		t.Errorf("git fsck --strict %s: %v\n%s", dir, err, out)
	}
}

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func put(t testing.TB, r *Repo, key, value string) *Result {
	t.Helper()
	res, err := r.WriteOne(context.Background(), &Batch{Ops: []Op{{Kind: OpPut, Key: key, Value: []byte(value)}}})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return res
}

func get(t testing.TB, r *Repo, key string, rev int64) string {
	t.Helper()
	v, err := r.Get(context.Background(), key, rev)
	if err != nil {
		t.Fatalf("get %s@%d: %v", key, rev, err)
	}
	return string(v.Data)
}

func defaultRepo(t testing.TB, s *Store) *Repo {
	t.Helper()
	r, err := s.Repo(DefaultRepo)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPutGetRevisions(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	if h := r.Head(); h.Revision != 0 {
		t.Fatalf("empty repo at revision %d", h.Revision)
	}
	r1 := put(t, r, "apps/web/deployment.yaml", "replicas: 1\n")
	if !r1.Changed || r1.Revision != 1 {
		t.Fatalf("first put: %+v", r1)
	}
	r2 := put(t, r, "apps/web/deployment.yaml", "replicas: 2\n")
	if r2.Revision != 2 {
		t.Fatalf("second put at %d", r2.Revision)
	}
	// Same value: no commit.
	r3 := put(t, r, "apps/web/deployment.yaml", "replicas: 2\n")
	if r3.Changed || r3.Revision != 2 || r3.Commit != r2.Commit {
		t.Fatalf("no-op put: %+v", r3)
	}
	put(t, r, "apps/api/deployment.yaml", "replicas: 3\n")
	if got := get(t, r, "apps/web/deployment.yaml", 0); got != "replicas: 2\n" {
		t.Errorf("head: %q", got)
	}
	if got := get(t, r, "apps/web/deployment.yaml", 1); got != "replicas: 1\n" {
		t.Errorf("rev 1: %q", got)
	}
	v, _ := r.Get(context.Background(), "apps/web/deployment.yaml", 0)
	if v.ModRevision != 2 || v.Revision != 3 {
		t.Errorf("mod revision %d at %d, want 2 at 3", v.ModRevision, v.Revision)
	}
	v, _ = r.Get(context.Background(), "apps/web/deployment.yaml", 1)
	if v.ModRevision != 1 || v.Revision != 1 {
		t.Errorf("at 1: mod revision %d at %d", v.ModRevision, v.Revision)
	}
	if _, err := r.Get(context.Background(), "apps/api/deployment.yaml", 2); !errors.Is(err, gitstate.ErrKeyNotFound) {
		t.Errorf("absent at rev 2: %v", err)
	}
	if _, err := r.Get(context.Background(), "apps/web", 0); !errors.Is(err, gitstate.ErrKeyNotFound) {
		t.Errorf("directory as key: %v", err)
	}
	// The Git repository shows the same.
	s.Flush()
	if got := git(t, s.repoDir(DefaultRepo), "show", "main:apps/web/deployment.yaml"); got != "replicas: 2\n" {
		t.Errorf("git show: %q", got)
	}
	if n := strings.Count(git(t, s.repoDir(DefaultRepo), "log", "--oneline", "main"), "\n"); n != 3 {
		t.Errorf("git log has %d commits, want 3", n)
	}
}

func TestListPages(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	var ops []Op
	for i := range 25 {
		ops = append(ops, Op{Kind: OpPut, Key: fmt.Sprintf("p/%02d", i), Value: []byte{byte(i)}})
	}
	ops = append(ops, Op{Kind: OpPut, Key: "p-x", Value: []byte("x")}, Op{Kind: OpPut, Key: "q", Value: []byte("q")})
	if _, err := r.WriteOne(context.Background(), &Batch{Ops: ops}); err != nil {
		t.Fatal(err)
	}
	put(t, r, "p/00", "changed")
	for _, rev := range []int64{0, 1} {
		var keys []string
		after := ""
		for {
			res, err := r.List(context.Background(), ListOptions{Prefix: "p/", After: after, Limit: 10, Revision: rev, Values: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range res.Items {
				keys = append(keys, it.Key)
			}
			if res.Next == "" {
				break
			}
			after = res.Next
		}
		if len(keys) != 25 || keys[0] != "p/00" || keys[24] != "p/24" {
			t.Errorf("rev %d: listed %d keys: %v", rev, len(keys), keys)
		}
	}
	res, _ := r.List(context.Background(), ListOptions{Prefix: "p"})
	if len(res.Items) != 26 || res.Items[0].Key != "p-x" {
		t.Errorf("prefix p: %d items, first %q", len(res.Items), res.Items[0].Key)
	}
}

func TestPathConflicts(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	put(t, r, "a/b", "1")
	for _, key := range []string{"a", "a/b/c"} {
		_, err := r.WriteOne(context.Background(), &Batch{Ops: []Op{{Kind: OpPut, Key: key, Value: []byte("x")}}})
		if !errors.Is(err, gitstate.ErrKeyConflict) {
			t.Errorf("put %s: %v, want key_conflict", key, err)
		}
	}
	put(t, r, "a-b", "2")
	put(t, r, "a.b", "3")
	put(t, r, "a/a", "4")
	res, _ := r.List(context.Background(), ListOptions{})
	var keys []string
	for _, it := range res.Items {
		keys = append(keys, it.Key)
	}
	if got := strings.Join(keys, ","); got != "a-b,a.b,a/a,a/b" {
		t.Errorf("order: %s", got)
	}
}

func TestBatchOps(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	put(t, r, "x/1", "one")
	put(t, r, "x/2", "two")
	put(t, r, "y", "why")
	res, err := r.WriteOne(ctx, &Batch{Ops: []Op{
		{Kind: OpMove, From: "x/1", Key: "z/1"},
		{Kind: OpDelete, Key: "y"},
		{Kind: OpPut, Key: "x/3", Value: []byte("three")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ri, err := r.Revision(res.Revision)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range ri.Changes {
		got = append(got, c.Op+":"+c.From+">"+c.Key)
	}
	if strings.Join(got, " ") != "put:>x/3 delete:>y move:x/1>z/1" {
		t.Errorf("changes: %v", got)
	}
	// A failing precondition changes nothing.
	v, _ := r.Get(ctx, "x/2", 0)
	_, err = r.WriteOne(ctx, &Batch{
		Ops:           []Op{{Kind: OpPut, Key: "x/2", Value: []byte("new")}},
		Preconditions: []Precondition{{Key: "x/2", ETag: v.Blob}, {Key: "x/3", Absent: true}},
	})
	var ge *gitstate.Error
	if !errors.As(err, &ge) || ge.Code != "precondition_failed" || len(ge.Keys) != 1 || ge.Keys[0] != "x/3" {
		t.Fatalf("precondition: %v", err)
	}
	if r.Head().Revision != res.Revision {
		t.Error("failed batch made a commit")
	}
	// Delete of a directory.
	if _, err := r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpDeletePrefix, Key: "x", MustExist: true}}}); err != nil {
		t.Fatal(err)
	}
	l, _ := r.List(ctx, ListOptions{})
	if len(l.Items) != 1 || l.Items[0].Key != "z/1" {
		t.Errorf("after delete x/: %+v", l.Items)
	}
	// Base revision: z/1 changed after revision 3.
	_, err = r.WriteOne(ctx, &Batch{BaseRevision: 3, CheckBase: true, Ops: []Op{{Kind: OpPut, Key: "z/1", Value: []byte("n")}}})
	if !errors.Is(err, gitstate.ErrChangedSinceBase) {
		t.Errorf("base revision: %v", err)
	}
	if _, err = r.WriteOne(ctx, &Batch{BaseRevision: 4, CheckBase: true, Ops: []Op{{Kind: OpPut, Key: "z/1", Value: []byte("n")}}}); err != nil {
		t.Errorf("base revision 4: %v", err)
	}
}

func TestRevertRollback(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	put(t, r, "app/config", "v1")                // 1
	put(t, r, "app/secret", "s1")                // 2
	put(t, r, "app/config", "v2")                // 3
	res, err := r.Revert(ctx, 3, false, Batch{}) // 4
	if err != nil || get(t, r, "app/config", 0) != "v1" {
		t.Fatalf("revert: %v", err)
	}
	put(t, r, "app/config", "v3") // 5
	if _, err := r.Revert(ctx, 3, false, Batch{}); !errors.Is(err, &gitstate.Error{Code: "revert_conflict"}) {
		t.Errorf("conflicting revert: %v", err)
	}
	if _, err := r.Revert(ctx, 3, true, Batch{}); err != nil {
		t.Errorf("forced revert: %v", err)
	}
	_ = res
	put(t, r, "other", "o")
	if _, err := r.Rollback(ctx, 1, "app/", nil, Batch{}); err != nil {
		t.Fatal(err)
	}
	if get(t, r, "app/config", 0) != "v1" {
		t.Error("rollback did not restore app/config")
	}
	if _, err := r.Get(ctx, "app/secret", 0); !errors.Is(err, gitstate.ErrKeyNotFound) {
		t.Error("rollback did not remove app/secret")
	}
	if get(t, r, "other", 0) != "o" {
		t.Error("rollback touched a key outside its prefix")
	}
}

// TestLookup: Lookup answers as Get does, but with a nil value and no
// error for an absent key, at head (asked once and again, once the hot
// cache knows it is absent) and at an older revision; a key written after
// it was found absent is found; a revision that does not exist is still
// an error.
func TestLookup(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	put(t, r, "a", "1")                  // revision 1
	rev2 := put(t, r, "a", "2").Revision // revision 2
	put(t, r, "b", "x")                  // revision 3
	tests := []struct {
		key  string
		rev  int64
		want string // "" for absent
	}{
		{"a", 0, "2"},
		{"a", 1, "1"},
		{"b", 0, "x"},
		{"b", rev2, ""},
		{"c", 0, ""},
		{"c", 0, ""}, // again: now from the hot cache's absent entry
		{"c", 1, ""},
		{"dir/c", 0, ""},
	}
	for _, tc := range tests {
		v, err := r.Lookup(ctx, tc.key, tc.rev)
		if err != nil {
			t.Fatalf("Lookup(%s@%d): %v", tc.key, tc.rev, err)
		}
		switch {
		case tc.want == "" && v != nil:
			t.Errorf("Lookup(%s@%d) = %q, want absent", tc.key, tc.rev, v.Data)
		case tc.want != "" && (v == nil || string(v.Data) != tc.want):
			t.Errorf("Lookup(%s@%d) = %v, want %q", tc.key, tc.rev, v, tc.want)
		}
		_, gerr := r.Get(ctx, tc.key, tc.rev)
		if (tc.want == "") != errors.Is(gerr, gitstate.ErrKeyNotFound) {
			t.Errorf("Get(%s@%d): %v, but Lookup found %v", tc.key, tc.rev, gerr, v)
		}
	}
	put(t, r, "c", "now") // c was cached as absent
	if v, err := r.Lookup(ctx, "c", 0); err != nil || v == nil || string(v.Data) != "now" {
		t.Fatalf("Lookup(c) after its write: %v, %v", v, err)
	}
	if _, err := r.Lookup(ctx, "a", 99); err == nil {
		t.Fatal("Lookup at revision 99 of 4: no error")
	}
}

// TestDataDirLocked opens a store's data directory a second time while it
// is open: the second Open fails with ErrDataDirLocked and changes
// nothing (it used to take the first's index, locked by pebble, for a
// damaged one and set it aside). Once the first is closed, Open works.
func TestDataDirLocked(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := defaultRepo(t, s)
	if _, err := r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpPut, Key: "k", Value: []byte("v")}}}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, dir, Options{})
	if !errors.Is(err, ErrDataDirLocked) {
		t.Fatalf("second Open: %v, want ErrDataDirLocked", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("the error does not name the holder: %v", err)
	}
	after, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("the data directory changed: %v, then %v", before, after)
	}
	if got := get(t, r, "k", 0); got != "v" {
		t.Errorf("k = %q after the second Open", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if got := get(t, defaultRepo(t, s), "k", 0); got != "v" {
		t.Errorf("k = %q after reopening", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// A repo's creation cut short by a crash leaves either nothing that looks
// like a repo (a new one is made aside and renamed into place) or, from an
// older version that made it in place, a directory without HEAD, which the
// next open completes. Either way the next open serves whole repos only.
func TestCreateRepoCutShort(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	if _, err := s.CreateRepo(ctx, "made"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	repos := filepath.Join(dir, "repos")
	left, _ := filepath.Glob(filepath.Join(repos, tempPrefix+"*"))
	if len(left) > 0 {
		t.Fatalf("a creation left %v", left)
	}
	// What a kill during a creation aside leaves.
	aside := filepath.Join(repos, tempPrefix+"aside.git-123")
	if err := writeBareRepo(aside); err != nil {
		t.Fatal(err)
	}
	// What a kill during a creation in place left: no HEAD.
	older := filepath.Join(repos, "older.git")
	if err := writeBareRepo(older); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(older, "HEAD")); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir)
	defer s.Close()
	if _, err := os.Stat(aside); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the repo made aside is still there: %v", err)
	}
	if got, want := s.Repos(), []string{"default", "made", "older"}; !slices.Equal(got, want) {
		t.Errorf("repos %v, want %v", got, want)
	}
	r, err := s.Repo("older")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpPut, Key: "k", Value: []byte("v")}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"made", "older"} {
		out, err := exec.Command("git", "-C", filepath.Join(repos, name+".git"), "fsck", "--strict", "--no-progress").CombinedOutput()
		if err != nil {
			t.Errorf("git fsck %s: %v\n%s", name, err, out)
		}
	}
}

// A second Close does nothing (it used to panic in pebble), and the data
// directory is free after the first.
func TestCloseTwice(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	s = openTestStore(t, dir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
