package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/gitstate/gitstate"
)

// DefaultRepo is the repo that exists from the first start.
const DefaultRepo = "default"

// Store is every repo under one data directory, with their shared index.
//
// On disk:
//
//	<dir>/repos/<name>.git   a bare Git repository per repo
//	<dir>/repos/<name>.git/gitstate/journal   its write-ahead journal
//	<dir>/index              the index (pebble); deletable
//
// A Store is safe for concurrent use.
type Store struct {
	dir  string
	opts Options
	ix   *Index
	// caches are what all repos share.
	caches sharedCaches
	mx     *Metrics
	log    *slog.Logger

	mu    sync.RWMutex // guards repos, imports and closed
	repos map[string]*Repo
	// imports are the imports started since Open, by repo name.
	imports map[string]*Import
	closed  bool

	// lock is the data directory's, held until Close.
	lock *dirLock

	// bg is the context of the store's own goroutines (imports), canceled
	// by Close, which then waits for them on wg.
	bg       context.Context
	bgCancel context.CancelFunc
	wg       sync.WaitGroup
}

// sharedCaches are the caches a store's repos share, each under one bound
// for all of them, so that memory does not grow with the number of repos.
type sharedCaches struct {
	trees *treeCaches
	hot   *hotStore
}

// Open opens the store in dir, creating it (with the default repo) on first
// use. Each repo's journal is replayed and its index caught up with Git
// before Open returns.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	opts.setDefaults()
	trees, err := newTreeCaches(opts.TreeCacheEntries, opts.TreeCacheBytes)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, opts: opts, log: opts.Logger, repos: map[string]*Repo{}, imports: map[string]*Import{},
		caches: sharedCaches{trees: trees, hot: newHotStore(opts.HotCacheBytes)}}
	s.bg, s.bgCancel = context.WithCancel(context.Background())
	s.mx = newMetrics(opts.Registerer)
	s.opts.FS.syncHist = s.mx.syncDuration
	s.opts.FS.flushHist = s.mx.flushDuration
	s.opts.FS.mergeHist = s.mx.mergeDuration
	if err := PrivateDir(filepath.Join(dir, "repos"), s.log); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	opened := false
	defer func() {
		// On failure: unless s.Close (on the paths that call it) has
		// released it already.
		if !opened && s.lock != nil {
			s.lock.unlock()
			s.lock = nil
		}
	}()
	if err := PrivateDir(filepath.Join(dir, "index"), s.log); err != nil {
		return nil, err
	}
	ix, err := OpenIndex(filepath.Join(dir, "index"), opts.IndexCacheBytes, opts.Logger)
	if err != nil && errors.Is(err, unix.EWOULDBLOCK) {
		// Something else holds the index's own lock: it is in use, not
		// damaged.
		return nil, fmt.Errorf("open index: %w", err)
	}
	if err != nil {
		// The index is only a cache: set a broken one aside and rebuild.
		aside := filepath.Join(dir, fmt.Sprintf("index.broken-%d", time.Now().Unix()))
		s.log.Error("cannot open the index; rebuilding it from Git", "err", err, "moved_to", aside)
		if rerr := os.Rename(filepath.Join(dir, "index"), aside); rerr != nil {
			return nil, err
		}
		if ix, err = OpenIndex(filepath.Join(dir, "index"), opts.IndexCacheBytes, opts.Logger); err != nil {
			return nil, err
		}
	}
	s.ix = ix
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gitstate_index_disk_bytes",
			Help: "Disk space used by the index.",
		}, func() float64 { return float64(ix.db.Metrics().DiskSpaceUsage()) }))
		opts.Registerer.MustRegister(newCacheCollector(s))
	}
	s.removeRepoLeftovers(filepath.Join(dir, "repos"))
	ents, err := os.ReadDir(filepath.Join(dir, "repos"))
	if err != nil {
		ix.Close()
		return nil, err
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".git")
		if !ok || !e.IsDir() || ValidateRepoName(name) != nil {
			continue
		}
		r, err := s.openRepo(ctx, name)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("open repo %s: %w", name, err)
		}
		s.finishImport(r)
	}
	if _, ok := s.repos[DefaultRepo]; !ok {
		if _, err := s.CreateRepo(ctx, DefaultRepo); err != nil && !errors.Is(err, gitstate.ErrRepoExists) {
			s.Close()
			return nil, err
		}
	}
	opened = true
	return s, nil
}

