package storage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gitstate/gitstate"
)

// Importing a repository
//
// Store.Import creates a repo from an existing Git repository with its
// history. The git CLI fetches the chosen branch (by default the one the
// source's HEAD names) into a new bare repository beside the repos, as
// refs/heads/main, with its objects as the source packs them: every commit
// keeps its id. The directory is then renamed into place and opened like
// any repo, which indexes main's first-parent line (one revision per
// commit) with progress. Only that branch is imported: not the source's
// other branches, nor its tags.
//
// What is not a plain file is imported untouched and reported (see
// ImportReport): executable files keep their mode, symbolic links and
// submodules stay in the trees (a symbolic link reads as its target, a
// submodule as nothing), empty trees stay, and files whose paths are not
// valid keys stay in Git and are listed in the report, though the API can
// neither address nor list them (Repo.List leaves them out).
//
// Before the repo is placed, Options.CheckImport (the server's) examines
// the fetched head: it refuses what would break the repo (a policy that
// does not parse, which would fail every direct write) and warns of what
// would fail later (a secret's file that is not encrypted).

// ImportOptions says what to import.
type ImportOptions struct {
	// Source is a Git URL (http, https, ssh, git, file) or a local path.
	// A password in an http(s) URL is taken out and sent as a header.
	Source string
	// Branch is the branch whose first-parent line becomes main (default:
	// the branch the source's HEAD names).
	Branch string
	// Header is an extra HTTP header for the source, such as credentials.
	// It is never logged nor stored.
	Header string
}

// ImportState is where an import is.
type ImportState string

// The states of an import.
const (
	ImportRunning ImportState = "running"
	ImportDone    ImportState = "done"
	ImportFailed  ImportState = "failed"
)

// ImportStatus is an import's progress and, once it ends, its outcome.
type ImportStatus struct {
	Repo   string      `json:"repo"`
	Source string      `json:"source"`
	Branch string      `json:"branch,omitempty"`
	State  ImportState `json:"state"`
	// Phase is what the import is doing ("connecting", "receiving
	// objects", "resolving deltas", "indexing revisions", "checking
	// entries"); Done and Total count its progress (Total 0: unknown).
	Phase    string        `json:"phase"`
	Done     int64         `json:"done"`
	Total    int64         `json:"total"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished,omitzero"`
	Error    string        `json:"error,omitempty"`
	Report   *ImportReport `json:"report,omitempty"`
}

// ImportReport describes what an import brought in, at main's head. The
// path lists hold at most MaxReportPaths paths each; the counts are
// complete.
type ImportReport struct {
	Revisions int64  `json:"revisions"`
	Commit    string `json:"commit"`
	// Keys counts the regular files (executable or not) at head.
	Keys int64 `json:"keys"`
	// Objects counts the objects fetched; Seconds is the import's time.
	Objects int64   `json:"objects"`
	Seconds float64 `json:"seconds"`

	Executables      []string `json:"executables"`
	ExecutableCount  int      `json:"executable_count"`
	Symlinks         []string `json:"symlinks"`
	SymlinkCount     int      `json:"symlink_count"`
	Submodules       []string `json:"submodules"`
	SubmoduleCount   int      `json:"submodule_count"`
	EmptyTrees       []string `json:"empty_trees"`
	EmptyTreeCount   int      `json:"empty_tree_count"`
	InvalidKeys      []string `json:"invalid_keys"`
	InvalidKeyCount  int      `json:"invalid_key_count"`
	InvalidKeyErrors []string `json:"invalid_key_errors"`

	// Warnings are what Options.CheckImport found that will not work as
	// it is (a secret's file that is not encrypted...).
	Warnings     []ImportWarning `json:"warnings"`
	WarningCount int             `json:"warning_count"`
}

// MaxReportPaths bounds each path list of an ImportReport.
const MaxReportPaths = 100

// Import is an import in progress or done. Its methods are safe for
// concurrent use.
type Import struct {
	mu   sync.Mutex // guards st
	st   ImportStatus
	done chan struct{}
}

// Status returns a copy of the import's status.
func (im *Import) Status() ImportStatus {
	im.mu.Lock()
	defer im.mu.Unlock()
	st := im.st
	return st
}

