package storage

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/gitstate/gitstate"
)

// Head is a repo's main branch at one revision.
type Head struct {
	Revision int64
	Commit   Hash
	Tree     Hash
}

// Repo is one repository: a Backend, its slice of the Index, and the
// committer that serializes its writes. All methods are safe for concurrent
// use.
type Repo struct {
	name string
	be   Backend
	ix   *Index
	log  *slog.Logger
	opts *Options
	mx   *Metrics

	trees   *treeCache
	commits *lru.Cache[Hash, *Commit]

	// viewMu is held for writing while the index and the head move together
	// (so that a reader sees the index at exactly the head it reports).
	// Lock order: viewMu, then notifyMu.
	viewMu     sync.RWMutex
	head       Head
	revs       []Hash // revs[i] is the commit of revision i; revs[0] is zero
	revOf      map[Hash]int64
	indexStale bool // an index write failed: serve head from Git until restart
	// hot caches entries read at head; see hotCache for its invariant.
	hot *hotCache

	// replayProgress, when set, hears how far replay is (only while the
	// repo opens, before anyone else sees it).
	replayProgress func(done, total int64)

	notifyMu sync.Mutex
	notify   chan struct{}

	reqs chan *writeReq
	// entries recycles the committer's copies of tree entries (see
	// entryPool); only the committer goroutine uses it.
	entries entryPool
	// groupSeq numbers the committer's groups (groupState.seq).
	groupSeq int64
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// stopped is closed when the committer has returned; requests still
	// queued then are never applied.
	stopped chan struct{}
}

type writeReq struct {
	batches []*Batch
	res     []*Result
	err     error
	done    chan struct{}
}

func newRepo(name string, be Backend, ix *Index, shared *sharedCaches, opts *Options, mx *Metrics) (*Repo, error) {
	commits, err := lru.New[Hash, *Commit](opts.TreeCacheEntries / 4)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Repo{
		name:    name,
		be:      be,
		ix:      ix,
		log:     opts.Logger.With("repo", name),
		opts:    opts,
		mx:      mx,
		trees:   shared.trees.forRepo(),
		commits: commits,
		revOf:   map[Hash]int64{},
		hot:     shared.hot.newCache(),
		notify:  make(chan struct{}),
		reqs:    make(chan *writeReq, 1024),
		stopped: make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
	}
	return r, nil
}

// start starts the committer.
func (r *Repo) start() {
	r.wg.Add(1)
	go r.commitLoop()
}

// close stops the committer after the writes already queued, then closes
// the backend.
func (r *Repo) close() error {
	r.cancel()
	r.wg.Wait()
	return r.be.Close()
}

// Name returns the repo's name.
func (r *Repo) Name() string { return r.name }

// Backend returns the repo's backend.
func (r *Repo) Backend() Backend { return r.be }

// Head returns main's current head.
func (r *Repo) Head() Head {
	r.viewMu.RLock()
	defer r.viewMu.RUnlock()
	return r.head
}

// Changed returns a channel that is closed when main gets a new revision.
// Take it before reading the head to never miss one.
func (r *Repo) Changed() <-chan struct{} {
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	return r.notify
}

// readTree returns the decoded tree h, from the cache or the backend, to a
// reader.
func (r *Repo) readTree(h Hash) (*Tree, error) {
	if t, ok := r.trees.Get(h); ok && t.lend() {
		return t, nil
	}
	return r.decodeTree(h)
}

// editTree is readTree for the committer's group seq.
func (r *Repo) editTree(h Hash, seq int64) (*Tree, error) {
	if t, ok := r.trees.Get(h); ok && t.editBy(seq) {
		return t, nil
	}
	return r.decodeTree(h)
}

// decodeTree reads tree h from the backend and caches it, as read by a
// reader: decoded trees are never recycled.
func (r *Repo) decodeTree(h Hash) (*Tree, error) {
	o, err := r.be.ReadObject(h)
	if err != nil {
		return nil, err
	}
	if o.Type != TreeObject {
		return nil, fmt.Errorf("object %s is a %s, not a tree", h, o.Type)
	}
	t, err := DecodeTree(o.Data)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", h, err)
	}
	t.use.Store(useShared)
	r.trees.Add(h, t)
	return t, nil
}

