package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
)

// answerWriteTimeout bounds how long the committer waits to hand a write's
// answer to its connection. A client that reads its answers never makes it
// wait (the answer is a few hundred bytes into an empty socket buffer); one
// that stops reading while it pipelines writes loses its connection
// instead of stalling everyone's commits.
const answerWriteTimeout = 20 * time.Millisecond

// writeAnswer is the answer to a direct write on a key, sent by whichever
// comes first: the committer, the moment the write is published, or the
// handler once Write returns.
//
// Under load the handler's goroutine is woken with every other request of
// its commit group and waits to be scheduled: about a millisecond, on a
// two-core machine, of a PUT's ~9 ms with 64 writers. The committer has
// the answer then and sends it at once. The handler then only records
// what happened.
type writeAnswer struct {
	w    http.ResponseWriter
	r    *http.Request
	etag string
	// sent is set by the committer's call (before Write returns, so the
	// handler reads it after).
	sent bool
	// timeout is answerWriteTimeout; tests shorten it.
	timeout time.Duration
}

// answerWrite prepares the answer to a direct write of b: with etag, the
// id of the value written ("" for a delete). Unless t is a transaction's,
// b's Published hook sends it.
func (s *Server) answerWrite(w http.ResponseWriter, r *http.Request, t *target, b *storage.Batch, etag string) *writeAnswer {
	a := &writeAnswer{w: w, r: r, etag: etag, timeout: answerWriteTimeout}
	// A transaction's write goes on after the store's (its manager
	// records it); the answer must wait for all of it.
	if t.inTxn() {
		return a
	}
	audited := s.opts.Auditor == nil
	b.Published = func(res *storage.Result) {
		// The answer's first byte needs the request's audit line on
		// disk: journaled with the write (Noted), or recorded by the
		// handler, which would make the committer wait for the audit
		// log's disk.
		if audited || res.Noted {
			a.send(res)
		}
	}
	return a
}

// send writes the answer for res and flushes it to the connection, within
// a.timeout.
func (a *writeAnswer) send(res *storage.Result) {
	rc := http.NewResponseController(a.w)
	if rc.SetWriteDeadline(time.Now().Add(a.timeout)) != nil {
		return // no deadline, no early answer: the handler sends it
	}
	a.sent = true
	a.record(res)
	var buf [192]byte
	out := appendWriteResult(buf[:0], a.result(res))
	h := a.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	a.w.WriteHeader(http.StatusOK)
	_, _ = a.w.Write(out)
	// An error here leaves the connection broken: net/http closes it
	// after the handler.
	_ = rc.Flush()
	_ = rc.SetWriteDeadline(time.Time{})
}

// record gives the request's log and audit what the write did.
func (a *writeAnswer) record(res *storage.Result) {
	noted(a.r, res)
	if info := infoOf(a.r); info != nil {
		info.revision = res.Revision
	}
}

func (a *writeAnswer) result(res *storage.Result) *wire.WriteResult {
	return &wire.WriteResult{
		Revision: res.Revision,
		Commit:   res.Commit.String(),
		ETag:     a.etag,
		Changed:  res.Changed,
	}
}

// finish answers a write that succeeded with res, unless the committer
// did already.
func (a *writeAnswer) finish(res *storage.Result) {
	if a.sent {
		return
	}
	a.record(res)
	writeResult(a.w, a.result(res))
}