// Done is closed when the import ends.
func (im *Import) Done() <-chan struct{} { return im.done }

// Wait waits for the import to end (or ctx) and returns its status, with
// an error when it failed.
func (im *Import) Wait(ctx context.Context) (ImportStatus, error) {
	select {
	case <-im.done:
	case <-ctx.Done():
		return im.Status(), ctx.Err()
	}
	st := im.Status()
	if st.State == ImportFailed {
		return st, gitstate.Errorf(gitstate.KindInvalid, "import_failed", "import of %s failed: %s", st.Repo, st.Error)
	}
	return st, nil
}

func (im *Import) progress(phase string, done, total int64) {
	im.mu.Lock()
	im.st.Phase, im.st.Done, im.st.Total = phase, done, total
	im.mu.Unlock()
}

func invalidSource(src, msg string) error {
	return gitstate.Errorf(gitstate.KindInvalid, "invalid_source", "source %q %s", RedactURL(src), msg)
}

// importReportFile is where a repo keeps the report of its import.
const importReportFile = "gitstate/import.json"

// Import starts creating repo name from the Git repository opts.Source and
// returns at once; the Import tracks it (ImportStatus finds it too). The
// name is taken until the import ends: a concurrent CreateRepo or Import of
// it fails with repo_exists, and the repo appears only once it is indexed.
// A failed import leaves nothing behind. The import runs until done or
// the store closes, whatever becomes of ctx.
func (s *Store) Import(ctx context.Context, name string, opts ImportOptions) (*Import, error) {
	if err := ValidateRepoName(name); err != nil {
		return nil, err
	}
	clean, header := SplitCredentials(opts.Source)
	if err := ValidateSource(clean); err != nil {
		return nil, err
	}
	if err := CheckSourceQuery(clean); err != nil {
		return nil, err
	}
	if opts.Header == "" {
		opts.Header = header
	}
	opts.Source = clean
	if opts.Branch != "" {
		if err := ValidateBranch(opts.Branch); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, gitstate.Errorf(gitstate.KindUnavailable, "unavailable", "the store is closing")
	}
	if _, ok := s.repos[name]; ok {
		s.mu.Unlock()
		return nil, gitstate.Errorf(gitstate.KindConflict, "repo_exists", "repo %q exists", name)
	}
	s.repos[name] = nil
	im := &Import{done: make(chan struct{}), st: ImportStatus{
		Repo: name, Source: RedactURL(clean), Branch: opts.Branch, State: ImportRunning, Phase: "connecting", Started: time.Now().UTC(),
	}}
	s.imports[name] = im
	s.wg.Add(1)
	s.mu.Unlock()
	abandon := func(err error) (*Import, error) {
		s.forget(name)
		s.mu.Lock()
		delete(s.imports, name)
		s.mu.Unlock()
		s.wg.Done()
		return nil, err
	}
	if _, err := os.Stat(s.repoDir(name)); err == nil {
		return abandon(gitstate.Errorf(gitstate.KindConflict, "repo_exists", "repo %q exists on disk", name))
	}
	tmp, err := s.beginImport(name, im)
	if err != nil {
		return abandon(err)
	}
	go func() {
		defer s.wg.Done()
		report, err := s.runImport(s.bg, name, tmp, im, opts)
		if err != nil && s.bg.Err() != nil {
			// The store's stop cut it short (git killed, a context
			// canceled...), and runImport removed what it had made:
			// say so as the clean-up after a crash does.
			err = errors.New(errImportInterrupted)
		}
		im.mu.Lock()
		im.st.Finished = time.Now().UTC()
		if err != nil {
			im.st.State, im.st.Error = ImportFailed, importError(err)
		} else {
			im.st.State, im.st.Report, im.st.Phase = ImportDone, report, "done"
			report.Seconds = im.st.Finished.Sub(im.st.Started).Seconds()
		}
		st := im.st
		im.mu.Unlock()
		if err != nil {
			s.log.Error("import failed", "repo", name, "source", RedactURL(clean), "err", importError(err))
			s.keepFailedImport(st)
		} else {
			s.log.Info("imported repo", "repo", name, "source", RedactURL(clean), "branch", st.Branch,
				"revisions", report.Revisions, "keys", report.Keys, "objects", report.Objects,
				"symlinks", report.SymlinkCount, "submodules", report.SubmoduleCount,
				"invalid_keys", report.InvalidKeyCount, "empty_trees", report.EmptyTreeCount,
				"warnings", report.WarningCount,
				"took", time.Duration(report.Seconds*float64(time.Second)).Round(time.Millisecond))
			for _, w := range report.Warnings {
				s.log.Warn("imported repo: "+w.Message, "repo", name, "code", w.Code, "path", w.Path)
			}
			if b, jerr := json.MarshalIndent(st, "", "  "); jerr == nil {
				if werr := writeFileSync(filepath.Join(s.repoDir(name), importReportFile), b, 0o644); werr != nil {
					s.log.Warn("cannot keep the import report", "repo", name, "err", werr)
				}
			}
		}
		close(im.done)
	}()
	return im, nil
}

