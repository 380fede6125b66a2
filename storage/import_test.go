package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitstate/gitstate"
)

// oddSource makes a source repository whose HEAD is the branch trunk and
// whose head holds an executable, a symbolic link, a submodule, an empty
// tree and a path that is not a valid key, besides plain files. It returns
// its path and trunk's first-parent line, oldest first.
func oddSource(t *testing.T) (string, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	git(t, filepath.Dir(dir), "init", "-q", "-b", "trunk", dir)
	git(t, dir, "config", "user.name", "Old Timer")
	git(t, dir, "config", "user.email", "old@example.com")
	var line []string
	line = append(line, commitFiles(t, dir, "first", map[string]string{"apps/web/replicas": "1", "README": "hello"}))
	// A side branch merged with trunk first.
	git(t, dir, "checkout", "-q", "-b", "feature")
	commitFiles(t, dir, "feature", map[string]string{"apps/api/replicas": "2"})
	git(t, dir, "checkout", "-q", "trunk")
	line = append(line, commitFiles(t, dir, "second", map[string]string{"apps/web/replicas": "2"}))
	git(t, dir, "merge", "-q", "--no-ff", "-m", "Merge feature", "feature")
	line = append(line, strings.TrimSpace(git(t, dir, "rev-parse", "HEAD")))
	// The odd entries, through the index.
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("apps/web/replicas", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "add", "run.sh", "link")
	blob := strings.TrimSpace(git(t, dir, "hash-object", "-w", "README"))
	git(t, dir, "update-index", "--add", "--cacheinfo", "100644,"+blob+`,bad\key`)
	git(t, dir, "update-index", "--add", "--cacheinfo", "160000,"+line[0]+",vendor/lib")
	git(t, dir, "commit", "-q", "-m", "odd entries")
	// An empty tree, which only plumbing makes.
	tree := strings.TrimSpace(git(t, dir, "write-tree"))
	ls := git(t, dir, "ls-tree", tree)
	mk := exec.Command("git", "-C", dir, "mktree")
	mk.Stdin = strings.NewReader(ls + "040000 tree " + EmptyTreeHash.String() + "\tempty\n")
	out, err := mk.Output()
	if err != nil {
		t.Fatal(err)
	}
	head := strings.TrimSpace(git(t, dir, "commit-tree", strings.TrimSpace(string(out)), "-p", "HEAD", "-m", "empty dir"))
	git(t, dir, "update-ref", "refs/heads/trunk", head)
	line = append(line, strings.TrimSpace(git(t, dir, "rev-parse", "HEAD~1")), head)
	// A branch and a tag that are not imported.
	git(t, dir, "branch", "other", line[0])
	git(t, dir, "tag", "v1", line[1])
	return dir, line
}

