package storage

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGitSeesWhatStoreSays checks the repository with Git's own tools: a
// clone checks out what List says is at head, git log has the revisions'
// subjects, and git show reads older revisions as Get does.
func TestGitSeesWhatStoreSays(t *testing.T) {
	s := newTestStore(t)
	r := defaultRepo(t, s)
	ctx := context.Background()
	write := func(b *Batch) *Result {
		t.Helper()
		res, err := r.WriteOne(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	put(t, r, "apps/web/deployment.yaml", "replicas: 1\n")
	put(t, r, "dir with space/ключ.yaml", "unicode: да\n")
	write(&Batch{Message: "Add config\n\nA body that git log --format=%s must not show.", Ops: []Op{
		{Kind: OpPut, Key: "cfg/a", Value: []byte("a\n")},
		{Kind: OpPut, Key: "cfg/b", Value: []byte("b\n")},
		{Kind: OpPut, Key: "cfg/deep/c", Value: []byte("c\n")},
	}})
	write(&Batch{Ops: []Op{{Kind: OpMove, From: "apps/web/deployment.yaml", Key: "apps/web/deploy.yaml"}}})
	write(&Batch{Ops: []Op{
		{Kind: OpPut, Key: "bin/run.sh", Value: []byte("#!/bin/sh\necho hi\n"), Mode: ModeExecutable},
		{Kind: OpPut, Key: "links/current", Value: []byte("../apps/web/deploy.yaml"), Mode: ModeSymlink},
	}})
	write(&Batch{Ops: []Op{{Kind: OpDeletePrefix, Key: "cfg", MustExist: true}}})
	bad := put(t, r, "emoji/🚀 launch.json", `{"go": true}`).Revision
	if _, err := r.Revert(ctx, bad, false, Batch{}); err != nil {
		t.Fatal(err)
	}
	put(t, r, "apps/api/x", "api\n")
	put(t, r, "dir with space/ключ.yaml", "unicode: нет\n")
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	repo := s.repoDir(DefaultRepo)
	head := r.Head()

	// A clone's working tree is the listing at head.
	wt := filepath.Join(t.TempDir(), "clone")
	if out, err := gitCmd(".", "clone", "-q", repo, wt).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	if b := strings.TrimSpace(git(t, wt, "rev-parse", "--abbrev-ref", "HEAD")); b != MainBranch {
		t.Errorf("the clone is on %q", b)
	}
	list, err := r.List(ctx, ListOptions{Values: true, Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ListItem{}
	for _, it := range list.Items {
		want[it.Key] = it
	}
	got := map[string]bool{}
	err = filepath.WalkDir(wt, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		key, _ := filepath.Rel(wt, path)
		key = filepath.ToSlash(key)
		got[key] = true
		it, ok := want[key]
		if !ok {
			t.Errorf("the clone has %s, which List does not", key)
			return nil
		}
		var content []byte
		switch it.Mode {
		case ModeSymlink:
			target, err := os.Readlink(path)
			if err != nil {
				t.Errorf("%s: %v", key, err)
			}
			content = []byte(target)
		default:
			if content, err = os.ReadFile(path); err != nil {
				return err
			}
			st, err := os.Stat(path)
			if err != nil {
				return err
			}
			if exec := st.Mode()&0o100 != 0; exec != (it.Mode == ModeExecutable) {
				t.Errorf("%s: executable %v in the clone, mode %o in the store", key, exec, it.Mode)
			}
		}
		if string(content) != string(it.Value) {
			t.Errorf("%s: %q in the clone, %q in the store", key, content, it.Value)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("List has %s, the clone does not", k)
		}
	}

	// git log lists the subjects of the revisions, newest first.
	log, _, err := r.Log(ctx, LogOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, ri := range log {
		subjects = append(subjects, Subject(ri.Message))
	}
	if int64(len(subjects)) != head.Revision {
		t.Fatalf("Log has %d revisions, head is %d", len(subjects), head.Revision)
	}
	gitSubjects := strings.Split(strings.TrimSuffix(git(t, repo, "log", "--format=%s", MainBranch), "\n"), "\n")
	if !slices.Equal(gitSubjects, subjects) {
		t.Errorf("git log:\n%q\nLog:\n%q", gitSubjects, subjects)
	}
	if !slices.Contains(subjects, "Add config") {
		t.Errorf("no subject from the message with a body: %q", subjects)
	}

	// git show main~1:<key> is Get at head-1, for every key there.
	prev, err := r.List(ctx, ListOptions{Revision: head.Revision - 1, Values: true, Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(prev.Items) == 0 {
		t.Fatal("nothing at head-1")
	}
	for _, it := range prev.Items {
		v := get(t, r, it.Key, head.Revision-1)
		if g := git(t, repo, "show", MainBranch+"~1:"+it.Key); g != v {
			t.Errorf("git show main~1:%s = %q, Get at %d = %q", it.Key, g, head.Revision-1, v)
		}
	}
	if g := git(t, repo, "show", MainBranch+"~1:dir with space/ключ.yaml"); g != "unicode: да\n" {
		t.Errorf("the older unicode value: %q", g)
	}
}