// importError is the message of a failed import, for people.
func importError(err error) string {
	var ge *gitstate.Error
	if errors.As(err, &ge) {
		return ge.Message
	}
	return err.Error()
}

// ImportStatus returns the status of repo name's import: the running or
// finished import, or the report kept in the repo since. It fails with
// not_found when the repo was not imported.
func (s *Store) ImportStatus(name string) (ImportStatus, error) {
	s.mu.RLock()
	im, ok := s.imports[name]
	s.mu.RUnlock()
	if ok {
		return im.Status(), nil
	}
	for _, path := range []string{filepath.Join(s.repoDir(name), importReportFile), s.failedImportFile(name)} {
		b, err := os.ReadFile(path)
		if err == nil {
			var st ImportStatus
			if err := json.Unmarshal(b, &st); err == nil {
				return st, nil
			}
		}
	}
	return ImportStatus{}, gitstate.Errorf(gitstate.KindNotFound, "import_not_found", "repo %q was not imported", name)
}

// ValidateBranch reports whether b can name a branch of a source or an
// upstream (a short name, such as main or release/1.2).
func ValidateBranch(b string) error {
	if b == "" || strings.HasPrefix(b, "-") || strings.HasPrefix(b, "refs/") || strings.ContainsAny(b, " ~^:?*[\\\x00\n") ||
		strings.Contains(b, "..") || strings.HasSuffix(b, ".lock") || strings.HasSuffix(b, "/") || strings.HasPrefix(b, "/") {
		return gitstate.Errorf(gitstate.KindInvalid, "invalid_branch", "%q is not a branch name", b)
	}
	return nil
}

