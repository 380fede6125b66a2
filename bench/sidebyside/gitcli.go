package sidebyside

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// gitSystem is plain Git driven the way a script or a CI job drives it: the
// git CLI on a repository with a work tree, one commit per change, with
// core.fsync=objects,reference and core.fsyncMethod=fsync so that a commit
// is durable when git exits. Commits to one work tree cannot run at once
// (git's index.lock): writers take turns, as flock(1) would make scripts.
type gitSystem struct {
	dir string

	mu    sync.Mutex
	repos map[string]*sync.Mutex // work tree locks by dataset
	cats  []*catFile             // by worker, made on first use

	cpu    atomic.Int64 // nanoseconds of CPU used by git commands
	maxRSS atomic.Int64 // the largest peak RSS of one git command, bytes
}

var (
	_ System      = (*gitSystem)(nil)
	_ meter       = (*gitSystem)(nil)
	_ batchGetter = (*gitSystem)(nil)
)

// gitConfig is the configuration of every repository. gc.auto=0 keeps
// git's background gc from stealing CPU from the other systems'
// measurements.
var gitConfig = [][2]string{
	{"user.name", "bench"},
	{"user.email", "bench@example.com"},
	{"core.fsync", "objects,reference"},
	{"core.fsyncMethod", "fsync"},
	{"gc.auto", "0"},
}

func newGit(dir string) (*gitSystem, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &gitSystem{dir: dir, repos: map[string]*sync.Mutex{}}, nil
}

func (g *gitSystem) Name() string                    { return "git" }
func (g *gitSystem) Start(ctx context.Context) error { return nil }
func (g *gitSystem) repo(name string) string         { return filepath.Join(g.dir, name) }

func (g *gitSystem) lock(name string) *sync.Mutex {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.repos[name]
	if m == nil {
		m = new(sync.Mutex)
		g.repos[name] = m
	}
	return m
}

// git runs git in repo with stdin and stdout, and accounts for its CPU and
// memory. A git command that has started is never killed (a killed
// `git commit` leaves its index.lock behind): ctx is checked before.
func (g *gitSystem) git(ctx context.Context, repo string, stdin io.Reader, stdout io.Writer, args ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	g.account(cmd.ProcessState)
	if err != nil {
		return fmt.Errorf("git %v: %v: %s", args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

func (g *gitSystem) account(ps *os.ProcessState) {
	if ps == nil {
		return
	}
	g.cpu.Add(int64(ps.UserTime() + ps.SystemTime()))
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		rss := ru.Maxrss << 10
		for {
			old := g.maxRSS.Load()
			if rss <= old || g.maxRSS.CompareAndSwap(old, rss) {
				break
			}
		}
	}
}

func (g *gitSystem) CPU() (time.Duration, error) { return time.Duration(g.cpu.Load()), nil }
func (g *gitSystem) PeakRSS() (int64, error)     { return g.maxRSS.Load(), nil }

// Load makes the repository with git fast-import (the loading is not what
// is measured, nor counted in CPU and RSS) and checks out its work tree.
func (g *gitSystem) Load(ctx context.Context, ds Dataset) error {
	cpu, rss := g.cpu.Load(), g.maxRSS.Load()
	defer func() { g.cpu.Store(cpu); g.maxRSS.Store(rss) }()
	repo := g.repo(ds.Name)
	if out, err := exec.CommandContext(ctx, "git", "init", "-q", "-b", "main", repo).CombinedOutput(); err != nil {
		return fmt.Errorf("git init: %v: %s", err, out)
	}
	for _, kv := range gitConfig {
		if err := g.git(ctx, repo, nil, nil, "config", kv[0], kv[1]); err != nil {
			return err
		}
	}
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 1<<20)
		t := time.Now().Unix() - int64(ds.Commits)
		for c := range ds.Commits {
			msg := fmt.Sprintf("load %d\n", c)
			fmt.Fprintf(bw, "commit refs/heads/main\ncommitter bench <bench@example.com> %d +0000\ndata %d\n%s", t+int64(c), len(msg), msg)
			lo, hi := ds.commitKeys(c)
			for i := lo; i < hi; i++ {
				v := yamlValue("res", i, 0, 500)
				fmt.Fprintf(bw, "M 100644 inline %s\ndata %d\n%s\n", datasetKey(i), len(v), v)
			}
		}
		pw.CloseWithError(bw.Flush())
	}()
	if err := g.git(ctx, repo, pr, nil, "fast-import", "--quiet"); err != nil {
		pr.CloseWithError(err)
		return err
	}
	return g.git(ctx, repo, nil, nil, "reset", "-q", "--hard", "main")
}