// ReadCommit returns the decoded commit h.
func (r *Repo) ReadCommit(h Hash) (*Commit, error) {
	if c, ok := r.commits.Get(h); ok {
		return c, nil
	}
	o, err := r.be.ReadObject(h)
	if err != nil {
		return nil, err
	}
	if o.Type != CommitObject {
		return nil, fmt.Errorf("object %s is a %s, not a commit", h, o.Type)
	}
	c, err := DecodeCommit(o.Data)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", h, err)
	}
	r.commits.Add(h, c)
	return c, nil
}

func (r *Repo) commitTree(h Hash) (Hash, error) {
	if h.IsZero() {
		return ZeroHash, nil
	}
	c, err := r.ReadCommit(h)
	if err != nil {
		return ZeroHash, err
	}
	return c.Tree, nil
}

// Write applies the batches atomically (all or none) and durably: when it
// returns without error, every commit it made is in the journal, synced.
// ctx bounds only the wait for the committer to take the write: once
// taken, the write is decided by the committer (within a group's time),
// and Write waits for that outcome whatever ctx does, so that what it
// returns is what happened. An error from ctx therefore means the batches
// were not applied. (Before, a write whose client went away was answered
// "canceled" and audited as failed while its commit landed.)
func (r *Repo) Write(ctx context.Context, batches ...*Batch) ([]*Result, error) {
	for _, b := range batches {
		for _, op := range b.Ops {
			// A key Git refuses ("a//b", "../x", ".git/config") would make a
			// tree that breaks git fsck and checkout: refuse it here, whoever
			// the caller is. OpRestoreDir's "" is the root.
			if op.Kind != OpRestoreDir || op.Key != "" {
				if err := ValidateKey(op.Key); err != nil {
					return nil, err
				}
			}
			if op.Kind == OpMove {
				if err := ValidateKey(op.From); err != nil {
					return nil, err
				}
			}
			if op.Kind == OpPut && op.Value != nil && int64(len(op.Value)) > r.opts.MaxValueSize {
				return nil, gitstate.Errorf(gitstate.KindTooLarge, "value_too_large",
					"value of %q is %d bytes; the limit is %d", op.Key, len(op.Value), r.opts.MaxValueSize).WithKeys(op.Key)
			}
		}
	}
	req := &writeReq{batches: batches, done: make(chan struct{})}
	select {
	case r.reqs <- req:
	case <-r.ctx.Done():
		return nil, gitstate.Errorf(gitstate.KindUnavailable, "unavailable", "repo %s is closing", r.name)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-req.done:
		return req.res, req.err
	case <-r.stopped:
		// The committer answers what it drains before it returns; a
		// request queued after that would wait forever.
		select {
		case <-req.done:
			return req.res, req.err
		default:
			return nil, gitstate.Errorf(gitstate.KindUnavailable, "unavailable", "repo %s is closed", r.name)
		}
	}
}

// WriteOne is Write for a single batch.
func (r *Repo) WriteOne(ctx context.Context, b *Batch) (*Result, error) {
	res, err := r.Write(ctx, b)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

const maxGroup = 512

func (r *Repo) commitLoop() {
	defer r.wg.Done()
	defer close(r.stopped)
	// The committer applies a group and writes it to the journal; the
	// publisher waits for its sync, publishes it and answers. The next
	// group is applied meanwhile: the disk's sync and the CPU's work
	// overlap, one group deep (the hand-off is unbuffered).
	sealed := make(chan *sealedGroup)
	published := make(chan struct{})
	go func() {
		defer close(published)
		for s := range sealed {
			r.finishGroup(s)
		}
	}()
	defer func() {
		close(sealed)
		<-published
	}()
	var last *sealedGroup
	commit := func(group []*writeReq) {
		if last != nil && needsBarrier(group) {
			<-last.settled
		}
		if s := r.prepareGroup(group, last); s != nil {
			sealed <- s
			last = s
		}
	}
	for {
		var first *writeReq
		select {
		case first = <-r.reqs:
		case <-r.ctx.Done():
			// Finish what was queued before the close.
			for {
				select {
				case req := <-r.reqs:
					commit([]*writeReq{req})
				default:
					return
				}
			}
		}
		group := []*writeReq{first}
	drain:
		for len(group) < maxGroup {
			select {
			case req := <-r.reqs:
				group = append(group, req)
			default:
				break drain
			}
		}
		commit(group)
	}
}
