package storage

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// FSBackend is a Backend over a bare Git repository on local disk.
//
// Writes go first to a journal (see journal.go), which is synced once per
// call to Commit; that is when a write is durable. A background flusher then
// writes the new objects as one pack and the refs as loose ref files (both
// synced), which is what Git sees, and checkpoints the journal. The Git files
// lag the API by at most FlushDelay under load, and by about IdleFlush
// when writes pause; Flush waits for them to catch up. At open, the groups the
// journal holds after its last checkpoint are applied to the Git files, so
// after a crash the repository is whole before anything reads it.
//
// Small packs are merged in the background, so their number stays bounded.
type FSBackend struct {
	dir     string // the bare repository
	objDir  string
	packDir string
	log     *slog.Logger
	opts    FSOptions
	jnl     *journal
	bases   *baseCache // delta bases of the packs

	mu sync.RWMutex // guards the fields below; lock order: FSBackend.mu, then journal.mu
	// mem holds objects that are in the journal but not yet in a pack.
	mem   map[Hash]*Object
	packs []*pack         // newest first
	ids   packIDs         // every id in packs (see packIDs)
	refs  map[string]Hash // as of the last durable group: what readers see
	// tip is refs as of the last group written to the journal, durable or
	// not: what the next group's updates are checked against.
	tip map[string]Hash
	// failed is set once a journal sync has failed: what reached the disk
	// is unknown, so nothing commits until a restart replays the journal.
	failed error
	// pending is what the flusher has yet to write, in journal order: the
	// durable groups first, then those still waiting for their sync.
	pending      []pendingGroup
	pendingBytes int
	lastScan     time.Time
	// loose is set when objects/ held loose objects at the last scan.
	loose bool

	commitMu  sync.Mutex // serializes CommitAsync
	settleMu  sync.Mutex // serializes settle
	flushMu   sync.Mutex // serializes flushes
	wake      chan struct{}
	flushed   chan struct{} // closed and replaced after each flush
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	// closing is set while Close stops the flusher: a merge in
	// progress stops.
	closing atomic.Bool
}

type pendingGroup struct {
	end  journalPos
	objs []*Object
	refs []RefUpdate
	size int
	at   time.Time
	// notes is set when the group's record carries notes: the sink must
	// sync them before the record is checkpointed. noteData holds them
	// until the group is durable, when they go to the sink.
	notes    bool
	noteData [][]byte
	// durable is set once the journal is synced past end.
	durable bool
}

// FSOptions tunes an FSBackend. Zero values give the defaults.
type FSOptions struct {
	// FlushDelay bounds how long objects may wait in the journal before
	// they are written to Git's files while writes keep coming (default
	// 1s; FlushBytes usually comes first under load). When writes pause
	// for IdleFlush (default 20ms), they are written at once. Fewer,
	// larger packs under load leave compaction less to merge: each byte
	// is rewritten once per tier it climbs (see mergeFanIn).
	FlushDelay time.Duration
	IdleFlush  time.Duration
	// FlushBytes starts a flush when this many bytes wait (default 16 MiB).
	FlushBytes int
	// MaxPacks bounds the number of packs under 256 MiB: past it, they
	// are merged at once, the tiers that are full and, if that is not
	// enough, the smallest whatever their tiers (default 48; see
	// mergeFanIn and defaultMaxPacks).
	MaxPacks int
	// IdleMerge is how long writes must pause before packs whose tier is
	// full are merged (default 250ms). A merge rewrites tens of megabytes
	// and takes the CPU a burst of writes needs; under load, packs wait
	// until writes pause or their number passes MaxPacks.
	IdleMerge time.Duration
	// DeltaBaseCache bounds the delta bases kept resolved, in bytes
	// (default 16 MiB).
	DeltaBaseCache int
	// Notes receives the notes writes carry (Batch.Note); without it,
	// batches' notes are not asked for.
	Notes  NoteSink
	Logger *slog.Logger

	syncHist, flushHist, mergeHist prometheus.Observer
}

var _ Backend = (*FSBackend)(nil)

