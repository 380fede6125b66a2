package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
)

// answerWriteTimeout bounds how long the committer waits to hand a write's
// answer to its connection. A client that reads its answers never makes it
// wait (the answer is a few hundred bytes into an empty socket buffer); one
// that stops reading while it pipelines writes (thousands of them, to fill
// the sockets' buffers) loses its connection instead of stalling everyone's
// commits for good. The bound also covers the committer's own scheduling
// between setting the deadline and writing: 20 ms was too short for a
// machine overloaded by a 1,000-watcher fan-out, where a PUT lost its
// connection (an EOF) with its commit made.
const answerWriteTimeout = time.Second

// writeAnswer is the answer to a direct write on a key (PUT, DELETE), sent
// by whichever comes first: the committer, the moment the write is
// published, or the handler once Write returns.
//
// Under load the handler's goroutine is woken with every other request of
// its commit group and waits to be scheduled: about a millisecond, on a
// two-core machine, of a PUT's ~9 ms with 64 writers. The committer has
// the answer then and sends it at once. The handler then only records
// what happened.
type writeAnswer struct {
	w http.ResponseWriter
	r *http.Request
	// body encodes the answer's JSON body, newline included.
	body func(*storage.Result) []byte
	// sent is set by the committer's call (before Write returns, so the
	// handler reads it after).
	sent bool
	// timeout is answerWriteTimeout; tests shorten it.
	timeout time.Duration
}

// answerWrite prepares the answer to a direct write of b, whose body is
// body's encoding of b's result. Unless t is a transaction's, b's
// Published hook sends it.
func (s *Server) answerWrite(w http.ResponseWriter, r *http.Request, t *target, b *storage.Batch, body func(*storage.Result) []byte) *writeAnswer {
	a := &writeAnswer{w: w, r: r, body: body, timeout: answerWriteTimeout}
	// A transaction's write goes on after the store's (its manager
	// records it); the answer must wait for all of it.
	if t.inTxn() {
		return a
	}
	noAudit := s.opts.Auditor == nil
	b.Published = func(res *storage.Result) {
		// The answer's first byte needs the request's audit line on
		// disk: journaled with the write (Noted), or recorded by the
		// handler, which would make the committer wait for the audit
		// log's disk.
		if noAudit || res.Noted {
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
	out := a.body(res)
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
	made(a.r, res)
}

// finish answers a write that succeeded with res, unless the committer
// did already.
func (a *writeAnswer) finish(res *storage.Result) {
	if a.sent {
		return
	}
	a.record(res)
	a.w.Header().Set("Content-Type", "application/json")
	a.w.WriteHeader(http.StatusOK)
	_, _ = a.w.Write(a.body(res))
}

// putAnswer encodes a PUT's answer: etag is the id of the value written.
func putAnswer(etag string) func(*storage.Result) []byte {
	return func(res *storage.Result) []byte {
		return appendWriteResult(make([]byte, 0, 192), &wire.WriteResult{
			Revision: res.Revision,
			Commit:   res.Commit.String(),
			ETag:     etag,
			Changed:  res.Changed,
		})
	}
}

// deleteAnswer encodes a DELETE's answer, as json.Encoder would.
func deleteAnswer(res *storage.Result) []byte {
	b, _ := json.Marshal(wire.DeleteResult{Revision: res.Revision, Commit: res.Commit.String(), Changed: res.Changed})
	return append(b, '\n')
}