// Get runs `git show main:<key>`, as a script reading a value would.
func (g *gitSystem) Get(ctx context.Context, _ int, key string) error {
	return g.git(ctx, g.repo("default"), nil, io.Discard, "show", "main:"+key)
}

// catFile is a long-lived `git cat-file --batch`.
type catFile struct {
	cmd *exec.Cmd
	in  *bufio.Writer
	out *bufio.Reader
}

// GetBatch reads key through the worker's own `git cat-file --batch`
// process: what a long-running program reading Git would do.
func (g *gitSystem) GetBatch(ctx context.Context, w int, key string) error {
	c, err := g.catFile(w)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.in, "main:%s\n", key)
	if err := c.in.Flush(); err != nil {
		return err
	}
	hdr, err := c.out.ReadSlice('\n')
	if err != nil {
		return err
	}
	f := bytes.Fields(hdr)
	if len(f) != 3 {
		return fmt.Errorf("cat-file main:%s: %s", key, bytes.TrimSpace(hdr))
	}
	n, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return err
	}
	_, err = c.out.Discard(n + 1)
	return err
}

func (g *gitSystem) catFile(w int) (*catFile, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.cats) <= w {
		cmd := exec.Command("git", "-C", g.repo("default"), "cat-file", "--batch")
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		g.cats = append(g.cats, &catFile{cmd: cmd, in: bufio.NewWriter(in), out: bufio.NewReaderSize(out, 64<<10)})
	}
	return g.cats[w], nil
}

// Put writes the file, then `git add` and `git commit`.
func (g *gitSystem) Put(ctx context.Context, _ int, key string, value []byte) (int64, error) {
	repo := g.repo("default")
	m := g.lock("default")
	m.Lock()
	defer m.Unlock()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ctx = context.WithoutCancel(ctx) // a change once begun is committed
	if err := writeFile(filepath.Join(repo, key), value); err != nil {
		return 0, err
	}
	if err := g.git(ctx, repo, nil, nil, "add", "--", key); err != nil {
		return 0, err
	}
	return 0, g.git(ctx, repo, nil, nil, "commit", "-q", "-m", "put "+key)
}

func writeFile(path string, value []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, value, 0o644)
}

// List runs `git ls-tree -r main -- <prefix>`: names, modes and blob ids,
// no values (a script would then cat each file).
func (g *gitSystem) List(ctx context.Context, ds Dataset, prefix string, values bool) (int, error) {
	if values {
		return 0, errNotApplicable
	}
	var out bytes.Buffer
	if err := g.git(ctx, g.repo(ds.Name), nil, &out, "ls-tree", "-r", "main", "--", prefix); err != nil {
		return 0, err
	}
	return bytes.Count(out.Bytes(), []byte{'\n'}), nil
}

// Txn writes the files, `git add`s them, previews with
// `git diff --cached --name-status` and commits.
func (g *gitSystem) Txn(ctx context.Context, ds Dataset, keys []string, values [][]byte) (TxnTiming, error) {
	repo := g.repo(ds.Name)
	m := g.lock(ds.Name)
	m.Lock()
	defer m.Unlock()
	if err := ctx.Err(); err != nil {
		return TxnTiming{}, err
	}
	ctx = context.WithoutCancel(ctx) // a change once begun is committed
	t0 := time.Now()
	for i, k := range keys {
		if err := writeFile(filepath.Join(repo, k), values[i]); err != nil {
			return TxnTiming{}, err
		}
	}
	if err := g.git(ctx, repo, nil, nil, append([]string{"add", "--"}, keys...)...); err != nil {
		return TxnTiming{}, err
	}
	t1 := time.Now()
	var diff bytes.Buffer
	if err := g.git(ctx, repo, nil, &diff, "diff", "--cached", "--name-status"); err != nil {
		return TxnTiming{}, err
	}
	if n := bytes.Count(diff.Bytes(), []byte{'\n'}); n != len(keys) {
		return TxnTiming{}, fmt.Errorf("git diff --cached: %d changes, want %d", n, len(keys))
	}
	if err := g.git(ctx, repo, nil, nil, "commit", "-q", "-m", "bench: 10 keys"); err != nil {
		return TxnTiming{}, err
	}
	t2 := time.Now()
	return TxnTiming{Total: t2.Sub(t0), PreviewCommit: t2.Sub(t1)}, nil
}

// StopBatch ends the cat-file processes, accounting for their CPU.
func (g *gitSystem) StopBatch() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.cats {
		c.cmd.Process.Kill()
		c.cmd.Wait()
		g.account(c.cmd.ProcessState)
	}
	g.cats = nil
}

func (g *gitSystem) Close() error {
	g.StopBatch()
	return nil
}