// runImport fetches, places and indexes the repo, and reports on it.
// beginImport makes the repository an import fetches into, aside
// (.import-<name>-<random>), holding the import's status, running: from the
// moment Import returns, a crash leaves something the next start tells
// from no import (see removeRepoLeftovers and finishImport).
func (s *Store) beginImport(name string, im *Import) (string, error) {
	s.forgetFailedImport(name)
	var suffix [4]byte
	rand.Read(suffix[:])
	tmp := filepath.Join(s.dir, "repos", ".import-"+name+"-"+hex.EncodeToString(suffix[:]))
	if err := initBareRepo(tmp); err != nil {
		return "", err
	}
	b, err := json.Marshal(im.Status())
	if err == nil {
		err = os.MkdirAll(filepath.Dir(filepath.Join(tmp, importReportFile)), 0o755)
	}
	if err == nil {
		err = WriteFileAtomic(filepath.Join(tmp, importReportFile), b, 0o644)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return tmp, nil
}

func (s *Store) runImport(ctx context.Context, name, tmp string, im *Import, opts ImportOptions) (*ImportReport, error) {
	placed := false
	defer func() {
		if !placed {
			os.RemoveAll(tmp)
			s.forget(name)
		}
	}()
	// What the index may hold of an earlier repo of that name (an import
	// that failed while indexing) goes.
	if err := s.ix.dropRepo(name); err != nil {
		return nil, err
	}
	env := GitEnv{Dir: tmp, Header: opts.Header}
	branch := opts.Branch
	if branch == "" {
		b, err := remoteHead(ctx, env, opts.Source)
		if err != nil {
			return nil, err
		}
		branch = b
		im.mu.Lock()
		im.st.Branch = b
		im.mu.Unlock()
	}
	s.log.Info("importing", "repo", name, "source", RedactURL(opts.Source), "branch", branch)
	objects, err := fetchBranch(ctx, env, opts.Source, branch, func(phase string, done, total int64) {
		im.progress(phase, done, total)
	}, s.log.With("repo", name))
	if err != nil {
		return nil, err
	}
	var warnings []ImportWarning
	if s.opts.CheckImport != nil {
		im.progress("checking the head", 0, 0)
		head, err := readImportHead(ctx, env)
		if err != nil {
			return nil, err
		}
		warnings, err = s.opts.CheckImport(ctx, head)
		head.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := syncTree(tmp); err != nil {
		return nil, fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := keepPacks(filepath.Join(tmp, "objects", "pack")); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, s.repoDir(name)); err != nil {
		return nil, err
	}
	if err := syncDir(filepath.Join(s.dir, "repos")); err != nil {
		return nil, err
	}
	placed = true
	r, err := s.openRepoWith(ctx, name, func(done, total int64) { im.progress("indexing revisions", done, total) })
	if err != nil {
		os.RemoveAll(s.repoDir(name))
		syncDir(filepath.Join(s.dir, "repos"))
		s.forget(name)
		return nil, err
	}
	im.progress("checking entries", 0, 0)
	report, err := r.inventory()
	if err != nil {
		return nil, err
	}
	report.Objects = objects
	report.WarningCount = len(warnings)
	report.Warnings = append(report.Warnings, warnings[:min(len(warnings), MaxReportPaths)]...)
	return report, nil
}

// remoteHead returns the branch the source's HEAD names.
func remoteHead(ctx context.Context, env GitEnv, src string) (string, error) {
	cmd := GitCommand(ctx, env, "ls-remote", "--symref", src, "HEAD")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", sourceError(src, "cannot read the source's HEAD", err, stderr.String())
	}
	for line := range strings.Lines(string(out)) {
		if ref, ok := strings.CutPrefix(line, "ref: refs/heads/"); ok {
			b, _, _ := strings.Cut(ref, "\t")
			return strings.TrimSpace(b), nil
		}
	}
	return "", gitstate.Errorf(gitstate.KindInvalid, "invalid_source", "source %q has no HEAD branch (empty, or HEAD detached): name the branch to import", RedactURL(src))
}

// sourceError turns a failed git command against a source into an error
// that says why, without credentials (git quotes the URL it fails on).
func sourceError(src, what string, err error, stderr string) error {
	msg := RedactText(lastLines(stderr, 3), src)
	if msg == "" {
		msg = err.Error()
	}
	return gitstate.Errorf(gitstate.KindInvalid, "source_unreachable", "%s %s: %s", what, RedactURL(src), msg)
}

// lastLines returns the last n non-empty lines of s (progress lines
// dropped), joined with "; ".
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		l = strings.TrimSpace(l)
		if l == "" || progressLine.MatchString(l) {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

var progressLine = regexp.MustCompile(`^(?:remote: )?([A-Za-z][A-Za-z ]*?):\s+(?:\d+% \((\d+)/(\d+)\)|(\d+))`)

// fetchBranch fetches branch of src as refs/heads/main, reporting git's
// progress, and returns the number of objects received.
func fetchBranch(ctx context.Context, env GitEnv, src, branch string, progress func(phase string, done, total int64), log interface {
	Info(string, ...any)
}) (int64, error) {
	env.Config = append(env.Config,
		"fetch.unpackLimit=1", // always keep the pack: one file, no loose objects
		"core.fsync=all",
		"transfer.fsckObjects=false",
		"gc.auto=0",
	)
	cmd := GitCommand(ctx, env, "fetch", "--progress", "--no-tags", "--no-write-fetch-head", "--no-auto-gc",
		src, "+refs/heads/"+branch+":refs/heads/"+MainBranch)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	var tail bytes.Buffer
	var objects int64
	lastLog := time.Time{}
	lastPhase := ""
	br := bufio.NewReader(stderr)
	for {
		line, err := readProgressLine(br)
		if len(line) > 0 {
			if tail.Len() < 64<<10 {
				tail.WriteString(line)
				tail.WriteByte('\n')
			}
			if m := progressLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				phase := strings.ToLower(m[1])
				var done, total int64
				if m[2] != "" {
					done, _ = strconv.ParseInt(m[2], 10, 64)
					total, _ = strconv.ParseInt(m[3], 10, 64)
				} else {
					done, _ = strconv.ParseInt(m[4], 10, 64)
				}
				if phase == "receiving objects" && total > 0 {
					objects = total
				}
				progress(phase, done, total)
				if phase != lastPhase || time.Since(lastLog) > 2*time.Second {
					log.Info("import progress", "phase", phase, "done", done, "total", total)
					lastLog, lastPhase = time.Now(), phase
				}
			}
		}
		if err != nil {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		s := tail.String()
		if strings.Contains(s, "couldn't find remote ref") {
			return 0, gitstate.Errorf(gitstate.KindInvalid, "invalid_branch", "source %q has no branch %q", RedactURL(src), branch)
		}
		return 0, sourceError(src, "cannot fetch", err, s)
	}
	return objects, nil
}

// readProgressLine reads up to a '\r' or '\n'.
func readProgressLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		c, err := br.ReadByte()
		if err != nil {
			return b.String(), err
		}
		if c == '\r' || c == '\n' {
			return b.String(), nil
		}
		if b.Len() < 4096 {
			b.WriteByte(c)
		}
	}
}

