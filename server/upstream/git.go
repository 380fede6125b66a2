package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/gitstate/gitstate/storage"
)

// gitRepo is what a repo's backend needs for an upstream: its bare
// repository on disk, current.
type gitRepo interface {
	Dir() string
	Flush() error
}

// runGit runs git with the upstream's credentials and returns its stdout,
// or an error holding the last lines of its stderr.
func runGit(ctx context.Context, env storage.GitEnv, stdin []byte, args ...string) ([]byte, error) {
	cmd := storage.GitCommand(ctx, env, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		return out, &gitError{err: err, stderr: lastLines(stderr.String(), 4)}
	}
	return out, nil
}

// gitError is a failed git command.
type gitError struct {
	err    error
	stderr string
}

func (e *gitError) Error() string {
	if e.stderr != "" {
		return e.stderr
	}
	return e.err.Error()
}

// exitCode returns a failed git command's exit status (-1 when it did not
// exit).
func exitCode(err error) int {
	var ge *gitError
	var ee *exec.ExitError
	if errors.As(err, &ge) && errors.As(ge.err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// remoteRefs returns the upstream's refs under prefix (refs/heads/...).
func remoteRefs(ctx context.Context, env storage.GitEnv, url string, patterns ...string) (map[string]storage.Hash, error) {
	out, err := runGit(ctx, env, nil, append([]string{"ls-remote", "--", url}, patterns...)...)
	if err != nil {
		return nil, err
	}
	refs := map[string]storage.Hash{}
	for line := range strings.Lines(string(out)) {
		h, name, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if id, hok := storage.ParseHash(h); ok && hok {
			refs[name] = id
		}
	}
	return refs, nil
}

// pushLine is one ref of git push --porcelain's report.
type pushLine struct {
	flag    byte // ' ' fast-forward, '+' forced, '-' deleted, '*' new, '!' rejected, '=' up to date
	dst     string
	summary string
}

// parsePorcelain reads git push --porcelain's report.
func parsePorcelain(out []byte) map[string]pushLine {
	lines := map[string]pushLine{}
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\n")
		if len(line) < 2 || line[1] != '\t' {
			continue
		}
		f := strings.SplitN(line[2:], "\t", 2)
		if len(f) != 2 {
			continue
		}
		_, dst, _ := strings.Cut(f[0], ":")
		lines[dst] = pushLine{flag: line[0], dst: dst, summary: f[1]}
	}
	return lines
}

// quarantine is a bare repository beside a repo's own, which borrows its
// objects (objects/info/alternates): a fetch from the upstream lands there,
// and what is new is read from it, so nothing enters the repo but through
// storage.Advance.
type quarantine struct {
	dir string
}

func newQuarantine(ctx context.Context, repoDir string) (*quarantine, error) {
	dir := filepath.Join(repoDir, "gitstate", "upstream.git")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if _, err := runGit(ctx, storage.GitEnv{}, nil, "init", "-q", "--bare", dir); err != nil {
		return nil, fmt.Errorf("make the quarantine: %w", err)
	}
	objs, err := filepath.Abs(filepath.Join(repoDir, "objects"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "objects", "info", "alternates"), []byte(objs+"\n"), 0o644); err != nil {
		return nil, err
	}
	return &quarantine{dir: dir}, nil
}

func (q *quarantine) remove() { os.RemoveAll(q.dir) }

// fetch fetches the upstream's branch and returns its head.
func (q *quarantine) fetch(ctx context.Context, env storage.GitEnv, url, branch string) (storage.Hash, error) {
	env.Dir = q.dir
	env.Config = append(env.Config, "gc.auto=0", "safe.directory=*")
	if _, err := runGit(ctx, env, nil, "fetch", "-q", "--no-tags", "--no-write-fetch-head", "--", url,
		"+refs/heads/"+branch+":refs/heads/upstream"); err != nil {
		return storage.ZeroHash, err
	}
	out, err := runGit(ctx, storage.GitEnv{Dir: q.dir}, nil, "rev-parse", "--verify", "refs/heads/upstream^{commit}")
	if err != nil {
		return storage.ZeroHash, err
	}
	h, ok := storage.ParseHash(strings.TrimSpace(string(out)))
	if !ok {
		return storage.ZeroHash, fmt.Errorf("upstream head %q", out)
	}
	return h, nil
}

// isAncestor reports whether a is an ancestor of b (or b itself).
func (q *quarantine) isAncestor(ctx context.Context, a, b storage.Hash) (bool, error) {
	_, err := runGit(ctx, storage.GitEnv{Dir: q.dir}, nil, "merge-base", "--is-ancestor", a.String(), b.String())
	if err == nil {
		return true, nil
	}
	if exitCode(err) == 1 {
		return false, nil
	}
	return false, err
}

// objects returns the objects reachable from theirs and not from ours
// (zero: everything), as a pack read into memory.
func (q *quarantine) objects(ctx context.Context, be storage.ObjectReader, ours, theirs storage.Hash) ([]*storage.Object, error) {
	in := theirs.String() + "\n"
	if !ours.IsZero() {
		in += "^" + ours.String() + "\n"
	}
	pack, err := runGit(ctx, storage.GitEnv{Dir: q.dir}, []byte(in), "pack-objects", "--stdout", "--revs", "--delta-base-offset", "-q")
	if err != nil {
		return nil, fmt.Errorf("pack the upstream's commits: %w", err)
	}
	return storage.ReadPack(bytes.NewReader(pack), be, 0)
}