func TestImportOddEntries(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	src, line := oddSource(t)
	im, err := s.Import(ctx, "odd", ImportOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	st, err := im.Wait(ctx)
	if err != nil {
		t.Fatalf("import: %v (%+v)", err, st)
	}
	if st.Branch != "trunk" || st.State != ImportDone || st.Report == nil {
		t.Fatalf("status %+v", st)
	}
	r, err := s.Repo("odd")
	if err != nil {
		t.Fatal(err)
	}
	// Revisions follow trunk's first-parent line, with the same commits.
	if r.Head().Revision != int64(len(line)) {
		t.Fatalf("head at revision %d, want %d", r.Head().Revision, len(line))
	}
	for i, want := range line {
		if h, _ := r.RevisionCommit(int64(i + 1)); h.String() != want {
			t.Errorf("revision %d is %s, want %s", i+1, h, want)
		}
	}
	rep := st.Report
	check := func(what string, got []string, n int, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) || n != len(want) {
			t.Errorf("%s: %v (%d), want %v", what, got, n, want)
		}
	}
	check("executables", rep.Executables, rep.ExecutableCount, "run.sh")
	check("symlinks", rep.Symlinks, rep.SymlinkCount, "link")
	check("submodules", rep.Submodules, rep.SubmoduleCount, "vendor/lib")
	check("empty trees", rep.EmptyTrees, rep.EmptyTreeCount, "empty")
	check("invalid keys", rep.InvalidKeys, rep.InvalidKeyCount, `bad\key`)
	if rep.Keys != 5 || rep.Revisions != int64(len(line)) || rep.Commit != line[len(line)-1] {
		t.Errorf("report %+v", rep)
	}
	// What the API sees: plain keys as usual, the link as its target.
	if got := get(t, r, "apps/api/replicas", 0); got != "2" {
		t.Errorf("apps/api/replicas = %q", got)
	}
	if got := get(t, r, "link", 0); got != "apps/web/replicas" {
		t.Errorf("link = %q", got)
	}
	// A path that is not a valid key is in the report, and in no listing:
	// the API could not read it.
	for _, rev := range []int64{0, int64(len(line) - 1)} {
		l, err := r.List(ctx, ListOptions{Revision: rev})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, it := range l.Items {
			keys = append(keys, it.Key)
		}
		if slices.Contains(keys, `bad\key`) || !slices.Contains(keys, "README") {
			t.Errorf("list at revision %d: %q", rev, keys)
		}
	}
	// Writes keep what they do not touch.
	res := put(t, r, "run.sh", "#!/bin/sh\necho bye\n")
	v, _ := r.Get(ctx, "run.sh", 0)
	if v.Mode != ModeExecutable || res.Revision != int64(len(line)+1) {
		t.Errorf("after a put: mode %o, revision %d", v.Mode, res.Revision)
	}
	s.Flush()
	dir := s.repoDir("odd")
	if out := git(t, dir, "ls-tree", "main", "empty", "vendor/lib", "bad\\key"); strings.Count(out, "\n") != 3 {
		t.Errorf("untouched entries lost:\n%s", out)
	}
	if refs := git(t, dir, "for-each-ref", "--format=%(refname)"); strings.TrimSpace(refs) != "refs/heads/main" {
		t.Errorf("refs: %q", refs)
	}
	// The status outlives the import, and a restart.
	st2, err := s.ImportStatus("odd")
	if err != nil || st2.State != ImportDone {
		t.Errorf("status after: %+v %v", st2, err)
	}
}