// syncTree makes every file and directory under dir durable: git itself
// does not sync everything a fetch writes.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

// keepPacks marks the packs in dir with .keep files, Git's sign that a
// pack is not to be repacked: an imported pack holds deltas, which the
// compaction of small packs would resolve and store whole.
func keepPacks(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if base, ok := strings.CutSuffix(e.Name(), ".pack"); ok && strings.HasPrefix(base, "pack-") {
			if err := writeFileSync(filepath.Join(dir, base+".keep"), []byte("imported by gitstate\n"), 0o444); err != nil {
				return err
			}
		}
	}
	return syncDir(dir)
}

// inventory reports on main's head: its keys and what is not a plain file.
func (r *Repo) inventory() (*ImportReport, error) {
	head := r.Head()
	rep := &ImportReport{Revisions: head.Revision, Executables: []string{}, Symlinks: []string{}, Submodules: []string{},
		EmptyTrees: []string{}, InvalidKeys: []string{}, InvalidKeyErrors: []string{}, Warnings: []ImportWarning{}}
	if !head.Commit.IsZero() {
		rep.Commit = head.Commit.String()
	}
	add := func(list *[]string, n *int, p string) {
		*n++
		if len(*list) < MaxReportPaths {
			*list = append(*list, p)
		}
	}
	var walk func(h Hash, dir string) error
	walk = func(h Hash, dir string) error {
		if h.IsZero() {
			return nil
		}
		t, err := r.readTree(h)
		if err != nil {
			return err
		}
		for _, e := range t.Entries {
			p := dir + e.Name
			switch e.Mode {
			case ModeDir:
				if e.Hash == EmptyTreeHash {
					add(&rep.EmptyTrees, &rep.EmptyTreeCount, p)
					continue
				}
				if err := walk(e.Hash, p+"/"); err != nil {
					return err
				}
				continue
			case ModeSymlink:
				add(&rep.Symlinks, &rep.SymlinkCount, p)
			case ModeSubmodule:
				add(&rep.Submodules, &rep.SubmoduleCount, p)
			case ModeExecutable:
				add(&rep.Executables, &rep.ExecutableCount, p)
				rep.Keys++
			default:
				rep.Keys++
			}
			if err := ValidateKey(p); err != nil {
				if len(rep.InvalidKeys) < MaxReportPaths {
					rep.InvalidKeyErrors = append(rep.InvalidKeyErrors, importError(err))
				}
				add(&rep.InvalidKeys, &rep.InvalidKeyCount, p)
			}
		}
		return nil
	}
	return rep, walk(head.Tree, "")
}