// PrivateDir makes dir (and its parents) mode 0700, or makes an existing
// one that group or other users may enter 0700, with a warning to log: the
// data directory, the repos and the index hold every value in plain, and
// no token's limits matter to a local user who can read the files. It
// tightens rather than only warns, as etcd does. Git reads the files as the
// same user (git fsck), and a clone goes through the server, not the files.
func PrivateDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("%s is open to other users (mode %04o) and cannot be made private: %w", dir, perm, err)
		}
		log.Warn("a directory holding values in plain was open to other users; made it private (0700)", "dir", dir, "was", fmt.Sprintf("%04o", perm))
	}
	return nil
}

func (s *Store) repoDir(name string) string {
	return filepath.Join(s.dir, "repos", name+".git")
}

func (s *Store) openRepo(ctx context.Context, name string) (*Repo, error) {
	return s.openRepoWith(ctx, name, nil)
}

// openRepoWith opens a repo, calling progress while it indexes revisions.
func (s *Store) openRepoWith(ctx context.Context, name string, progress func(done, total int64)) (*Repo, error) {
	fo := s.opts.FS
	fo.Logger = s.log.With("repo", name)
	be, err := OpenFS(s.repoDir(name), fo)
	if err != nil {
		return nil, err
	}
	r, err := newRepo(name, be, s.ix, &s.caches, &s.opts, s.mx)
	if err != nil {
		be.Close()
		return nil, err
	}
	r.replayProgress = progress
	err = r.syncIndex(ctx)
	r.replayProgress = nil
	if err != nil {
		be.Close()
		return nil, fmt.Errorf("index: %w", err)
	}
	r.start()
	s.mu.Lock()
	s.repos[name] = r
	s.mu.Unlock()
	return r, nil
}

// Repo returns the repo called name, or an error matching
// gitstate.ErrRepoNotFound.
func (s *Store) Repo(name string) (*Repo, error) {
	s.mu.RLock()
	r, ok := s.repos[name]
	s.mu.RUnlock()
	if !ok || r == nil { // nil: CreateRepo or Import holds the name while it makes the repo
		return nil, gitstate.Errorf(gitstate.KindNotFound, "repo_not_found", "repo %q does not exist", name)
	}
	return r, nil
}

// CreateRepo creates an empty repo, or fails with gitstate.ErrRepoExists.
func (s *Store) CreateRepo(ctx context.Context, name string) (*Repo, error) {
	if err := ValidateRepoName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if _, ok := s.repos[name]; ok {
		s.mu.Unlock()
		return nil, gitstate.Errorf(gitstate.KindConflict, "repo_exists", "repo %q exists", name)
	}
	// Hold a place so that a concurrent create of the same name fails.
	s.repos[name] = nil
	s.mu.Unlock()
	dir := s.repoDir(name)
	if _, err := os.Stat(dir); err == nil {
		s.forget(name)
		return nil, gitstate.Errorf(gitstate.KindConflict, "repo_exists", "repo %q exists on disk", name)
	}
	if err := s.ix.dropRepo(name); err != nil {
		s.forget(name)
		return nil, err
	}
	r, err := s.openRepo(ctx, name)
	if err != nil {
		s.forget(name)
		os.RemoveAll(dir)
		return nil, err
	}
	s.forgetFailedImport(name)
	s.log.Info("created repo", "repo", name)
	return r, nil
}

func (s *Store) forget(name string) {
	s.mu.Lock()
	if s.repos[name] == nil {
		delete(s.repos, name)
	}
	s.mu.Unlock()
}

// Repos returns the names of all repos, sorted.
func (s *Store) Repos() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.repos))
	for n, r := range s.repos {
		if r != nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

// Flush writes everything committed so far to Git's own files in every
// repo (see FSBackend.Flush).
func (s *Store) Flush() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range s.repos {
		if r == nil {
			continue
		}
		if fb, ok := r.be.(*FSBackend); ok {
			if err := fb.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close finishes the writes in flight, then closes every repo and the
// index, and releases the data directory. Closing again does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil // closed already: Close is safe to call again
	}
	s.closed = true
	s.mu.Unlock()
	s.bgCancel()
	s.wg.Wait()
	s.mu.Lock()
	repos := s.repos
	s.repos = map[string]*Repo{}
	s.mu.Unlock()
	var errs []error
	for _, r := range repos {
		if r != nil {
			errs = append(errs, r.close())
		}
	}
	if s.ix != nil {
		errs = append(errs, s.ix.Close())
	}
	s.caches.hot.close()
	if s.lock != nil {
		errs = append(errs, s.lock.unlock())
		s.lock = nil
	}
	return errors.Join(errs...)
}
