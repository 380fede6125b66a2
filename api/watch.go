package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/txn"
	"github.com/gitstate/gitstate/watch"
)

// sse writes Server-Sent Events.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	// buf frames one event at a time and is reused across events: with
	// 1,000 watchers every commit is 1,000 events, and building each in a
	// fresh strings.Builder (then copying it to bytes) was most of what a
	// server allocated while streaming.
	buf []byte
}

// sseKeep is the largest frame buffer a stream keeps between events; a
// larger one (an event of a commit with many changes) is dropped after
// use, so that an idle stream holds little.
const sseKeep = 64 << 10

// event writes an event named name with id (none when empty).
func (e *sse) event(name, id string, data []byte) error {
	b := e.buf[:0]
	if id != "" {
		b = append(append(append(b, "id: "...), id...), '\n')
	}
	return e.send(b, name, data)
}

// revision writes a revision event, its id the revision.
func (e *sse) revision(rev int64, data []byte) error {
	b := strconv.AppendInt(append(e.buf[:0], "id: "...), rev, 10)
	return e.send(append(b, '\n'), "revision", data)
}

// send finishes the frame b with the event's name and data, on one line
// (the JSON the streams send has no newline), and writes it.
func (e *sse) send(b []byte, name string, data []byte) error {
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	_, err := e.w.Write(b)
	if cap(b) <= sseKeep {
		e.buf = b
	} else {
		e.buf = nil
	}
	return err
}

func (e *sse) flush() error { return e.rc.Flush() }

// keepFor returns the filter of changes a watcher sees: under prefix, and
// within the token's prefixes. Nil means everything.
func keepFor(p *Principal, prefix string) func(string) bool {
	if prefix == "" && (p == nil || p.Unrestricted()) {
		return nil
	}
	return func(key string) bool {
		return strings.HasPrefix(key, prefix) && (p == nil || p.CanKey(key))
	}
}

// seeFor returns the keys p may read, whose names it may be shown (in a
// move's other end, in a commit's trailers: watch.Redact). Nil means every
// key.
func seeFor(p *Principal) func(string) bool {
	if p == nil || p.Unrestricted() {
		return nil
	}
	return p.CanKey
}

// tokenRecheck is how often an idle stream checks that its token still
// admits requests; a busy one also checks before each batch it writes.
const tokenRecheck = time.Second

// tokenGuard ends a stream (or a long poll) whose token is revoked or
// expires while it runs. A nil *tokenGuard checks nothing: the server
// has no TokenChecker, or the request no principal.
type tokenGuard struct {
	checker TokenChecker
	p       *Principal
	tick    *time.Ticker
}

// guardToken returns the guard of p's stream; the caller must stop it.
func (s *Server) guardToken(p *Principal) *tokenGuard {
	c, ok := s.opts.Auth.(TokenChecker)
	if !ok || p == nil {
		return nil
	}
	return &tokenGuard{checker: c, p: p, tick: time.NewTicker(tokenRecheck)}
}

// recheck fires every tokenRecheck (never for a nil guard).
func (g *tokenGuard) recheck() <-chan time.Time {
	if g == nil {
		return nil
	}
	return g.tick.C
}

// check returns nil while the token admits requests, else why not (an
// error of kind KindUnauthorized).
func (g *tokenGuard) check() error {
	if g == nil {
		return nil
	}
	return g.checker.CheckToken(g.p)
}

func (g *tokenGuard) stop() {
	if g != nil {
		g.tick.Stop()
	}
}

// closeForToken ends a stream whose token stopped admitting requests (err,
// from tokenGuard.check) with a close event naming why, and the id a
// client with a valid token resumes from.
func closeForToken(out *sse, err error, resume string) {
	reason := "token no longer valid"
	if ge, ok := errors.AsType[*gitstate.Error](err); ok {
		switch ge.Code {
		case "token_revoked":
			reason = "token revoked"
		case "token_expired":
			reason = "token expired"
		}
	}
	out.event("close", "", mustJSON(wire.WatchClose{Reason: reason, Resume: resume}))
	out.flush()
}