// OpenFS opens (creating it if needed) the bare repository at dir, applies
// what its journal holds after the last checkpoint, and starts the flusher.
func OpenFS(dir string, opts FSOptions) (*FSBackend, error) {
	if opts.FlushDelay <= 0 {
		opts.FlushDelay = time.Second
	}
	if opts.IdleFlush <= 0 {
		opts.IdleFlush = 20 * time.Millisecond
	}
	if opts.FlushBytes <= 0 {
		opts.FlushBytes = 16 << 20
	}
	if opts.MaxPacks <= 0 {
		opts.MaxPacks = defaultMaxPacks
	}
	if opts.IdleMerge <= 0 {
		opts.IdleMerge = 250 * time.Millisecond
	}
	if opts.DeltaBaseCache <= 0 {
		opts.DeltaBaseCache = 16 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); errors.Is(err, os.ErrNotExist) {
		if err := initBareRepo(dir); err != nil {
			return nil, fmt.Errorf("init %s: %w", dir, err)
		}
	}
	b := &FSBackend{
		dir:     dir,
		objDir:  filepath.Join(dir, "objects"),
		packDir: filepath.Join(dir, "objects", "pack"),
		log:     opts.Logger,
		opts:    opts,
		mem:     map[Hash]*Object{},
		bases:   newBaseCache(opts.DeltaBaseCache),
		wake:    make(chan struct{}, 1),
		flushed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := os.MkdirAll(b.packDir, 0o755); err != nil {
		return nil, err
	}
	if n := removeTempFiles(dir); n > 0 {
		b.log.Info("removed temporary files a crash left", "dir", dir, "files", n)
	}
	if err := b.scanPacks(); err != nil {
		return nil, err
	}
	refs, err := readRefs(dir)
	if err != nil {
		b.closePacks()
		return nil, err
	}
	b.refs = refs
	jnl, groups, err := openJournal(filepath.Join(dir, "gitstate", "journal"), b.readObject)
	if err != nil {
		b.closePacks()
		return nil, fmt.Errorf("open journal: %w", err)
	}
	b.jnl = jnl
	defer func() { b.tip = maps.Clone(b.refs) }()
	if len(groups) > 0 {
		// Apply what the journal holds beyond the Git files, then write it
		// out before anyone reads.
		n := 0
		var notes [][]byte
		for _, g := range groups {
			notes = append(notes, g.notes...)
			for _, o := range g.objects {
				b.mem[o.Hash] = o
			}
			for _, u := range g.refs {
				if u.New.IsZero() {
					delete(b.refs, u.Name)
				} else {
					b.refs[u.Name] = u.New
				}
			}
			b.pending = append(b.pending, pendingGroup{end: journalPos{jnl.seg, jnl.size}, objs: g.objects, refs: g.refs, durable: true})
			n += len(g.objects)
		}
		b.log.Info("replaying journal", "dir", dir, "groups", len(groups), "objects", n, "notes", len(notes))
		if len(notes) > 0 {
			// Before the checkpoint below retires the records that hold them.
			if opts.Notes == nil {
				b.log.Warn("the journal holds notes (audit lines) and no sink takes them; dropping them", "dir", dir, "notes", len(notes))
			} else if err := opts.Notes.Recover(notes); err != nil {
				b.jnl.close()
				b.closePacks()
				return nil, fmt.Errorf("replay journal notes: %w", err)
			}
		}
		if err := b.Flush(); err != nil {
			b.jnl.close()
			b.closePacks()
			return nil, fmt.Errorf("replay journal: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go b.flushLoop(ctx)
	return b, nil
}

// tempPrefix begins the name of every temporary file gitstate writes in a
// repository (packs being written, indexes, refs and packed-refs before
// their rename). Git's own are named otherwise (tmp_pack_*, *.lock).
const tempPrefix = ".tmp-"

// removeTempFiles removes the temporary files a crash left in the
// repository gitDir: in its top directory, in objects/pack and anywhere
// under refs/. It is called at open, when no one else is writing them
// (the data directory is locked; Git's own temporary files are left
// alone). It returns how many it removed.
func removeTempFiles(gitDir string) int {
	n := 0
	remove := func(path string) {
		if os.Remove(path) == nil {
			n++
		}
	}
	for _, d := range []string{gitDir, filepath.Join(gitDir, "objects", "pack")} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if !e.IsDir() && strings.HasPrefix(e.Name(), tempPrefix) {
				remove(filepath.Join(d, e.Name()))
			}
		}
	}
	filepath.WalkDir(filepath.Join(gitDir, "refs"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), tempPrefix) {
			remove(path)
		}
		return nil
	})
	return n
}

// Dir returns the path of the bare repository.
func (b *FSBackend) Dir() string { return b.dir }

