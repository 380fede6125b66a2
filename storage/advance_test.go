package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitstate/gitstate"
)

// workClone clones a repo of the store into a temporary work tree, with an
// identity set, and returns its path.
func workClone(t *testing.T, s *Store, name string) string {
	t.Helper()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "work")
	out, err := exec.Command("git", "clone", "-q", s.repoDir(name), dir).CombinedOutput()
	if err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	git(t, dir, "config", "user.name", "Pat Pusher")
	git(t, dir, "config", "user.email", "pat@example.com")
	return dir
}

// commitFiles writes files (path -> content; "" deletes) in a work tree
// and commits them.
func commitFiles(t *testing.T, dir, msg string, files map[string]string) string {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if c == "" {
			git(t, dir, "rm", "-q", p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		git(t, dir, "add", p)
	}
	git(t, dir, "commit", "-q", "-m", msg)
	return strings.TrimSpace(git(t, dir, "rev-parse", "HEAD"))
}

// packOf returns the objects git pack-objects sends for new, minus what
// old has (a thin pack, as a push sends).
func packOf(t *testing.T, dir string, old, new string) []byte {
	t.Helper()
	in := new + "\n"
	if old != "" && old != ZeroHash.String() {
		in += "^" + old + "\n"
	}
	cmd := exec.Command("git", "-C", dir, "pack-objects", "--stdout", "--revs", "--thin", "--delta-base-offset", "-q")
	cmd.Stdin = strings.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pack-objects: %v\n%s", err, stderr.String())
	}
	return out
}

func hashOf(t *testing.T, s string) Hash {
	t.Helper()
	h, ok := ParseHash(s)
	if !ok {
		t.Fatalf("bad hash %q", s)
	}
	return h
}