// watch streams a repo's revisions (or a transaction branch's commits) as
// Server-Sent Events.
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	repo, err := s.repoOf(r, ScopeRead)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.opts.Watch == nil {
		s.writeError(w, r, gitstate.Errorf(gitstate.KindNotFound, "not_found", "watch is not enabled"))
		return
	}
	q := r.URL.Query()
	prefix := q.Get("prefix")
	if err := storage.ValidatePrefix(prefix); err != nil {
		s.writeError(w, r, err)
		return
	}
	interval := s.opts.WatchProgress
	if v := q.Get("progress"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			s.writeError(w, r, badRequest("progress must be a duration of at least 1s"))
			return
		}
		interval = d
	}
	resume := r.Header.Get("Last-Event-ID")
	if resume == "" {
		resume = q.Get("from")
	}
	branch := q.Get("branch")
	if branch != "" && branch != storage.MainBranch && !strings.HasPrefix(branch, txn.BranchPrefix) {
		s.writeError(w, r, badRequest("branch must be main or txn/<id>"))
		return
	}
	id, onTxn := strings.CutPrefix(branch, txn.BranchPrefix)
	if onTxn {
		// An unknown transaction is refused as on every other route,
		// before the stream starts; one that ends while watched closes it.
		if err := s.checkTxn(r.Context(), repo, id); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	var last storage.Hash // a branch's resume point
	if onTxn {
		if last, err = s.branchResume(r.Context(), repo, id, resume); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	var from int64
	if (branch == "" || branch == storage.MainBranch) && resume != "" {
		if from, err = repo.ResolveRevision(resume); err != nil {
			s.writeError(w, r, err)
			return
		}
	} else if branch == "" || branch == storage.MainBranch {
		from = repo.Head().Revision
	}
	p := PrincipalOf(r)
	if s.opts.Streams != nil && p != nil {
		release, ok := s.opts.Streams.Acquire(p.TokenID)
		if !ok {
			s.writeError(w, r, gitstate.Errorf(gitstate.KindTooManyRequests, "too_many_streams", "this token has too many watch streams open"))
			return
		}
		defer release()
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	if !onTxn {
		// Where the stream starts: a client that started "from now" and
		// loses the stream before its first event resumes from here,
		// not from a later now.
		h.Set(wire.HeaderWatchFrom, strconv.FormatInt(from, 10))
	}
	w.WriteHeader(http.StatusOK)
	out := &sse{w: w, rc: http.NewResponseController(w)}
	if err := out.flush(); err != nil {
		return
	}
	keep, see := keepFor(p, prefix), seeFor(p)
	guard := s.guardToken(p)
	defer guard.stop()
	if onTxn {
		s.watchBranch(r, out, repo, id, last, keep, see, interval, guard)
		return
	}
	s.watchMain(r, out, repo, from, keep, see, interval, guard)
}

// watchMain streams main's revisions after from, each filtered by keep and
// shown as a caller who may read the keys see accepts sees it. It ends,
// before writing anything more, once guard finds the token invalid.
func (s *Server) watchMain(r *http.Request, out *sse, repo *storage.Repo, from int64, keep, see func(string) bool, interval time.Duration, guard *tokenGuard) {
	feed, err := s.opts.Watch.Feed(repo.Name())
	if err != nil {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	cursor := from
	for {
		entries, head, wake, err := feed.Since(cursor, 256)
		if err != nil {
			s.log.Warn("watch: reading revisions", "repo", repo.Name(), "err", err)
			out.event("close", "", mustJSON(wire.WatchClose{Reason: "server error; resume from the last id", Resume: strconv.FormatInt(cursor, 10), Retry: true}))
			return
		}
		// Every entry was committed before this check: none was made
		// after the token stopped admitting requests.
		if err := guard.check(); err != nil {
			closeForToken(out, err, strconv.FormatInt(cursor, 10))
			return
		}
		skipped := false
		for _, e := range entries {
			data, ok := e.For(keep, see)
			if !ok {
				skipped = true
				cursor = e.Info.Revision
				continue
			}
			if err := out.revision(e.Info.Revision, data); err != nil {
				return
			}
			skipped = false
			cursor = e.Info.Revision
		}
		if skipped {
			// Filtered-out revisions passed: say so, so that a client
			// resuming from here does not replay them.
			if out.event("progress", strconv.FormatInt(cursor, 10), mustJSON(wire.WatchProgress{Revision: cursor})) != nil {
				return
			}
		}
		if out.flush() != nil {
			return
		}
		if len(entries) > 0 && cursor < head {
			continue // more history to send
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.opts.Watch.Done():
			out.event("close", "", mustJSON(wire.WatchClose{Reason: "server shutting down; resume from the last id", Resume: strconv.FormatInt(cursor, 10), Retry: true}))
			out.flush()
			return
		case <-wake:
		case <-guard.recheck():
			if err := guard.check(); err != nil {
				closeForToken(out, err, strconv.FormatInt(cursor, 10))
				return
			}
		case <-tick.C:
			if err := guard.check(); err != nil {
				closeForToken(out, err, strconv.FormatInt(cursor, 10))
				return
			}
			if out.event("progress", strconv.FormatInt(cursor, 10), mustJSON(wire.WatchProgress{Revision: max(cursor, head)})) != nil || out.flush() != nil {
				return
			}
		}
	}
}

// branchResume returns the commit after which a watch of transaction id's
// branch resumes (from, or Last-Event-ID): none, for the whole
// transaction, when resume is empty or "0"; else resume, which must be a
// full commit id (400 invalid_revision) on the branch's first-parent line
// from its base to its head (404 revision_not_found: a commit of another
// branch, or one a rebase replaced). A resume point the branch does not
// have is refused rather than taken for its base, which would replay the
// whole transaction to a client that asked for what came after it.
func (s *Server) branchResume(ctx context.Context, repo *storage.Repo, id, resume string) (storage.Hash, error) {
	if resume == "" || resume == "0" {
		return storage.ZeroHash, nil
	}
	want, ok := storage.ParseHash(strings.ToLower(resume))
	if !ok {
		return storage.ZeroHash, gitstate.Errorf(gitstate.KindInvalid, "invalid_revision",
			"on a transaction's branch, from and Last-Event-ID must be the full commit id of an event (or 0 for the whole transaction): %q", resume)
	}
	head, t, err := s.opts.Txns.Head(ctx, repo.Name(), id)
	if err != nil {
		return storage.ZeroHash, err
	}
	base, _ := storage.ParseHash(t.BaseCommit)
	if want == base {
		return want, nil
	}
	for h, n := head, 0; !h.IsZero() && h != base && n < maxBranchCommits; n++ {
		if h == want {
			return want, nil
		}
		c, err := repo.ReadCommit(h)
		if err != nil {
			return storage.ZeroHash, fmt.Errorf("read commit %s of %s: %w", h, t.Branch(), err)
		}
		if len(c.Parents) == 0 {
			break
		}
		h = c.Parents[0]
	}
	return storage.ZeroHash, gitstate.Errorf(gitstate.KindNotFound, "revision_not_found",
		"commit %s is not on the branch of transaction %s (since its base; a rebase replaces its commits): watch without from or Last-Event-ID to replay the transaction", want, id)
}

// watchBranch streams the commits of a transaction's branch after the
// commit last (the whole transaction when zero), ending when the
// transaction closes, or once guard finds the token invalid.
func (s *Server) watchBranch(r *http.Request, out *sse, repo *storage.Repo, id string, last storage.Hash, keep, see func(string) bool, interval time.Duration, guard *tokenGuard) {
	ctx := r.Context()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var expires <-chan time.Time // when the transaction expires
	armed := false
	for {
		changed := repo.Changed()
		t, err := s.opts.Txns.Get(ctx, repo.Name(), id)
		if err != nil {
			out.event("close", "", mustJSON(wire.WatchClose{Reason: "no such transaction"}))
			return
		}
		head := repo.Backend().Ref("refs/heads/" + t.Branch())
		// The branch was read before this check: nothing on it was
		// written after the token stopped admitting requests.
		if err := guard.check(); err != nil {
			closeForToken(out, err, last.String())
			return
		}
		if t.Status != txn.Open || head.IsZero() {
			out.event("close", "", mustJSON(wire.WatchClose{Reason: "transaction " + string(t.Status)}))
			out.flush()
			return
		}
		if head != last {
			base, _ := storage.ParseHash(t.BaseCommit)
			commits, err := branchCommits(repo, head, last, base)
			if err != nil {
				return
			}
			for _, c := range commits {
				ev, err := commitEvent(ctx, repo, c, keep, see)
				if err != nil {
					return
				}
				if len(ev.Changes) > 0 {
					if out.event("revision", c.String(), mustJSON(ev)) != nil {
						return
					}
				}
			}
			last = head
			if out.flush() != nil {
				return
			}
		}
		if !armed {
			// The transaction expires at its time, not when the sweeper
			// removes its branch: wake then to close the stream.
			armed = true
			if d := time.Until(t.ExpiresAt) + time.Millisecond; d > 0 {
				timer := time.NewTimer(d)
				defer timer.Stop()
				expires = timer.C
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-expires:
		case <-s.opts.Watch.Done():
			out.event("close", "", mustJSON(wire.WatchClose{Reason: "server shutting down; resume from the last id", Resume: last.String(), Retry: true}))
			out.flush()
			return
		case <-changed:
		case <-guard.recheck():
			if err := guard.check(); err != nil {
				closeForToken(out, err, last.String())
				return
			}
		case <-tick.C:
			if err := guard.check(); err != nil {
				closeForToken(out, err, last.String())
				return
			}
			if out.event("progress", "", mustJSON(wire.WatchProgress{Revision: repo.Head().Revision})) != nil || out.flush() != nil {
				return
			}
		}
	}
}

// maxBranchCommits bounds the first-parent walk of a transaction's branch.
const maxBranchCommits = 10000

// branchCommits returns the first-parent commits from head back to (not
// including) stop or base, oldest first.
func branchCommits(repo *storage.Repo, head, stop, base storage.Hash) ([]storage.Hash, error) {
	var out []storage.Hash
	for h := head; !h.IsZero() && h != stop && h != base && len(out) < maxBranchCommits; {
		out = append(out, h)
		c, err := repo.ReadCommit(h)
		if err != nil {
			return nil, err
		}
		if len(c.Parents) == 0 {
			break
		}
		h = c.Parents[0]
	}
	slices.Reverse(out)
	return out, nil
}

// commitEvent describes a branch commit against its first parent, with
// the changes keep accepts, to a caller who may read the keys see accepts.
func commitEvent(ctx context.Context, repo *storage.Repo, h storage.Hash, keep, see func(string) bool) (wire.WatchEvent, error) {
	c, err := repo.ReadCommit(h)
	if err != nil {
		return wire.WatchEvent{}, err
	}
	var parent storage.Hash
	if len(c.Parents) > 0 {
		parent = c.Parents[0]
	}
	changes, err := repo.Diff(ctx, parent, h, "")
	if err != nil {
		return wire.WatchEvent{}, err
	}
	ev := wire.WatchEvent{Commit: h.String(), Author: c.Author.Name, Time: c.Author.When.UTC(), Message: watch.RedactMessage(c.Message, see), Changes: []wire.Change{}}
	for _, ch := range changes {
		if keep != nil && !keep(ch.Key) {
			continue
		}
		op := "put"
		var etag string
		if ch.Op == storage.Deleted {
			op = "delete"
		} else {
			etag = ch.To.Hash.String()
		}
		ev.Changes = append(ev.Changes, wire.Change{Key: ch.Key, Op: op, ETag: etag})
	}
	return ev, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", v, err))
	}
	return b
}