// errImportInterrupted is the error of an import a crash cut short before
// its repo was in place, or a stop before it was done.
const errImportInterrupted = "interrupted: the server stopped before the import finished; import the repo again"

// removeRepoLeftovers removes what imports and repo creations interrupted
// by a crash left in the repos directory: repos being made aside, never
// renamed into place. An import's status becomes failed (interrupted) and
// is kept, unless a repo of that name has been made since.
func (s *Store) removeRepoLeftovers(reposDir string) {
	kept, _ := filepath.Glob(filepath.Join(s.dir, failedImportsDir, tempPrefix+"*"))
	for _, f := range kept {
		os.Remove(f) // a failed import's status before its rename
	}
	ents, err := os.ReadDir(reposDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		switch {
		case strings.HasPrefix(e.Name(), ".import-"):
			dir := filepath.Join(reposDir, e.Name())
			s.log.Warn("removing an interrupted import", "dir", e.Name())
			var st ImportStatus
			b, rerr := os.ReadFile(filepath.Join(dir, importReportFile))
			if rerr != nil || json.Unmarshal(b, &st) != nil || ValidateRepoName(st.Repo) != nil {
				os.RemoveAll(dir)
				continue // from before statuses were kept, or cut short before it was
			}
			if _, err := os.Stat(s.repoDir(st.Repo)); err == nil {
				os.RemoveAll(dir)
				continue
			}
			st.State, st.Error, st.Finished = ImportFailed, errImportInterrupted, time.Now().UTC()
			// The status is on disk before its only other copy goes.
			if s.keepFailedImport(st) == nil {
				os.RemoveAll(dir)
			}
		case strings.HasPrefix(e.Name(), tempPrefix):
			s.log.Warn("removing a repo whose creation was interrupted", "dir", e.Name())
			os.RemoveAll(filepath.Join(reposDir, e.Name()))
		}
	}
}

// failedImportsDir holds the statuses of failed imports, one file per
// repo name, until the name is imported or created again.
const failedImportsDir = "imports"

func (s *Store) failedImportFile(name string) string {
	return filepath.Join(s.dir, failedImportsDir, name+".failed.json")
}

// keepFailedImport writes a failed import's status durably, for
// ImportStatus to give after restarts.
func (s *Store) keepFailedImport(st ImportStatus) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = os.MkdirAll(filepath.Join(s.dir, failedImportsDir), 0o700)
	}
	if err == nil {
		err = WriteFileAtomic(s.failedImportFile(st.Repo), b, 0o644)
	}
	if err != nil {
		s.log.Warn("cannot keep a failed import's status", "repo", st.Repo, "err", err)
	}
	return err
}

// forgetFailedImport removes the kept status of a failed import of name:
// the name is being used again.
func (s *Store) forgetFailedImport(name string) {
	if err := os.Remove(s.failedImportFile(name)); err == nil {
		syncDir(filepath.Join(s.dir, failedImportsDir))
	}
}

// finishImport completes the status of an import a crash or a stop
// interrupted once its repo was in place (fetched, synced, renamed) but
// before its report was written: the repo is whole and has just been
// indexed; what is left is the report.
func (s *Store) finishImport(r *Repo) {
	path := filepath.Join(s.repoDir(r.Name()), importReportFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var st ImportStatus
	if json.Unmarshal(b, &st) != nil || st.State != ImportRunning {
		return
	}
	report, err := r.inventory()
	if err != nil {
		s.log.Warn("cannot complete an interrupted import's report", "repo", r.Name(), "err", err)
		return
	}
	st.State, st.Phase, st.Done, st.Total, st.Report, st.Finished = ImportDone, "done", 0, 0, report, time.Now().UTC()
	if b, err = json.MarshalIndent(st, "", "  "); err == nil {
		err = writeFileSync(path, b, 0o644)
	}
	if err != nil {
		s.log.Warn("cannot keep the import report", "repo", r.Name(), "err", err)
		return
	}
	s.log.Info("completed the report of an interrupted import", "repo", r.Name(), "revisions", report.Revisions, "keys", report.Keys)
}
