// Package watch turns a repo's revisions into streams for reconcilers:
// a per-repo Feed keeps the latest revisions decoded and encoded once, so
// that a thousand watchers cost one index read per revision, and serves
// older ones from the index (history is never compacted, so any resume point
// is valid). A watcher that falls behind is served from history: it never
// loses events and never slows writers or other watchers.
package watch

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
)

// Entry is one revision of main, decoded, with its event encoded as JSON
// (all its changes; watchers that filter encode their own).
type Entry struct {
	Info *storage.RevisionInfo
	JSON []byte
}

// Event returns the wire event of a revision, keeping the changes keep
// accepts (nil keeps all).
func Event(ri *storage.RevisionInfo, keep func(key string) bool) wire.WatchEvent {
	ev := wire.WatchEvent{
		Revision: ri.Revision,
		Commit:   ri.Commit,
		Author:   ri.Author,
		Time:     time.Unix(ri.Time, 0).UTC(),
		Message:  ri.Message,
		Changes:  make([]wire.Change, 0, len(ri.Changes)),
	}
	for _, c := range ri.Changes {
		if keep != nil && !keep(c.Key) && (c.From == "" || !keep(c.From)) {
			continue
		}
		ev.Changes = append(ev.Changes, wire.Change{Key: c.Key, Op: c.Op, From: c.From, ETag: c.ETag})
	}
	return ev
}

// For returns the event a watcher whose filter is keep (nil keeps all),
// and who may read only the keys see accepts (nil: every key; see Redact),
// receives of e, as JSON, and false when the revision changed keys but none
// that keep accepts: the watcher passes over it. Streams and webhooks filter
// through it, so both skip the same revisions.
func (e *Entry) For(keep, see func(key string) bool) ([]byte, bool) {
	if keep == nil && see == nil {
		return e.JSON, true
	}
	ev := Event(Redact(e.Info, see), keep)
	if len(ev.Changes) == 0 && len(e.Info.Changes) > 0 {
		return nil, false
	}
	b, err := json.Marshal(ev)
	if err != nil {
		// A WatchEvent has only strings, numbers and a time.
		panic("watch: marshal event: " + err.Error())
	}
	return b, true
}

// Options configures a Hub.
type Options struct {
	// Recent is how many of the latest revisions each feed keeps in
	// memory (default 4,096).
	Recent int
	Logger *slog.Logger
}

// Hub owns a Feed per repo. It is safe for concurrent use.
type Hub struct {
	store *storage.Store
	opts  Options

	mu     sync.Mutex // guards feeds
	feeds  map[string]*Feed
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewHub returns a Hub over store.
func NewHub(store *storage.Store, opts Options) *Hub {
	if opts.Recent <= 0 {
		opts.Recent = 4096
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{store: store, opts: opts, feeds: map[string]*Feed{}, ctx: ctx, cancel: cancel}
}

// Close stops every feed. Streams waiting on them end.
func (h *Hub) Close() {
	h.cancel()
	h.wg.Wait()
}

// Done is closed when the hub closes.
func (h *Hub) Done() <-chan struct{} { return h.ctx.Done() }

// Feed returns the feed of repo, starting it on first use.
func (h *Hub) Feed(repo string) (*Feed, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f, ok := h.feeds[repo]; ok {
		return f, nil
	}
	r, err := h.store.Repo(repo)
	if err != nil {
		return nil, err
	}
	f := &Feed{repo: r, max: h.opts.Recent, log: h.opts.Logger, notify: make(chan struct{})}
	f.next = r.Head().Revision + 1
	h.feeds[repo] = f
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f.run(h.ctx)
	}()
	return f, nil
}

// Feed follows one repo's main branch and keeps its latest revisions.
type Feed struct {
	repo *storage.Repo
	max  int
	log  *slog.Logger

	mu     sync.Mutex // guards the fields below
	recent []*Entry   // consecutive revisions, oldest first
	next   int64      // the revision after the last one in recent
	notify chan struct{}
}

// Repo returns the feed's repo.
func (f *Feed) Repo() *storage.Repo { return f.repo }

func (f *Feed) run(ctx context.Context) {
	for {
		changed := f.repo.Changed()
		head := f.repo.Head().Revision
		f.mu.Lock()
		from := f.next
		f.mu.Unlock()
		if head >= from {
			if err := f.load(ctx, from, head); err != nil {
				f.log.Warn("watch feed: reading revisions", "repo", f.repo.Name(), "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			f.mu.Lock()
			close(f.notify)
			f.notify = make(chan struct{})
			f.mu.Unlock()
			return
		case <-changed:
		}
	}
}

// load reads revisions from..to and wakes the watchers.
func (f *Feed) load(ctx context.Context, from, to int64) error {
	var add []*Entry
	for rev := max(from, to-int64(f.max)+1); rev <= to; rev++ {
		ri, err := f.repo.Revision(rev)
		if err != nil {
			return err
		}
		b, err := json.Marshal(Event(ri, nil))
		if err != nil {
			return err
		}
		add = append(add, &Entry{Info: ri, JSON: b})
	}
	f.mu.Lock()
	if len(f.recent) > 0 && f.recent[len(f.recent)-1].Info.Revision+1 != add[0].Info.Revision {
		f.recent = nil // a gap (the feed fell far behind): start afresh
	}
	f.recent = append(f.recent, add...)
	if n := len(f.recent) - f.max; n > 0 {
		f.recent = append([]*Entry(nil), f.recent[n:]...)
	}
	f.next = to + 1
	close(f.notify)
	f.notify = make(chan struct{})
	f.mu.Unlock()
	return nil
}

// Since returns up to limit revisions after after, oldest first, from
// memory when the feed still holds them and from the index otherwise, with
// the head the feed has reached and a channel closed when it moves on. When
// there is nothing after after, wait on the channel.
func (f *Feed) Since(after int64, limit int) ([]*Entry, int64, <-chan struct{}, error) {
	f.mu.Lock()
	head, wake := f.next-1, f.notify
	var out []*Entry
	if n := len(f.recent); n > 0 && after+1 >= f.recent[0].Info.Revision {
		i := int(after + 1 - f.recent[0].Info.Revision)
		if i < n {
			out = append(out, f.recent[i:min(n, i+limit)]...)
		}
		f.mu.Unlock()
		return out, head, wake, nil
	}
	f.mu.Unlock()
	// Behind what memory holds: serve from history.
	for rev := after + 1; rev <= head && len(out) < limit; rev++ {
		ri, err := f.repo.Revision(rev)
		if err != nil {
			return nil, 0, nil, err
		}
		b, err := json.Marshal(Event(ri, nil))
		if err != nil {
			return nil, 0, nil, err
		}
		out = append(out, &Entry{Info: ri, JSON: b})
	}
	return out, head, wake, nil
}
