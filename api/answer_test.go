package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
)

// connWriter is a ResponseWriter over a connection: it supports the write
// deadline and Flush, as net/http's does. With stall set, Flush waits for
// the deadline, as a write to a client that stopped reading would.
type connWriter struct {
	*httptest.ResponseRecorder
	deadline  time.Time
	deadlines []time.Time
	flushes   int
	stall     bool
}

func (w *connWriter) SetWriteDeadline(t time.Time) error {
	w.deadline = t
	w.deadlines = append(w.deadlines, t)
	return nil
}

func (w *connWriter) FlushError() error {
	w.flushes++
	if w.stall {
		time.Sleep(time.Until(w.deadline))
		return os.ErrDeadlineExceeded
	}
	w.ResponseRecorder.Flush()
	return nil
}

func testResult() *storage.Result {
	return &storage.Result{Revision: 42, Commit: storage.HashObject(storage.BlobObject, []byte("c")), Changed: true, Noted: true}
}

func answerRequest() *http.Request {
	r := httptest.NewRequest(http.MethodPut, "/v1/repos/default/kv/a", nil)
	return r.WithContext(contextWith(context.Background(), &reqInfo{id: "t"}))
}

func TestWriteAnswer(t *testing.T) {
	res := testResult()
	wantPut := string(appendWriteResult(nil, &wire.WriteResult{Revision: 42, Commit: res.Commit.String(), ETag: "e", Changed: true}))
	// What writeJSON wrote for a DELETE before.
	var enc strings.Builder
	json.NewEncoder(&enc).Encode(wire.DeleteResult{Revision: 42, Commit: res.Commit.String(), Changed: true})
	wantDelete := enc.String()
	for _, tc := range []struct {
		name   string
		delete bool
		// early: whether the committer's call sends the answer.
		early bool
		w     func() http.ResponseWriter
		s     *Server
		txn   bool
		noted bool
	}{
		{name: "from the committer", early: true, noted: true},
		{name: "a delete from the committer", early: true, noted: true, delete: true},
		{name: "a delete from the handler", early: false, noted: true, delete: true, w: func() http.ResponseWriter { return httptest.NewRecorder() }},
		{name: "no auditor, not noted", early: true, s: &Server{}},
		{name: "audit line not journaled", early: false, s: &Server{opts: Options{Auditor: nopAuditor{}}}},
		{name: "audit line journaled", early: true, noted: true, s: &Server{opts: Options{Auditor: nopAuditor{}}}},
		{name: "in a transaction", early: false, txn: true, noted: true},
		{name: "writer without a deadline", early: false, noted: true, w: func() http.ResponseWriter { return httptest.NewRecorder() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			if s == nil {
				s = &Server{}
			}
			var w http.ResponseWriter = &connWriter{ResponseRecorder: httptest.NewRecorder()}
			if tc.w != nil {
				w = tc.w()
			}
			r := answerRequest()
			tg := &target{s: s}
			if tc.txn {
				tg.txnID = "x"
			}
			b := &storage.Batch{}
			body := putAnswer("e")
			want := wantPut
			if tc.delete {
				body, want = deleteAnswer, wantDelete
			}
			a := s.answerWrite(w, r, tg, b, body)
			res := *res
			res.Noted = tc.noted
			if b.Published != nil {
				b.Published(&res)
			}
			sent := func() string {
				if cw, ok := w.(*connWriter); ok {
					return cw.Body.String()
				}
				return w.(*httptest.ResponseRecorder).Body.String()
			}
			if got := sent() != ""; got != tc.early {
				t.Fatalf("answered by the committer: %v, want %v", got, tc.early)
			}
			a.finish(&res)
			if got := sent(); got != want {
				t.Fatalf("answer %q, want %q", got, want)
			}
			if info := infoOf(r); info.revision != 42 || info.noted != tc.noted {
				t.Errorf("request recorded revision %d noted %v", info.revision, info.noted)
			}
			cw, ok := w.(*connWriter)
			if !ok || !tc.early {
				return
			}
			if cw.Code != http.StatusOK || cw.Header().Get("Content-Type") != "application/json" || cw.Header().Get("Content-Length") != strconv.Itoa(len(want)) {
				t.Errorf("status %d, headers %v", cw.Code, cw.Header())
			}
			if cw.flushes != 1 || len(cw.deadlines) != 2 || cw.deadlines[0].IsZero() || !cw.deadlines[1].IsZero() {
				t.Errorf("%d flushes, deadlines %v: want one flush within a deadline, then none", cw.flushes, cw.deadlines)
			}
		})
	}
}

// TestWriteAnswerStalledClient checks that a client that does not read its
// answers holds the committer for the answer's deadline at most.
func TestWriteAnswerStalledClient(t *testing.T) {
	cw := &connWriter{ResponseRecorder: httptest.NewRecorder(), stall: true}
	s := &Server{}
	b := &storage.Batch{}
	a := s.answerWrite(cw, answerRequest(), &target{s: s}, b, putAnswer("e"))
	a.timeout = 30 * time.Millisecond
	start := time.Now()
	b.Published(testResult())
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the committer waited %v for a stalled client", d)
	}
	if cw.flushes != 1 || !cw.deadlines[0].After(start) || cw.deadlines[0].After(start.Add(time.Second)) {
		t.Fatalf("flushes %d, deadlines %v", cw.flushes, cw.deadlines)
	}
	// The answer was started: the handler must not write another.
	n := cw.Body.Len()
	a.finish(testResult())
	if cw.Body.Len() != n {
		t.Fatal("the handler wrote a second answer")
	}
}

type nopAuditor struct{}

func (nopAuditor) Record(context.Context, AuditEvent) error { return errors.New("unused") }