func TestReadPackDeltas(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	// Values that delta well against each other.
	big := strings.Repeat("line of configuration\n", 400)
	put(t, r, "a/config.yaml", big)
	work := workClone(t, s, DefaultRepo)
	old := strings.TrimSpace(git(t, work, "rev-parse", "HEAD"))
	commitFiles(t, work, "tweak", map[string]string{"a/config.yaml": big + "one more\n", "b/x": big + "b\n"})
	newID := commitFiles(t, work, "tweak again", map[string]string{"a/config.yaml": big + "two more\n"})
	pack := packOf(t, work, old, newID)
	objs, err := ReadPack(bytes.NewReader(pack), r.Backend(), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Every object's id is what git says, so every delta resolved.
	for _, o := range objs {
		typ := strings.TrimSpace(git(t, work, "cat-file", "-t", o.Hash.String()))
		if typ != o.Type.String() {
			t.Errorf("%s: type %s, git says %s", o.Hash, o.Type, typ)
		}
	}
	if n := strings.Count(git(t, work, "rev-list", "--objects", newID, "^"+old), "\n"); len(objs) != n {
		t.Errorf("%d objects, rev-list has %d", len(objs), n)
	}
	// A thin pack needs its bases.
	if _, err := ReadPack(bytes.NewReader(pack), nil, 0); err == nil {
		t.Log("pack was not thin (no external base)")
	} else if !errors.Is(err, ErrBadPack) {
		t.Errorf("thin pack without bases: %v", err)
	}
	// Damage is caught.
	bad := bytes.Clone(pack)
	bad[len(bad)/2] ^= 0xff
	if _, err := ReadPack(bytes.NewReader(bad), r.Backend(), 0); err == nil {
		t.Error("damaged pack accepted")
	}
	if _, err := ReadPack(bytes.NewReader(pack[:len(pack)-5]), r.Backend(), 0); err == nil {
		t.Error("truncated pack accepted")
	}
	if _, err := ReadPack(bytes.NewReader(pack), r.Backend(), 100); err == nil {
		t.Error("pack over the limit accepted")
	}
}

func TestAdvanceMain(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	put(t, r, "apps/web/replicas", "1")
	work := workClone(t, s, DefaultRepo)
	old := strings.TrimSpace(git(t, work, "rev-parse", "HEAD"))
	c1 := commitFiles(t, work, "scale web", map[string]string{"apps/web/replicas": "3"})
	// A side branch merged with main as first parent: one revision for the
	// merge, none for the side commit.
	git(t, work, "checkout", "-q", "-b", "side", c1)
	commitFiles(t, work, "add api", map[string]string{"apps/api/replicas": "2"})
	git(t, work, "checkout", "-q", "main")
	c2 := commitFiles(t, work, "drop web", map[string]string{"apps/web/replicas": ""})
	git(t, work, "merge", "-q", "--no-ff", "-m", "Merge side", "side")
	head := strings.TrimSpace(git(t, work, "rev-parse", "HEAD"))

	objs, err := ReadPack(bytes.NewReader(packOf(t, work, old, head)), r.Backend(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ch := r.Changed()
	res, err := r.Advance(ctx, mainRef, hashOf(t, old), hashOf(t, head), objs, AdvanceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Error("watchers not woken")
	}
	if res.Revision != 4 || res.Commit.String() != head {
		t.Fatalf("result %+v, want revision 4 at %s", res, head)
	}
	for rev, want := range map[int64]string{2: c1, 3: c2, 4: head} {
		if h, _ := r.RevisionCommit(rev); h.String() != want {
			t.Errorf("revision %d is %s, want %s", rev, h, want)
		}
	}
	if got := get(t, r, "apps/api/replicas", 0); got != "2" {
		t.Errorf("apps/api/replicas = %q", got)
	}
	if _, err := r.Get(ctx, "apps/web/replicas", 0); !errors.Is(err, gitstate.ErrKeyNotFound) {
		t.Errorf("deleted key: %v", err)
	}
	if got := get(t, r, "apps/web/replicas", 2); got != "3" {
		t.Errorf("at revision 2: %q", got)
	}
	ri, err := r.Revision(4)
	if err != nil || ri.Author != "Pat Pusher" || len(ri.Changes) != 1 || ri.Changes[0].Key != "apps/api/replicas" {
		t.Errorf("revision 4: %+v %v", ri, err)
	}
	// The API writes on top of the pushed commits.
	if res := put(t, r, "apps/api/replicas", "5"); res.Revision != 5 {
		t.Errorf("put after advance at revision %d", res.Revision)
	}
	// Going back is refused, and so is a stale old value.
	_, err = r.Advance(ctx, mainRef, r.Head().Commit, hashOf(t, c1), nil, AdvanceOptions{})
	if !errors.Is(err, &gitstate.Error{Code: "non_fast_forward"}) {
		t.Errorf("backwards: %v", err)
	}
	_, err = r.Advance(ctx, mainRef, hashOf(t, old), hashOf(t, head), nil, AdvanceOptions{})
	if !errors.Is(err, &gitstate.Error{Code: "non_fast_forward"}) {
		t.Errorf("stale old: %v", err)
	}
}

func TestAdvanceRefusals(t *testing.T) {
	s := newTestStore(t, func(o *Options) { o.MaxValueSize = 64 })
	r := defaultRepo(t, s)
	ctx := context.Background()
	put(t, r, "k", "v")
	work := workClone(t, s, DefaultRepo)
	old := strings.TrimSpace(git(t, work, "rev-parse", "HEAD"))
	try := func(name string, mutate func() string, code string) {
		t.Helper()
		git(t, work, "reset", "-q", "--hard", old)
		head := mutate()
		objs, err := ReadPack(bytes.NewReader(packOf(t, work, old, head)), r.Backend(), 0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err = r.Advance(ctx, mainRef, hashOf(t, old), hashOf(t, head), objs, AdvanceOptions{})
		if !errors.Is(err, &gitstate.Error{Code: code}) {
			t.Errorf("%s: %v, want %s", name, err, code)
		}
		if r.Head().Commit.String() != old {
			t.Fatalf("%s: head moved", name)
		}
	}
	try("too large", func() string {
		return commitFiles(t, work, "big", map[string]string{"big": strings.Repeat("x", 65)})
	}, "value_too_large")
	try("symlink", func() string {
		if err := os.Symlink("k", filepath.Join(work, "link")); err != nil {
			t.Fatal(err)
		}
		git(t, work, "add", "link")
		git(t, work, "commit", "-q", "-m", "link")
		return strings.TrimSpace(git(t, work, "rev-parse", "HEAD"))
	}, "special_entry")
	try("bad key in a side commit", func() string {
		commitFiles(t, work, "backslash", map[string]string{`a\b`: "x"})
		return commitFiles(t, work, "fix", map[string]string{`a\b`: ""})
	}, "invalid_key")
	// A missing object: a commit whose blob is not sent.
	git(t, work, "reset", "-q", "--hard", old)
	head := commitFiles(t, work, "new", map[string]string{"n": "new value"})
	objs, err := ReadPack(bytes.NewReader(packOf(t, work, old, head)), r.Backend(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var partial []*Object
	for _, o := range objs {
		if o.Type != BlobObject {
			partial = append(partial, o)
		}
	}
	_, err = r.Advance(ctx, mainRef, hashOf(t, old), hashOf(t, head), partial, AdvanceOptions{})
	if !errors.Is(err, &gitstate.Error{Code: "invalid_object"}) {
		t.Errorf("missing blob: %v", err)
	}
}

func TestAdvanceFirstParent(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	put(t, r, "k", "v")
	work := workClone(t, s, DefaultRepo)
	base := strings.TrimSpace(git(t, work, "rev-parse", "HEAD"))
	// Main moves on the server...
	put(t, r, "server", "1")
	s.Flush()
	// ...while the client commits, then pulls with a merge: main's head is
	// the merge's second parent.
	commitFiles(t, work, "mine", map[string]string{"mine": "1"})
	git(t, work, "pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
	head := strings.TrimSpace(git(t, work, "rev-parse", "HEAD"))
	old := r.Head().Commit
	objs, err := ReadPack(bytes.NewReader(packOf(t, work, base, head)), r.Backend(), 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Advance(ctx, mainRef, old, hashOf(t, head), objs, AdvanceOptions{})
	if !errors.Is(err, &gitstate.Error{Code: "non_fast_forward"}) {
		t.Fatalf("merge with main as second parent: %v", err)
	}
	// Rebased, it goes in.
	git(t, work, "reset", "-q", "--hard", "origin/main")
	git(t, work, "fetch", "-q", "origin")
	git(t, work, "reset", "-q", "--hard", "origin/main")
	head = commitFiles(t, work, "mine", map[string]string{"mine": "1"})
	objs, err = ReadPack(bytes.NewReader(packOf(t, work, old.String(), head)), r.Backend(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := r.Advance(ctx, mainRef, old, hashOf(t, head), objs, AdvanceOptions{}); err != nil || res.Revision != 3 {
		t.Fatalf("rebased push: %+v %v", res, err)
	}
}

func TestAdvanceEmptyRepoAndBranch(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	r, err := s.CreateRepo(ctx, "fresh")
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(t.TempDir(), "w")
	git(t, filepath.Dir(work), "init", "-q", "-b", "main", work)
	git(t, work, "config", "user.name", "P")
	git(t, work, "config", "user.email", "p@x")
	commitFiles(t, work, "one", map[string]string{"a": "1"})
	head := commitFiles(t, work, "two", map[string]string{"b": "2"})
	objs, err := ReadPack(bytes.NewReader(packOf(t, work, "", head)), r.Backend(), 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Advance(ctx, mainRef, ZeroHash, hashOf(t, head), objs, AdvanceOptions{})
	if err != nil || res.Revision != 2 {
		t.Fatalf("push to an empty repo: %+v %v", res, err)
	}
	// A branch other than main moves without revisions.
	ref := BranchRef("txn/abcd")
	if _, err := r.Write(ctx, &Batch{Ref: ref, ResetTo: &res.Commit}); err != nil {
		t.Fatal(err)
	}
	head2 := commitFiles(t, work, "three", map[string]string{"c": "3"})
	objs, _ = ReadPack(bytes.NewReader(packOf(t, work, head, head2)), r.Backend(), 0)
	res2, err := r.Advance(ctx, ref, res.Commit, hashOf(t, head2), objs, AdvanceOptions{})
	if err != nil || res2.Revision != 0 || r.Backend().Ref(ref).String() != head2 {
		t.Fatalf("branch advance: %+v %v", res2, err)
	}
	if r.Head().Revision != 2 {
		t.Errorf("main moved to %d", r.Head().Revision)
	}
}