// scanPacks opens the packs in objects/pack that are not yet open.
func (b *FSBackend) scanPacks() error {
	ents, err := os.ReadDir(b.packDir)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	known := map[string]bool{}
	for _, p := range b.packs {
		known[p.path] = true
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "pack-") || !strings.HasSuffix(name, ".idx") {
			continue
		}
		idx := filepath.Join(b.packDir, name)
		if known[strings.TrimSuffix(idx, ".idx")+".pack"] {
			continue
		}
		p, err := openPack(idx, b.bases)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed meanwhile (a repack by git)
			}
			return err
		}
		b.packs = append(b.packs, p)
		b.ids.add(b.packs, p)
	}
	b.loose = hasLooseObjects(b.objDir)
	b.lastScan = time.Now()
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (b *FSBackend) closePacks() {
	for _, p := range b.packs {
		p.close()
	}
}

// ReadObject implements ObjectReader.
func (b *FSBackend) ReadObject(h Hash) (*Object, error) {
	o, err := b.readObject(h)
	if errors.Is(err, ErrObjectNotFound) {
		// Git may have added a pack (a repack, a fetch into the repository
		// by hand); look again, at most every 100ms.
		b.mu.RLock()
		stale := time.Since(b.lastScan) > 100*time.Millisecond
		b.mu.RUnlock()
		if stale {
			if err := b.scanPacks(); err != nil {
				return nil, err
			}
			o, err = b.readObject(h)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", h, err)
	}
	return o, nil
}

func (b *FSBackend) readObject(h Hash) (*Object, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if o, ok := b.mem[h]; ok {
		return o, nil
	}
	for _, p := range b.packs {
		if p.has(h) {
			return p.read(h, b.readBaseLocked)
		}
	}
	return readLoose(b.objDir, h)
}

// readBaseLocked resolves a ref-delta base; b.mu is held for reading.
func (b *FSBackend) readBaseLocked(h Hash) (*Object, error) {
	for _, p := range b.packs {
		if p.has(h) {
			return p.read(h, b.readBaseLocked)
		}
	}
	return readLoose(b.objDir, h)
}

// HasObject implements Backend.
func (b *FSBackend) HasObject(h Hash) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.hasLocked(h)
}

func (b *FSBackend) hasLocked(h Hash) bool {
	if _, ok := b.mem[h]; ok {
		return true
	}
	if b.ids.mayHave(h) {
		for _, p := range b.packs {
			if p.has(h) {
				return true
			}
		}
	}
	if !b.loose {
		return false // no loose object to look for: spare the stat
	}
	s := h.String()
	return fileExists(filepath.Join(b.objDir, s[:2], s[2:]))
}

// hasLooseObjects reports whether objects/ holds any loose object (gitstate
// writes none; Git may, when someone works in the repository directly).
func hasLooseObjects(objDir string) bool {
	ents, err := os.ReadDir(objDir)
	if err != nil {
		return true // cannot tell: look each time
	}
	for _, e := range ents {
		if !e.IsDir() || len(e.Name()) != 2 {
			continue
		}
		if sub, err := os.ReadDir(filepath.Join(objDir, e.Name())); err != nil || len(sub) > 0 {
			return true
		}
	}
	return false
}

// Tip returns a ref as the last group written to the journal left it,
// durable or not (Ref returns it as the last durable one did).
func (b *FSBackend) Tip(name string) Hash {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.tip[name]
}

// Ref implements Backend.
func (b *FSBackend) Ref(name string) Hash {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.refs[name]
}

// Refs implements Backend.
func (b *FSBackend) Refs(prefix string) map[string]Hash {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := map[string]Hash{}
	for n, h := range b.refs {
		if strings.HasPrefix(n, prefix) {
			out[n] = h
		}
	}
	return out
}

// Commit implements Backend: one journal record and one sync for the lot.
// notes are dropped when the backend has no NoteSink.
func (b *FSBackend) Commit(objs []*Object, updates []RefUpdate, notes [][]byte) error {
	wait, err := b.CommitAsync(objs, updates, notes)
	if err != nil {
		return err
	}
	return wait()
}