func TestImportBranchAndRefusals(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	src, line := oddSource(t)
	im, err := s.Import(ctx, "other", ImportOptions{Source: "file://" + src, Branch: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := im.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	r, _ := s.Repo("other")
	if r.Head().Revision != 1 || r.Head().Commit.String() != line[0] {
		t.Errorf("branch other: %+v", r.Head())
	}
	for name, c := range map[string]struct {
		repo, src, branch, code string
	}{
		"exists":        {"other", src, "", "repo_exists"},
		"default":       {DefaultRepo, src, "", "repo_exists"},
		"bad name":      {"Bad", src, "", "invalid_repo_name"},
		"ext transport": {"x1", "ext::sh -c touch% /tmp/pwned", "", "invalid_source"},
		"option":        {"x2", "--upload-pack=touch /tmp/pwned", "", "invalid_source"},
		"scheme":        {"x3", "gopher://example.com/x", "", "invalid_source"},
		"bad branch":    {"x4", src, "a..b", "invalid_branch"},
	} {
		_, err := s.Import(ctx, c.repo, ImportOptions{Source: c.src, Branch: c.branch})
		if !errors.Is(err, &gitstate.Error{Code: c.code}) {
			t.Errorf("%s: %v, want %s", name, err, c.code)
		}
	}
	// Failures found while importing leave nothing behind.
	for name, c := range map[string]struct{ src, branch, want string }{
		"no branch": {src, "nope", "no branch"},
		"no source": {filepath.Join(t.TempDir(), "missing"), "", "cannot read"},
	} {
		im, err := s.Import(ctx, "fails", ImportOptions{Source: c.src, Branch: c.branch})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		st, err := im.Wait(ctx)
		if err == nil || st.State != ImportFailed || !strings.Contains(st.Error, c.want) {
			t.Errorf("%s: %+v %v", name, st, err)
		}
		if _, err := s.Repo("fails"); err == nil {
			t.Errorf("%s: repo exists after a failed import", name)
		}
		if ents, _ := filepath.Glob(filepath.Join(s.dir, "repos", ".import-*")); len(ents) > 0 {
			t.Errorf("%s: left %v", name, ents)
		}
	}
}

// TestImportCheck checks Options.CheckImport: it sees the fetched head
// before the repo is placed; its error fails the import, leaving nothing
// behind, and its warnings are in the report.
func TestImportCheck(t *testing.T) {
	var seen []string
	check := func(ctx context.Context, head *ImportHead) ([]ImportWarning, error) {
		seen = slices.Clone(head.Paths())
		if p, err := head.Read(".gitstate/policy.yaml"); err == nil && strings.Contains(string(p), "[[[") {
			return nil, gitstate.Errorf(gitstate.KindUnprocessable, "invalid_policy", "the policy does not parse")
		} else if err != nil && !errors.Is(err, gitstate.ErrKeyNotFound) {
			return nil, err
		}
		var ws []ImportWarning
		for _, p := range head.Paths() {
			if b, err := head.Read(p); err != nil {
				return nil, err
			} else if strings.HasSuffix(p, ".sops.json") && !strings.Contains(string(b), `"sops"`) {
				ws = append(ws, ImportWarning{Code: "not_encrypted", Path: p, Message: p + " is not encrypted"})
			}
		}
		return ws, nil
	}
	s := newTestStore(t, func(o *Options) { o.CheckImport = check })
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	git(t, filepath.Dir(src), "init", "-q", "-b", "main", src)
	git(t, src, "config", "user.name", "T")
	git(t, src, "config", "user.email", "t@example.com")
	commitFiles(t, src, "first", map[string]string{
		".gitstate/policy.yaml": "protected: [[[\n",
		"apps/db.sops.json":     `{"password": "hunter2"}`,
		"apps/web/replicas":     "3",
	})
	im, err := s.Import(ctx, "broken", ImportOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	st, err := im.Wait(ctx)
	if err == nil || st.State != ImportFailed || st.Error != "the policy does not parse" {
		t.Fatalf("import of a broken policy: %+v %v", st, err)
	}
	if want := []string{".gitstate/policy.yaml", "apps/db.sops.json", "apps/web/replicas"}; !slices.Equal(seen, want) {
		t.Errorf("the check saw %q, want %q", seen, want)
	}
	if _, err := s.Repo("broken"); err == nil {
		t.Error("repo exists after a refused import")
	}
	if ents, _ := filepath.Glob(filepath.Join(s.dir, "repos", "*")); len(ents) != 1 {
		t.Errorf("repos after a refused import: %v", ents)
	}
	// Fixed: the import goes through, with the warning.
	commitFiles(t, src, "fix the policy", map[string]string{".gitstate/policy.yaml": "protected: [{prefix: prod/}]\n"})
	im, err = s.Import(ctx, "fixed", ImportOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if st, err = im.Wait(ctx); err != nil {
		t.Fatalf("import: %v %+v", err, st)
	}
	want := []ImportWarning{{Code: "not_encrypted", Path: "apps/db.sops.json", Message: "apps/db.sops.json is not encrypted"}}
	if rep := st.Report; !slices.Equal(rep.Warnings, want) || rep.WarningCount != 1 {
		t.Errorf("warnings %+v (%d), want %+v", rep.Warnings, rep.WarningCount, want)
	}
	// The report kept in the repo has them too.
	if st2, err := s.ImportStatus("fixed"); err != nil || len(st2.Report.Warnings) != 1 {
		t.Errorf("kept status: %+v %v", st2, err)
	}
}

func TestImportGenerated(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 200
	}
	src := filepath.Join(t.TempDir(), "gen.git")
	genRepo(t, src, n, n)
	s := newTestStore(t)
	ctx := context.Background()
	im, err := s.Import(ctx, "gen", ImportOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	var phases []string
	for {
		st := im.Status()
		if len(phases) == 0 || phases[len(phases)-1] != st.Phase {
			phases = append(phases, st.Phase)
		}
		if st.State != ImportRunning {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	st, err := im.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := s.Repo("gen")
	if r.Head().Revision != int64(n) || st.Report.Keys != int64(n) {
		t.Errorf("imported %d revisions, %d keys; want %d", r.Head().Revision, st.Report.Keys, n)
	}
	t.Logf("phases seen: %v", phases)
	want := strings.TrimSpace(git(t, src, "show", "main:"+genPath(n/2)))
	if got := strings.TrimSpace(get(t, r, genPath(n/2), 0)); got != want {
		t.Errorf("value %q, git has %q", got, want)
	}
}

var bigRepo struct {
	once sync.Once
	dir  string
}

// BenchmarkImport10k imports a repository of 10,000 files and 10,000
// commits generated with git fast-import: fetch, indexing of every
// revision and the report. It reports the seconds per import.
func BenchmarkImport10k(b *testing.B) {
	bigRepo.once.Do(func() {
		dir, err := os.MkdirTemp("", "gitstate-bench-")
		if err != nil {
			b.Fatal(err)
		}
		bigRepo.dir = filepath.Join(dir, "big.git")
		start := time.Now()
		genRepo(b, bigRepo.dir, 10000, 10000)
		b.Logf("generated 10,000 files x 10,000 commits in %v", time.Since(start).Round(time.Millisecond))
	})
	ctx := context.Background()
	total := 0.0
	i := 0
	for ; b.Loop(); i++ {
		s, err := Open(ctx, b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		im, err := s.Import(ctx, fmt.Sprintf("big%d", i), ImportOptions{Source: bigRepo.dir})
		if err != nil {
			b.Fatal(err)
		}
		st, err := im.Wait(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if st.Report.Revisions != 10000 {
			b.Fatalf("revisions %d", st.Report.Revisions)
		}
		total += st.Report.Seconds
		s.Close()
	}
	b.ReportMetric(total/float64(i), "import-s")
}

// TestCompactionLeavesImportedPack checks that the compaction of small
// packs leaves an imported pack (marked .keep, holding deltas) alone and
// that reads go on through the mapped packs.
func TestCompactionLeavesImportedPack(t *testing.T) {
	s := newTestStore(t, func(o *Options) { o.FS.MaxPacks = 2 })
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "gen.git")
	genRepo(t, src, 100, 100)
	im, err := s.Import(ctx, "gen", ImportOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := im.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	kept, _ := filepath.Glob(filepath.Join(s.repoDir("gen"), "objects", "pack", "*.keep"))
	if len(kept) != 1 {
		t.Fatalf("keep files: %v", kept)
	}
	r, _ := s.Repo("gen")
	for i := range 8 {
		put(t, r, fmt.Sprintf("new/%d", i), strings.Repeat("v", i+1))
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	packs, _ := filepath.Glob(filepath.Join(s.repoDir("gen"), "objects", "pack", "*.pack"))
	if len(packs) > 4 {
		t.Errorf("%d packs after compaction", len(packs))
	}
	if _, err := os.Stat(strings.TrimSuffix(kept[0], ".keep") + ".pack"); err != nil {
		t.Errorf("imported pack gone: %v", err)
	}
	for i := range 8 {
		if got := get(t, r, fmt.Sprintf("new/%d", i), 0); got != strings.Repeat("v", i+1) {
			t.Errorf("new/%d = %q", i, got)
		}
	}
	if got := get(t, r, genPath(5), 3); got == "" {
		t.Error("old revision unreadable")
	}
}

// An import a crash cut short is told from no import at the next open:
// failed (interrupted) when its repo was not yet in place, done with its
// report when it was.
func TestImportInterrupted(t *testing.T) {
	ctx := context.Background()
	src, _ := oddSource(t)
	dir := t.TempDir()
	s := openTestStore(t, dir)
	im, err := s.Import(ctx, "placed", ImportOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	want, err := im.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	repos := filepath.Join(dir, "repos")
	running := func(repo string) []byte {
		b, err := json.Marshal(ImportStatus{Repo: repo, Source: src, Branch: "trunk", State: ImportRunning, Phase: "receiving objects", Started: want.Started})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Placed, then killed before its report: the status is still the
	// running one it took along.
	if err := os.WriteFile(filepath.Join(repos, "placed.git", importReportFile), running("placed"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Killed while fetching.
	aside := filepath.Join(repos, ".import-fetching-0badf00d")
	if err := writeBareRepo(aside); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(aside, "gitstate"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(aside, importReportFile), running("fetching"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Killed before its status was written.
	early := filepath.Join(repos, ".import-early-12345678")
	if err := writeBareRepo(early); err != nil {
		t.Fatal(err)
	}

	s = openTestStore(t, dir)
	for _, d := range []string{aside, early} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there: %v", d, err)
		}
	}
	if got, wantRepos := s.Repos(), []string{"default", "placed"}; !slices.Equal(got, wantRepos) {
		t.Errorf("repos %v, want %v", got, wantRepos)
	}
	st, err := s.ImportStatus("placed")
	switch {
	case err != nil:
		t.Errorf("placed: %v", err)
	case st.State != ImportDone || st.Report == nil:
		t.Errorf("placed: %+v, want done with a report", st)
	case st.Report.Keys != want.Report.Keys || st.Report.Revisions != want.Report.Revisions || st.Report.SymlinkCount != want.Report.SymlinkCount:
		t.Errorf("placed: report %+v, want %+v", *st.Report, *want.Report)
	}
	st, err = s.ImportStatus("fetching")
	switch {
	case err != nil:
		t.Errorf("fetching: %v", err)
	case st.State != ImportFailed || !strings.Contains(st.Error, "interrupted") || st.Source != src || st.Finished.IsZero():
		t.Errorf("fetching: %+v, want failed (interrupted), from %s", st, src)
	}
	var ge *gitstate.Error
	if _, err := s.ImportStatus("early"); !errors.As(err, &ge) || ge.Code != "import_not_found" {
		t.Errorf("early: %v, want not found", err)
	}
	// The statuses outlive another restart (one that a kill could cut
	// short just after the leftovers went).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir)
	defer s.Close()
	if st, err := s.ImportStatus("fetching"); err != nil || st.State != ImportFailed || !strings.Contains(st.Error, "interrupted") {
		t.Errorf("fetching, after another restart: %+v, %v", st, err)
	}
	if st, err := s.ImportStatus("placed"); err != nil || st.State != ImportDone {
		t.Errorf("placed, after another restart: %+v, %v", st, err)
	}
	// The name is free again.
	im, err = s.Import(ctx, "fetching", ImportOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := im.Wait(ctx); err != nil || st.State != ImportDone {
		t.Errorf("import again: %+v, %v", st, err)
	}
	if _, err := os.Stat(s.failedImportFile("fetching")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed status outlived a new import: %v", err)
	}
}

// TestImportHeadRead checks the head's reader: every regular file's bytes
// as they are (an empty file, one without a final newline, binary content
// with newlines and NULs, hundreds of files through the one batch process),
// ErrKeyNotFound for a path that is not a regular file of the head, and a
// reader that starts again after Close.
func TestImportHeadRead(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	git(t, filepath.Dir(src), "init", "-q", "-b", "main", src)
	git(t, src, "config", "user.name", "T")
	git(t, src, "config", "user.email", "t@example.com")
	files := map[string]string{
		"empty":            "",
		"no-newline":       "x",
		"bin/blob":         "a\n\x00b\n\n",
		"deep/a/b/c/d.txt": strings.Repeat("line\n", 10000),
	}
	for i := range 300 {
		files[fmt.Sprintf("many/%03d.yaml", i)] = fmt.Sprintf("n: %d\n", i)
	}
	for p, c := range files {
		full := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("no-newline", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	git(t, src, "add", "-A")
	git(t, src, "commit", "-q", "-m", "files")

	head, err := readImportHead(context.Background(), GitEnv{Dir: src})
	if err != nil {
		t.Fatal(err)
	}
	defer head.Close()
	if len(head.Paths()) != len(files) {
		t.Errorf("%d paths, want %d (the symbolic link is not a regular file)", len(head.Paths()), len(files))
	}
	for _, p := range head.Paths() {
		b, err := head.Read(p)
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		if string(b) != files[p] {
			t.Fatalf("read %s: %q, want %q", p, b, files[p])
		}
	}
	for _, p := range []string{"link", "many", "nope"} {
		if _, err := head.Read(p); !errors.Is(err, gitstate.ErrKeyNotFound) {
			t.Errorf("read %s: %v, want ErrKeyNotFound", p, err)
		}
	}
	if err := head.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if b, err := head.Read("bin/blob"); err != nil || string(b) != files["bin/blob"] {
		t.Errorf("read after Close: %q, %v", b, err)
	}
}

// TestImportSubmodulesAreNotKeys checks that a submodule of an imported
// repo is no key anywhere a client sees keys: reads at head and at older
// revisions, listings (with values too), revisions' changes and diffs. A
// value it replaces reads as deleted, a value that replaces it as put.
func TestImportSubmodulesAreNotKeys(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	git(t, filepath.Dir(src), "init", "-q", "-b", "main", src)
	git(t, src, "config", "user.name", "T")
	git(t, src, "config", "user.email", "t@example.com")
	blob := func(content string) string {
		f := filepath.Join(t.TempDir(), "blob")
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(git(t, src, "hash-object", "-w", f))
	}
	set := func(mode, hash, path string) {
		git(t, src, "update-index", "--add", "--cacheinfo", mode+","+hash+","+path)
	}
	commit := func(msg string) string {
		git(t, src, "commit", "-q", "--allow-empty", "-m", msg)
		return strings.TrimSpace(git(t, src, "rev-parse", "HEAD"))
	}
	set("100644", blob("1"), "a")
	set("100644", blob("x"), "x")
	c1 := commit("files")
	// A gitlink to a commit of this very repository (its object is here),
	// and one to a commit that is not.
	set("160000", c1, "vendor/lib")
	set("160000", "1234567890abcdef1234567890abcdef12345678", "sub/other")
	c2 := commit("submodules")
	git(t, src, "rm", "-q", "--cached", "x")
	set("160000", c1, "x")
	set("160000", c2, "vendor/lib")
	commit("x becomes a submodule, vendor/lib moves")
	git(t, src, "rm", "-q", "--cached", "vendor/lib", "sub/other")
	set("100644", blob("lib"), "vendor/lib")
	commit("vendor/lib becomes a value, sub/other goes")

	s := newTestStore(t)
	im, err := s.Import(ctx, "subs", ImportOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := im.Wait(ctx); err != nil || st.Report.SubmoduleCount != 1 {
		t.Fatalf("import: %+v, %v", st, err)
	}
	r, err := s.Repo("subs")
	if err != nil {
		t.Fatal(err)
	}
	if r.Head().Revision != 4 {
		t.Fatalf("head at revision %d", r.Head().Revision)
	}

	// Reads: a submodule is absent, at head (the index) and before.
	for _, rd := range []struct {
		key string
		rev int64
	}{{"x", 0}, {"x", 3}, {"vendor/lib", 2}, {"vendor/lib", 3}, {"sub/other", 2}} {
		v, err := r.Get(ctx, rd.key, rd.rev)
		if !errors.Is(err, gitstate.ErrKeyNotFound) {
			t.Errorf("get %s@%d: %+v, %v; want key_not_found", rd.key, rd.rev, v, err)
		}
		if v, err := r.Lookup(ctx, rd.key, rd.rev); v != nil || err != nil {
			t.Errorf("lookup %s@%d: %+v, %v", rd.key, rd.rev, v, err)
		}
	}
	if got := get(t, r, "vendor/lib", 0); got != "lib" {
		t.Errorf("vendor/lib = %q", got)
	}
	// Listings, with and without values.
	for _, tc := range []struct {
		rev  int64
		want []string
	}{{0, []string{"a", "vendor/lib"}}, {4, []string{"a", "vendor/lib"}}, {3, []string{"a"}}, {2, []string{"a", "x"}}} {
		for _, values := range []bool{false, true} {
			l, err := r.List(ctx, ListOptions{Revision: tc.rev, Values: values})
			if err != nil {
				t.Fatalf("list at %d (values %v): %v", tc.rev, values, err)
			}
			var keys []string
			for _, it := range l.Items {
				keys = append(keys, it.Key)
			}
			if !slices.Equal(keys, tc.want) {
				t.Errorf("list at %d (values %v): %q, want %q", tc.rev, values, keys, tc.want)
			}
		}
	}
	// Revisions' changes (what watchers and the history see).
	wantChanges := map[int64]string{1: "put a, put x", 2: "", 3: "delete x", 4: "put vendor/lib"}
	for rev, want := range wantChanges {
		ri, err := r.Revision(rev)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range ri.Changes {
			got = append(got, c.Op+" "+c.Key)
		}
		if strings.Join(got, ", ") != want {
			t.Errorf("revision %d changes: %q, want %q", rev, got, want)
		}
	}
	// Diffs.
	commitOf := func(rev int64) Hash {
		h, err := r.RevisionCommit(rev)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, tc := range []struct {
		from, to int64
		want     string
	}{{0, 4, "added a, added vendor/lib"}, {1, 3, "deleted x"}, {3, 1, "added x"}, {2, 3, "deleted x"}, {3, 4, "added vendor/lib"}, {4, 3, "deleted vendor/lib"}} {
		changes, err := r.Diff(ctx, commitOf(tc.from), commitOf(tc.to), "")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range changes {
			got = append(got, c.Op.String()+" "+c.Key)
		}
		if strings.Join(got, ", ") != tc.want {
			t.Errorf("diff %d..%d: %q, want %q", tc.from, tc.to, got, tc.want)
		}
	}
	// Writes: there is no x to delete or move, and a put that requires x
	// absent finds it absent and replaces the submodule with a value.
	for _, op := range []Op{{Kind: OpDelete, Key: "x", MustExist: true}, {Kind: OpMove, From: "x", Key: "y"}} {
		if _, err := r.WriteOne(ctx, &Batch{Ops: []Op{op}}); !errors.Is(err, gitstate.ErrKeyNotFound) {
			t.Errorf("op %d on x: %v, want key_not_found", op.Kind, err)
		}
	}
	if res, err := r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpDelete, Key: "x"}}}); err != nil || res.Changed {
		t.Errorf("delete x: %+v, %v; want no change", res, err)
	}
	res, err := r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpPut, Key: "x", Value: []byte("back")}},
		Preconditions: []Precondition{{Key: "x", Absent: true}}})
	if err != nil {
		t.Fatalf("put x if absent: %v", err)
	}
	if v, err := r.Get(ctx, "x", 0); err != nil || string(v.Data) != "back" || v.Mode != ModeFile || res.Revision != 5 {
		t.Errorf("x after the put: %+v, %v at revision %d", v, err, res.Revision)
	}
	if ri, err := r.Revision(5); err != nil || len(ri.Changes) != 1 || ri.Changes[0].Op != "put" {
		t.Errorf("revision 5: %+v, %v", ri, err)
	}
}

// TestImportStopped checks an import the store's stop cuts short: it
// fails as interrupted (as after a crash), leaves nothing behind, and says
// so after the restart too.
func TestImportStopped(t *testing.T) {
	// A source that answers nothing until the store stops (git's helper,
	// which the stop does not kill, would hold the connection for
	// GitCommand's WaitDelay).
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	stopping := s.bg.Done()
	hit := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case hit <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-stopping:
		}
	}))
	defer srv.Close()
	im, err := s.Import(ctx, "stopped", ImportOptions{Source: srv.URL + "/src.git"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-hit:
	case <-time.After(30 * time.Second):
		t.Fatal("the import never reached the source")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(when string, st ImportStatus) {
		t.Helper()
		if st.State != ImportFailed || !strings.HasPrefix(st.Error, "interrupted") || st.Finished.IsZero() {
			t.Errorf("%s: %+v, want failed, interrupted", when, st)
		}
	}
	check("at the stop", im.Status())
	left, _ := filepath.Glob(filepath.Join(dir, "repos", "*"))
	if len(left) != 1 || filepath.Base(left[0]) != DefaultRepo+".git" {
		t.Errorf("left in repos: %v", left)
	}

	s = openTestStore(t, dir)
	defer s.Close()
	st, err := s.ImportStatus("stopped")
	if err != nil {
		t.Fatal(err)
	}
	check("after the restart", st)
	if got := s.Repos(); !slices.Equal(got, []string{DefaultRepo}) {
		t.Errorf("repos %v", got)
	}
}

// TestRevertKeepsUnaddressablePaths checks that a rollback or a revert
// across an import leaves the paths that are not keys (a submodule, a path
// that is not a valid key) as they are, and changes the keys as asked.
func TestRevertKeepsUnaddressablePaths(t *testing.T) {
	ctx := context.Background()
	src, _ := oddSource(t)
	for _, tc := range []struct {
		name string
		undo func(r *Repo) (*Result, error)
		// The keys at head after it.
		want []string
	}{
		{"rollback to revision 1", func(r *Repo) (*Result, error) { return r.Rollback(ctx, 1, "", nil, Batch{}) },
			[]string{"README", "apps/web/replicas"}},
		{"rollback to revision 3", func(r *Repo) (*Result, error) { return r.Rollback(ctx, 3, "", nil, Batch{}) },
			[]string{"README", "apps/api/replicas", "apps/web/replicas"}},
		// Revision 4 added the odd entries.
		{"revert", func(r *Repo) (*Result, error) { return r.Revert(ctx, 4, false, Batch{}) },
			[]string{"README", "apps/api/replicas", "apps/web/replicas", "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t)
			im, err := s.Import(ctx, "odd", ImportOptions{Source: src})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := im.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			r, err := s.Repo("odd")
			if err != nil {
				t.Fatal(err)
			}
			ri, err := r.Revision(4)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range ri.Changes {
				if c.Key == `bad\key` || c.Key == "vendor/lib" {
					t.Errorf("revision 4 changes %s, which is not a key", c.Key)
				}
			}
			put(t, r, "x", "1")
			if _, err := tc.undo(r); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			l, err := r.List(ctx, ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, it := range l.Items {
				keys = append(keys, it.Key)
			}
			if !slices.Equal(keys, tc.want) {
				t.Errorf("keys %q, want %q", keys, tc.want)
			}
			s.Flush()
			if out := git(t, s.repoDir("odd"), "ls-tree", "main", "vendor/lib", `bad\key`); strings.Count(out, "\n") != 2 {
				t.Errorf("paths that are not keys lost:\n%s", out)
			}
		})
	}
}