// CommitAsync is Commit in two steps: it checks the updates against the
// refs as the last group left them (durable or not), writes the group to
// the journal and returns; wait then syncs the journal, unless a later
// sync has covered the group already, and makes the updates visible to
// Ref. The objects can be read at once. A committer prepares the next
// group while the disk syncs this one.
//
// Groups become durable in the order they were written: wait returns nil
// only once every group written before is durable too. After a failed
// sync, every wait and every later CommitAsync fails.
func (b *FSBackend) CommitAsync(objs []*Object, updates []RefUpdate, notes [][]byte) (wait func() error, err error) {
	if b.opts.Notes == nil {
		notes = nil
	}
	b.commitMu.Lock()
	defer b.commitMu.Unlock()
	b.mu.RLock()
	if b.failed != nil {
		b.mu.RUnlock()
		return nil, b.failed
	}
	for _, u := range updates {
		if b.tip[u.Name] != u.Old {
			b.mu.RUnlock()
			return nil, fmt.Errorf("%s: %w", u.Name, ErrRefChanged)
		}
	}
	b.mu.RUnlock()
	g := &group{objects: objs, refs: updates, notes: notes}
	end, err := b.jnl.appendGroup(g, func(h Hash) []byte {
		b.mu.RLock()
		defer b.mu.RUnlock()
		if o, ok := b.mem[h]; ok {
			return o.Data
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	size := 0
	b.mu.Lock()
	for _, o := range objs {
		b.mem[o.Hash] = o
		size += len(o.Data)
	}
	for _, u := range updates {
		if u.New.IsZero() {
			delete(b.tip, u.Name)
		} else {
			b.tip[u.Name] = u.New
		}
	}
	b.pending = append(b.pending, pendingGroup{end: end, objs: objs, refs: updates, size: size, at: time.Now(), notes: len(notes) > 0, noteData: notes})
	b.mu.Unlock()
	return func() error { return b.settle(end) }, nil
}

// settle makes the journal durable up to end, then every group it covers
// visible, in journal order.
func (b *FSBackend) settle(end journalPos) error {
	b.settleMu.Lock()
	defer b.settleMu.Unlock()
	b.mu.RLock()
	failed := b.failed
	b.mu.RUnlock()
	if failed != nil {
		return failed
	}
	syncStart := time.Now()
	synced, err := b.jnl.syncTo(end)
	if err != nil {
		b.mu.Lock()
		b.failed = fmt.Errorf("a journal sync failed, commits are refused until a restart: %w", err)
		b.mu.Unlock()
		b.log.Error("journal sync failed; refusing commits until a restart", "dir", b.dir, "err", err)
		return err
	}
	if synced && b.opts.syncHist != nil {
		b.opts.syncHist.Observe(time.Since(syncStart).Seconds())
	}
	var notes [][]byte
	b.mu.Lock()
	for i := range b.pending {
		g := &b.pending[i]
		if g.durable {
			continue
		}
		if end.less(g.end) {
			break
		}
		g.durable = true
		b.pendingBytes += g.size
		for _, u := range g.refs {
			if u.New.IsZero() {
				delete(b.refs, u.Name)
			} else {
				b.refs[u.Name] = u.New
			}
		}
		notes = append(notes, g.noteData...)
		g.noteData = nil
	}
	b.mu.Unlock()
	if len(notes) > 0 {
		// The notes are durable in the journal, which keeps them until
		// the sink has synced them (Flush): a failure here is the sink's
		// to retry, not the commit's.
		if err := b.opts.Notes.Append(notes); err != nil {
			b.log.Error("notes not taken by their sink; it will retry before the journal lets them go", "err", err)
		}
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return nil
}

// flushLoop writes pending groups to Git's files: at once when writes pause,
// at least every FlushDelay while they do not. Packs whose tier is full are
// merged once writes have paused for IdleMerge.
func (b *FSBackend) flushLoop(ctx context.Context) {
	defer close(b.done)
	merge := time.NewTimer(b.opts.IdleMerge)
	defer merge.Stop()
	mergeWait := b.opts.IdleMerge // longer after a merge fails
	for {
		// Every write wakes the loop, and every wake restarts the merge's
		// wait: a merge starts only after IdleMerge without a write.
		var mergeC <-chan time.Time
		if b.mergeDue() {
			merge.Reset(mergeWait)
			mergeC = merge.C
		}
		select {
		case <-ctx.Done():
			return
		case <-mergeC:
			if err := b.mergeIdle(); errors.Is(err, errMergeStopped) {
				return
			} else if err != nil {
				b.log.Warn("pack compaction failed; will retry", "dir", b.dir, "err", err)
				mergeWait = min(2*mergeWait, time.Minute)
			} else {
				mergeWait = b.opts.IdleMerge
			}
			continue
		case <-b.wake:
		}
		merge.Stop()
		idle := time.NewTimer(b.opts.IdleFlush)
	wait:
		for {
			b.mu.RLock()
			var age time.Duration
			if len(b.pending) > 0 {
				age = time.Since(b.pending[0].at)
			}
			big := b.pendingBytes >= b.opts.FlushBytes
			b.mu.RUnlock()
			if big || age >= b.opts.FlushDelay {
				break
			}
			select {
			case <-ctx.Done():
				idle.Stop()
				return
			case <-b.wake:
				// More writes: wait for a pause, but not past FlushDelay.
				idle.Reset(b.opts.IdleFlush)
			case <-idle.C:
				break wait
			}
		}
		idle.Stop()
		if err := b.Flush(); err != nil {
			b.log.Error("flush to git failed; will retry", "dir", b.dir, "err", err)
			time.Sleep(100 * time.Millisecond)
			select {
			case b.wake <- struct{}{}:
			default:
			}
		}
	}
}

// Flush writes every group committed so far to Git's files (a pack and the
// loose refs, synced) and checkpoints the journal. It returns when the Git
// files reflect every Commit that returned before it was called.
func (b *FSBackend) Flush() error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	n := 0
	for n < len(b.pending) && b.pending[n].durable {
		b.pendingBytes -= b.pending[n].size
		n++
	}
	pend := b.pending[:n:n]
	b.pending = slices.Clone(b.pending[n:])
	b.mu.Unlock()
	if len(pend) == 0 {
		return nil
	}
	if b.opts.flushHist != nil {
		defer func(start time.Time) { b.opts.flushHist.Observe(time.Since(start).Seconds()) }(time.Now())
	}
	notes := false
	for _, g := range pend {
		notes = notes || g.notes
	}
	restore := func() {
		b.mu.Lock()
		b.pending = append(pend, b.pending...)
		for _, g := range pend {
			b.pendingBytes += g.size
		}
		b.mu.Unlock()
	}
	if notes && b.opts.Notes != nil {
		// The checkpoint at the end retires the records that carry the
		// notes: the sink must hold them durably first.
		if err := b.opts.Notes.Sync(); err != nil {
			restore()
			return fmt.Errorf("sync notes: %w", err)
		}
	}
	// Objects: one pack, each once. They are not looked up in the other
	// packs: the committer only journals objects it did not find stored,
	// or has just made, and an object in two packs (a replay after a crash
	// between a pack and its checkpoint) is valid Git, stored once when
	// packs are merged. Looking every object up in every pack was the
	// flusher's main cost under load.
	nobjs := 0
	for _, g := range pend {
		nobjs += len(g.objs)
	}
	// Sized up front: growing the map under load was 2% of what the
	// server allocated.
	objs := make([]*Object, 0, nobjs)
	seen := make(map[Hash]struct{}, nobjs)
	for _, g := range pend {
		for _, o := range g.objs {
			if _, dup := seen[o.Hash]; !dup {
				seen[o.Hash] = struct{}{}
				objs = append(objs, o)
			}
		}
	}
	var np *pack
	if len(objs) > 0 {
		var err error
		if np, err = b.writePack(objs); err != nil {
			restore()
			return err
		}
	}
	// Refs: the last value of each.
	final := map[string]Hash{}
	for _, g := range pend {
		for _, u := range g.refs {
			final[u.Name] = u.New
		}
	}
	dirs := map[string]bool{}
	for name, h := range final {
		var dir string
		var err error
		if h.IsZero() {
			dir, err = deleteRef(b.dir, name)
		} else {
			dir, err = writeLooseRef(b.dir, name, h)
		}
		if err != nil {
			restore()
			return err
		}
		dirs[dir] = true
	}
	for d := range dirs {
		// A ref created and deleted within one flush never had a directory.
		if err := syncDir(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			restore()
			return err
		}
	}
	// A filter over the packs that np outgrows is rebuilt before the lock
	// is taken: under it, readers and the committer's lookups would wait.
	var fresh *packIDs
	var known []*pack
	if np != nil {
		b.mu.RLock()
		if b.ids.outgrownBy(np) {
			known = append([]*pack{np}, b.packs...)
		}
		b.mu.RUnlock()
		if known != nil {
			fresh = &packIDs{}
			fresh.rebuild(known)
		}
	}
	b.mu.Lock()
	if np != nil && slices.ContainsFunc(b.packs, func(p *pack) bool { return p.path == np.path }) {
		// A pack that was already there, byte for byte (the same groups
		// flushed again after a crash between their pack and the
		// checkpoint): it was written over itself. Keep the one open.
		np.close()
		np = nil
	}
	if np != nil {
		b.packs = append([]*pack{np}, b.packs...)
		if fresh != nil {
			for _, p := range b.packs {
				if !slices.Contains(known, p) {
					fresh.add(b.packs, p) // found on disk meanwhile
				}
			}
			b.ids = *fresh
		} else {
			b.ids.add(b.packs, np)
		}
	}
	for _, g := range pend {
		for _, o := range g.objs {
			delete(b.mem, o.Hash)
		}
	}
	// Objects committed again by a later, still pending group stay.
	for _, g := range b.pending {
		for _, o := range g.objs {
			b.mem[o.Hash] = o
		}
	}
	close(b.flushed)
	b.flushed = make(chan struct{})
	b.mu.Unlock()
	if err := b.jnl.checkpoint(pend[len(pend)-1].end); err != nil {
		return err
	}
	b.mergePastMax()
	return nil
}

// defaultMaxPacks is MaxPacks unless set. Between bursts the idle merges
// leave up to mergeFanIn-1 packs in each tier (20 to 30 packs on a repo of
// a few hundred megabytes), and a burst adds a pack per flush (about one a
// second under load). At 32, a burst of five seconds passed the bound, and
// a merge of every full tier (~300,000 objects, 0.6-0.8 s of a core) ran in
// the middle of it, where a pause would have paid for it: the debug log
// showed one in most benchmark windows of PUT x64. At 48 a burst has ~20
// flushes of headroom. It stays under git's gc.autoPackLimit (50), so that
// a git command run in the repository does not start a repack of its own.
const defaultMaxPacks = 48

// mergePastMax merges packs if there are more than MaxPacks. Other merges
// wait for a pause in the writes (flushLoop); this one does not, so that
// packs cannot pile up under a long burst. The caller holds flushMu.
func (b *FSBackend) mergePastMax() {
	if len(b.mergeCandidates()) <= b.opts.MaxPacks {
		return
	}
	if err := b.compact(); err != nil && !errors.Is(err, errMergeStopped) {
		b.log.Warn("pack compaction failed", "dir", b.dir, "err", err)
	}
}

// writePack writes objs as a new pack, durably, and opens it.
func (b *FSBackend) writePack(objs []*Object) (*pack, error) {
	w, err := newPackWriter(b.packDir, len(objs))
	if err != nil {
		return nil, err
	}
	// A tree that replaces one written earlier in this pack (the same
	// directory, one commit before) is stored as a delta against it: a
	// busy directory of a thousand entries is rewritten by every commit,
	// and the delta holds the one entry that changed. Chains are cut every
	// maxDeltaChain versions.
	type written struct {
		off   int64
		data  []byte
		chain int
	}
	ntrees := 0
	for _, o := range objs {
		if o.Type == TreeObject {
			ntrees++
		}
	}
	trees := make(map[Hash]written, ntrees)
	for _, o := range objs {
		off, chain := w.off, 0
		var err error
		if base, ok := trees[o.DeltaBase]; ok && !o.DeltaBase.IsZero() && base.chain < maxDeltaChain {
			d := o.delta // the journal's, against the same base
			switch {
			case d != nil:
			case o.spanSet:
				d = makeSpanDelta(base.data, o.Data, o.span[0], o.span[1])
			default:
				d = makeDelta(base.data, o.Data)
			}
			if d != nil {
				err, chain = w.addDelta(o.Hash, base.off, d), base.chain+1
			} else {
				err = w.add(o)
			}
		} else {
			err = w.add(o)
		}
		if err != nil {
			w.abort()
			return nil, err
		}
		if o.Type == TreeObject {
			trees[o.Hash] = written{off: off, data: o.Data, chain: chain}
		}
	}
	return b.finishPack(w)
}

func (b *FSBackend) finishPack(w *packWriter) (*pack, error) {
	idx, err := w.finish()
	if err != nil {
		return nil, fmt.Errorf("write pack: %w", err)
	}
	if err := syncDir(b.packDir); err != nil {
		return nil, err
	}
	return openPack(idx, b.bases)
}

// errMergeStopped is the error of a merge that Close cut short.
var errMergeStopped = errors.New("pack merge stopped: the repository is closing")

// smallPack is the size under which packs are merged by compaction.
const smallPack = 256 << 20

// mergeCandidates returns the packs compaction may merge: those under
// smallPack and not kept.
func (b *FSBackend) mergeCandidates() []*pack {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var cand []*pack
	for _, p := range b.packs {
		if p.size < smallPack && !p.keep {
			cand = append(cand, p)
		}
	}
	return cand
}

// mergeDue reports whether compaction has packs to merge.
func (b *FSBackend) mergeDue() bool {
	return len(pickMerge(b.mergeCandidates(), b.opts.MaxPacks)) >= 2
}

// mergeIdle merges the packs that are due, between flushes.
func (b *FSBackend) mergeIdle() error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	return b.compact()
}

// compact merges the packs pickMerge chooses (see mergeFanIn). Entries
// are copied as they are, deltas against an object of the same pack
// included (their offsets adjusted); other deltas are resolved and written
// whole.
func (b *FSBackend) compact() error { return b.compactTo(b.opts.MaxPacks) }

// compactTo merges the packs pickMerge chooses with maxPacks. The caller
// holds flushMu: two merges of the same packs must not run at once.
func (b *FSBackend) compactTo(maxPacks int) error {
	small := pickMerge(b.mergeCandidates(), maxPacks)
	if len(small) < 2 {
		return nil
	}
	start := time.Now()
	// Each pack's entries: ids and CRCs in the index's order (by id), the
	// order by offset (offset<<24 | index), and where each entry lands in
	// the new pack. An object already in an earlier pack of the merge is
	// a duplicate (rare: a replay after a crash between a pack and its
	// checkpoint): it is not copied, and lands where that copy did.
	type ref struct{ p, i int32 }
	type source struct {
		p    *pack
		ids  []Hash
		crcs []uint32
		ord  []uint64
		out  []int64
		dups map[int32]ref
	}
	const idxBits, idxMask = 24, 1<<24 - 1
	srcs := make([]source, len(small))
	total := 0
	for pi, p := range small {
		n := p.idx.count()
		if n > idxMask {
			return fmt.Errorf("merge packs: %s holds %d objects", p.path, n)
		}
		sc := source{p: p, ids: make([]Hash, 0, n), crcs: make([]uint32, 0, n), ord: make([]uint64, 0, n)}
		for i := range n {
			sc.ord = append(sc.ord, uint64(p.idx.offset(i))<<idxBits|uint64(i))
			sc.ids = append(sc.ids, p.idx.name(i))
			sc.crcs = append(sc.crcs, p.idx.crc(i))
		}
		slices.Sort(sc.ord)
		sc.out = make([]int64, n)
		for i, h := range sc.ids {
			sc.out[i] = -1
			for pj := range pi {
				if q := small[pj]; q.ids != nil && !q.ids.mayHave(h) {
					continue
				}
				if m, found := slices.BinarySearchFunc(srcs[pj].ids, h, func(x, y Hash) int { return bytes.Compare(x[:], y[:]) }); found {
					if sc.dups == nil {
						sc.dups = map[int32]ref{}
					}
					sc.dups[int32(i)] = ref{int32(pj), int32(m)}
					break
				}
			}
		}
		total += int(n) - len(sc.dups)
		srcs[pi] = sc
	}
	w, err := newPackWriter(b.packDir, total)
	if err != nil {
		return err
	}
	// landed returns where the entry at offset at of source sc landed in
	// the new pack, if it has: a delta whose base is copied first stays a
	// delta, pointing at the base's new place.
	landed := func(sc *source, at int64) (int64, bool) {
		k, _ := slices.BinarySearch(sc.ord, uint64(at)<<idxBits)
		if k == len(sc.ord) || int64(sc.ord[k]>>idxBits) != at {
			return 0, false
		}
		out := sc.out[sc.ord[k]&idxMask]
		return out, out >= 0
	}
	// Entries are copied in offset order, pack after pack: a delta's base
	// (earlier in its pack) is written before it.
	for pi := range srcs {
		sc := &srcs[pi]
		p := sc.p
		for k, o := range sc.ord {
			if k%4096 == 0 && b.closing.Load() {
				// A merge of hundreds of megabytes takes seconds; Close
				// does not wait for it. The sources stay as they were.
				w.abort()
				return errMergeStopped
			}
			i, off := int32(o&idxMask), int64(o>>idxBits)
			end := p.size - 20
			if k+1 < len(sc.ord) {
				end = int64(sc.ord[k+1] >> idxBits)
			}
			if d, dup := sc.dups[i]; dup {
				sc.out[i] = srcs[d.p].out[d.i]
				continue
			}
			h, raw := sc.ids[i], p.data[off:end]
			// The entry's bytes are checked against its index's CRC
			// (go-git reads only version-2 indexes, which have them)
			// before they are copied, as git repack does: a corrupt
			// entry is not carried into the new pack.
			if crc := crc32.ChecksumIEEE(raw); crc != sc.crcs[i] {
				w.abort()
				return fmt.Errorf("merge packs: %s: object %s at %d fails its CRC", p.path, h, off)
			}
			sc.out[i] = w.off
			if hdr, rel, z, ok := splitOfsDelta(raw); ok {
				if nb, ok := landed(sc, off-rel); ok {
					if err := w.addEntry(h, appendOfsDeltaOffset(slices.Clone(hdr), w.off-nb), z); err != nil {
						w.abort()
						return err
					}
					continue
				}
			}
			if t := (raw[0] >> 4) & 7; t == objOfsDelta || t == objRefDelta {
				b.mu.RLock()
				o, err := p.read(h, b.readBaseLocked)
				b.mu.RUnlock()
				if err == nil {
					err = w.add(o)
				}
				if err != nil {
					w.abort()
					return err
				}
				continue
			}
			if err := w.addRawCRC(h, raw, sc.crcs[i]); err != nil {
				w.abort()
				return err
			}
		}
	}
	np, err := b.finishPack(w)
	if err != nil {
		return err
	}
	drop := map[*pack]bool{}
	for _, p := range small {
		drop[p] = true
	}
	b.mu.Lock()
	kept := []*pack{np}
	var replaced []*pack
	for _, p := range b.packs {
		switch {
		case drop[p]:
		case p.path == np.path:
			// The same pack, open twice: np replaces it.
			replaced = append(replaced, p)
		default:
			kept = append(kept, p)
		}
	}
	b.packs = kept
	b.mu.Unlock()
	// Readers hold b.mu while they read, so no one is inside a dropped
	// pack now.
	for _, p := range replaced {
		p.close()
	}
	for _, p := range small {
		p.close()
		if p.path == np.path {
			// The merge made a pack that was already there, byte for
			// byte, and one of its sources: an earlier merge of the
			// same packs, cut short by a crash after its pack was in
			// place and before it removed the others. A pack's name is
			// its checksum, so np was written over it: its files are
			// np's now, and removing them would lose every object.
			continue
		}
		base := strings.TrimSuffix(p.path, ".pack")
		// The index goes first, so Git never sees an index without its pack.
		for _, ext := range []string{".idx", ".pack", ".rev", ".bitmap"} {
			if err := os.Remove(base + ext); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	took := time.Since(start)
	if b.opts.mergeHist != nil {
		b.opts.mergeHist.Observe(took.Seconds())
	}
	b.log.Debug("merged packs", "dir", b.dir, "packs", len(small), "objects", total, "took", took)
	return syncDir(b.packDir)
}

// Packs are merged in tiers, as an LSM tree's levels are: tier 0 holds packs
// under mergeUnit, and each tier above holds packs up to mergeFanIn times
// larger than the one below. When a tier holds mergeFanIn packs, they are
// merged, with every smaller pack, into one pack of a tier above. A byte is
// then rewritten about once per tier it climbs (twice on the way from a
// flush to a 64 MiB pack), where a geometric progression of factor 2 (git
// repack --geometric=2) rewrote it about log2 of the ratio (six or seven
// times) and rewrote the largest pack each time the others reached half its
// size. The price is up to mergeFanIn-1 packs per tier, which the packs'
// Bloom filters make cheap for readers.
const (
	mergeUnit  = 1 << 20
	mergeFanIn = 8
)

// packTier is the tier of a pack of size bytes.
func packTier(size int64) int {
	t := 0
	for limit := int64(mergeUnit); size >= limit; limit *= mergeFanIn {
		t++
	}
	return t
}

// pickMerge returns the packs to merge, the smallest ones: every pack of the
// highest full tier and of the tiers below it, or else, if there are more
// than maxPacks, as many of the smallest as bring them to maxPacks. It
// returns nothing when no merge is due.
func pickMerge(ps []*pack, maxPacks int) []*pack {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(x, y *pack) int { return cmp.Compare(x.size, y.size) })
	n := 0 // merge ps[:n]
	count := map[int]int{}
	for i, p := range ps {
		t := packTier(p.size)
		count[t]++
		if count[t] >= mergeFanIn {
			n = i + 1
		}
	}
	if maxPacks > 0 && len(ps)-n+min(n, 1) > maxPacks {
		n = len(ps) - maxPacks + 1
	}
	if n < 2 {
		return nil
	}
	return ps[:n]
}

// Close stops the flusher, writes what is pending to Git's files, and
// closes the journal and the packs.
func (b *FSBackend) Close() error {
	b.closeOnce.Do(func() {
		b.closing.Store(true)
		b.cancel()
		<-b.done
		// The flusher's merge, if any, has stopped. The last flush merges
		// as every flush does, only past MaxPacks, even with nothing to
		// flush (the merge stopped may have been one past MaxPacks).
		b.closing.Store(false)
		err := b.Flush()
		b.flushMu.Lock()
		b.mergePastMax()
		b.flushMu.Unlock()
		if cerr := b.jnl.close(); err == nil {
			err = cerr
		}
		b.mu.Lock()
		b.closePacks()
		b.packs = nil
		b.mu.Unlock()
		b.closeErr = err
	})
	return b.closeErr
}
