package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/watch"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	ID, Name string
	Data     string
}

// sseStream reads events from a watch in a goroutine.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

func (e *txnEnv) watch(user, query string, header map[string]string) *sseStream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+repoPath+"/watch?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+user)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		cancel()
		e.t.Fatalf("watch: status %d", resp.StatusCode)
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent, 100000), cancel: cancel}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Name != "" {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.Name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.Data = line[6:]
			}
		}
	}()
	e.t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event of the given names, failing after timeout.
func (s *sseStream) next(t *testing.T, timeout time.Duration, names ...string) sseEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("stream ended while waiting for %v", names)
			}
			for _, n := range names {
				if ev.Name == n {
					return ev
				}
			}
		case <-deadline:
			t.Fatalf("no %v event within %s", names, timeout)
		}
	}
}

func revisionOf(t *testing.T, ev sseEvent) wire.WatchEvent {
	t.Helper()
	var we wire.WatchEvent
	if err := json.Unmarshal([]byte(ev.Data), &we); err != nil {
		t.Fatalf("event data %q: %v", ev.Data, err)
	}
	return we
}

func TestWatchReplayResumeAndLive(t *testing.T) {
	e := newTxnEnv(t)
	for i := 1; i <= 5; i++ {
		e.must("alice", "PUT", fmt.Sprintf("%s/kv/k%d", repoPath, i), "v", nil, 200)
	}
	s := e.watch("bob", "from=0", nil)
	for i := 1; i <= 5; i++ {
		ev := s.next(t, 5*time.Second, "revision")
		we := revisionOf(t, ev)
		if ev.ID != fmt.Sprint(i) || we.Revision != int64(i) || len(we.Changes) != 1 || we.Changes[0].Key != fmt.Sprintf("k%d", i) || we.Changes[0].Op != "put" || we.Author != "alice" {
			t.Fatalf("event %d: id %s %+v", i, ev.ID, we)
		}
	}
	e.must("alice", "DELETE", repoPath+"/kv/k1", nil, nil, 200)
	we := revisionOf(t, s.next(t, 5*time.Second, "revision"))
	if we.Revision != 6 || we.Changes[0].Op != "delete" {
		t.Errorf("live event: %+v", we)
	}
	// Resume with Last-Event-ID: only what came after.
	r := e.watch("bob", "", map[string]string{"Last-Event-ID": "4"})
	for _, want := range []int64{5, 6} {
		if got := revisionOf(t, r.next(t, 5*time.Second, "revision")).Revision; got != want {
			t.Fatalf("resumed event %d, want %d", got, want)
		}
	}
}

// TestWatchFromHeader: a watch of main says in X-Gitstate-Watch-From the
// revision its events follow (the head when it starts from now, else the
// one asked for), so that a client that loses the stream before its first
// event can resume without a gap; a branch's watch has no revision to say.
func TestWatchFromHeader(t *testing.T) {
	e := newTxnEnv(t)
	for i := 1; i <= 3; i++ {
		e.must("alice", "PUT", fmt.Sprintf("%s/kv/k%d", repoPath, i), "v", nil, 200)
	}
	var tx wire.Txn
	e.must("alice", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
	tests := []struct {
		name, query string
		header      map[string]string
		want        string
	}{
		{name: "from now", want: "3"},
		{name: "from", query: "from=1", want: "1"},
		{name: "from 0", query: "from=0", want: "0"},
		{name: "Last-Event-ID", header: map[string]string{"Last-Event-ID": "2"}, want: "2"},
		{name: "branch", query: "branch=txn/" + tx.ID, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := e.watch("bob", tt.query, tt.header)
			defer s.close()
			if got := s.resp.Header.Get(wire.HeaderWatchFrom); got != tt.want {
				t.Errorf("%s: %q, want %q", wire.HeaderWatchFrom, got, tt.want)
			}
		})
	}
}

func TestWatchPrefixAndProgress(t *testing.T) {
	e := newTxnEnv(t)
	s := e.watch("bob", "from=0&prefix=apps/web/&progress=1s", nil)
	e.must("alice", "PUT", repoPath+"/kv/apps/api/x", "1", nil, 200)
	e.must("alice", "POST", repoPath+"/commits", wire.CommitRequest{Ops: []wire.Op{
		{Op: "put", Key: "apps/web/a", Value: ptr("1")}, {Op: "put", Key: "apps/api/y", Value: ptr("2")}}}, nil, 200)
	e.must("alice", "PUT", repoPath+"/kv/other", "1", nil, 200)
	ev := s.next(t, 5*time.Second, "revision")
	we := revisionOf(t, ev)
	if we.Revision != 2 || len(we.Changes) != 1 || we.Changes[0].Key != "apps/web/a" {
		t.Errorf("filtered event: %+v", we)
	}
	// Revision 3 touches nothing under the prefix: a progress event says
	// the watcher is past it.
	p := s.next(t, 5*time.Second, "progress")
	var pr wire.WatchProgress
	json.Unmarshal([]byte(p.Data), &pr)
	if p.ID != "3" || pr.Revision != 3 {
		t.Errorf("progress after filtered revisions: id %s %+v", p.ID, pr)
	}
	// And one on the timer.
	s.next(t, 5*time.Second, "progress")
}

func TestWatchSlowWatcherMissesNothing(t *testing.T) {
	e := newTxnEnv(t)
	const n = 300
	// A watcher that reads nothing while the writes happen.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+repoPath+"/watch?from=0", nil)
	req.Header.Set("Authorization", "Bearer bob")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				e.must("alice", "PUT", fmt.Sprintf("%s/kv/w/%03d", repoPath, i), strings.Repeat("x", 2000), nil, 200)
			}
		}()
	}
	wg.Wait()
	sc := bufio.NewScanner(resp.Body)
	next := int64(1)
	for sc.Scan() && next <= n {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			if id != fmt.Sprint(next) {
				t.Fatalf("event id %s, want %d", id, next)
			}
			next++
		}
	}
	if next != n+1 {
		t.Fatalf("received %d of %d revisions", next-1, n)
	}
}

func TestWatchTxnBranch(t *testing.T) {
	e := newTxnEnv(t)
	var tx wire.Txn
	e.must("alice", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
	s := e.watch("bob", "branch=txn/"+tx.ID, nil)
	e.must("alice", "PUT", repoPath+"/txns/"+tx.ID+"/kv/a", "1", nil, 200)
	e.must("alice", "PUT", repoPath+"/txns/"+tx.ID+"/kv/b", "2", nil, 200)
	for _, key := range []string{"a", "b"} {
		ev := s.next(t, 5*time.Second, "revision")
		we := revisionOf(t, ev)
		if len(we.Changes) != 1 || we.Changes[0].Key != key || we.Revision != 0 || we.Commit == "" {
			t.Fatalf("branch event: %+v", we)
		}
		// A branch commit has no revision number: the field is left
		// out, as openapi.yaml says, rather than sent as 0.
		if strings.Contains(ev.Data, `"revision"`) {
			t.Errorf("branch event names a revision: %s", ev.Data)
		}
	}
	e.must("alice", "POST", repoPath+"/txns/"+tx.ID+"/commit", nil, nil, 200)
	ev := s.next(t, 5*time.Second, "close")
	// The transaction's end is the stream's: nothing to retry.
	if !strings.Contains(ev.Data, "committed") || strings.Contains(ev.Data, `"retry"`) {
		t.Errorf("close event: %s", ev.Data)
	}
}

// TestWatchTxnBranchResume checks where a watch of a transaction's branch
// resumes: after the commit from or Last-Event-ID names, from the start
// with 0 or the base; a resume point that is not a commit id is refused
// with 400 invalid_revision, and one that is not a commit of the branch
// (main's, made up, or one a rebase replaced) with 404
// revision_not_found, before any stream starts, instead of replaying the
// whole transaction.
func TestWatchTxnBranchResume(t *testing.T) {
	e := newTxnEnv(t)
	e.must("alice", "PUT", repoPath+"/kv/m", "1", nil, 200)
	var tx wire.Txn
	e.must("alice", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
	tp := repoPath + "/txns/" + tx.ID
	var onMain wire.WriteResult // a commit of main after the base
	e.must("alice", "PUT", repoPath+"/kv/m", "2", &onMain, 200)
	var first, second wire.WriteResult
	e.must("alice", "PUT", tp+"/kv/a", "1", &first, 200)
	e.must("alice", "PUT", tp+"/kv/b", "2", &second, 200)
	q := "branch=txn/" + tx.ID

	for _, c := range []struct {
		name, from string
		want       []string // the keys of the events, in order
	}{
		{"no resume point", "", []string{"a", "b"}},
		{"0", "0", []string{"a", "b"}},
		{"the base", tx.BaseCommit, []string{"a", "b"}},
		{"the first commit", first.Commit, []string{"b"}},
		{"the first commit, upper case", strings.ToUpper(first.Commit), []string{"b"}},
	} {
		for _, header := range []bool{false, true} {
			query, h := q, map[string]string(nil)
			switch {
			case c.from == "":
			case header:
				h = map[string]string{"Last-Event-ID": c.from}
			default:
				query += "&from=" + c.from
			}
			s := e.watch("bob", query, h)
			var got []string
			for range c.want {
				we := revisionOf(t, s.next(t, 5*time.Second, "revision"))
				got = append(got, we.Changes[0].Key)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("%s (header %v): events %v, want %v", c.name, header, got, c.want)
			}
			s.close()
		}
	}

	// What the events' ids are: resuming from the last one sends nothing
	// until the branch moves.
	s := e.watch("bob", q, map[string]string{"Last-Event-ID": second.Commit})
	e.must("alice", "PUT", tp+"/kv/c", "3", nil, 200)
	if we := revisionOf(t, s.next(t, 5*time.Second, "revision")); we.Changes[0].Key != "c" {
		t.Errorf("resumed from the head: first event %+v, want c", we)
	}
	s.close()

	refused := func(from string, status int, code string) {
		t.Helper()
		for _, header := range []bool{false, true} {
			path := repoPath + "/watch?" + q + "&from=" + url.QueryEscape(from)
			req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
			if header {
				req, _ = http.NewRequest("GET", e.srv.URL+repoPath+"/watch?"+q, nil)
				req.Header.Set("Last-Event-ID", from)
			}
			req.Header.Set("Authorization", "Bearer bob")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var er wire.ErrorResponse
			json.NewDecoder(resp.Body).Decode(&er)
			resp.Body.Close()
			if resp.StatusCode != status || er.Error.Code != code {
				t.Errorf("resume from %q (header %v): %d %+v, want %d %s", from, header, resp.StatusCode, er.Error, status, code)
			}
		}
	}
	for _, from := range []string{"garbage", "1234567", "3", "-1", first.Commit[:12], first.Commit + "0"} {
		refused(from, 400, "invalid_revision")
	}
	for _, from := range []string{onMain.Commit, strings.Repeat("ab", 20)} {
		refused(from, 404, "revision_not_found")
	}
	// A rebase replaces the branch's commits: the old ids are no resume
	// point any more.
	e.must("alice", "POST", tp+"/rebase", nil, nil, 200)
	refused(first.Commit, 404, "revision_not_found")
}

// TestWatchShutdownRetry checks that a stream the server ends as it shuts
// down, on main and on a transaction's branch, says so with retry: a
// client reconnects from resume.
func TestWatchShutdownRetry(t *testing.T) {
	e := newTxnEnv(t)
	var tx wire.Txn
	e.must("alice", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
	e.must("alice", "PUT", repoPath+"/kv/a", "1", nil, 200)
	main := e.watch("bob", "from=0", nil)
	branch := e.watch("bob", "branch=txn/"+tx.ID, nil)
	main.next(t, 5*time.Second, "revision")
	time.Sleep(100 * time.Millisecond) // the branch's stream is waiting too
	e.hub.Close()
	for name, s := range map[string]*sseStream{"main": main, "branch": branch} {
		ev := s.next(t, 5*time.Second, "close")
		var c wire.WatchClose
		if err := json.Unmarshal([]byte(ev.Data), &c); err != nil {
			t.Fatal(err)
		}
		if !c.Retry || !strings.HasPrefix(c.Reason, "server shutting down") || (name == "main" && c.Resume != "1") {
			t.Errorf("%s: close %+v, want retry from where it was", name, c)
		}
	}
}

// TestWatchUnknownTxn checks that watching the branch of a transaction that
// does not exist is refused as every other route refuses it, before any
// stream starts.
func TestWatchUnknownTxn(t *testing.T) {
	e := newTxnEnv(t)
	for _, branch := range []string{"txn/nosuch", "txn/NOT-AN-ID", "txn/"} {
		if status, code := e.do("bob", "GET", repoPath+"/watch?branch="+branch, nil, nil); status != 404 || code != "txn_not_found" {
			t.Errorf("watch %s: %d %q, want 404 txn_not_found", branch, status, code)
		}
	}
}

// TestWatchNegativeRevision: a watch or a long poll from a negative
// revision, and a transaction based on one, are refused as on every route:
// 400 invalid_revision.
func TestWatchNegativeRevision(t *testing.T) {
	e := newTxnEnv(t)
	for _, tt := range []struct {
		name, path string
		body       any
	}{
		{"watch", repoPath + "/watch?from=-1", nil},
		{"long poll", repoPath + "/commits?after=-1&wait=1s", nil},
		{"transaction base", repoPath + "/txns", map[string]any{"base": -1}},
	} {
		method := "GET"
		if tt.body != nil {
			method = "POST"
		}
		if status, code := e.do("alice", method, tt.path, tt.body, nil); status != 400 || code != "invalid_revision" {
			t.Errorf("%s: %d %q, want 400 invalid_revision", tt.name, status, code)
		}
	}
}

func TestLongPoll(t *testing.T) {
	e := newTxnEnv(t)
	e.must("alice", "PUT", repoPath+"/kv/a", "1", nil, 200)
	var list wire.CommitList
	// A revision after 0 exists: answered at once.
	start := time.Now()
	e.must("bob", "GET", repoPath+"/commits?after=0&wait=30s", nil, &list, 200)
	if len(list.Commits) != 1 || list.Commits[0].Revision != 1 || time.Since(start) > 5*time.Second {
		t.Fatalf("immediate: %+v", list)
	}
	// None after 1: waits for the next commit.
	done := make(chan wire.CommitList)
	go func() {
		var l wire.CommitList
		e.must("bob", "GET", repoPath+"/commits?after=1&wait=30s", nil, &l, 200)
		done <- l
	}()
	time.Sleep(200 * time.Millisecond)
	e.must("alice", "PUT", repoPath+"/kv/b", "2", nil, 200)
	select {
	case l := <-done:
		if len(l.Commits) != 1 || l.Commits[0].Revision != 2 {
			t.Errorf("woken: %+v", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll not woken by a commit")
	}
	// Nothing: empty at the timeout, with the head to move past.
	e.must("bob", "GET", repoPath+"/commits?after=2&wait=300ms", nil, &list, 200)
	if len(list.Commits) != 0 || list.Revision != 2 {
		t.Errorf("timeout: %+v", list)
	}
	if status, code := e.do("bob", "GET", repoPath+"/commits?after=2&wait=forever", nil, nil); status != 400 || code != "invalid_request" {
		t.Errorf("bad wait: %d %s", status, code)
	}
}

// TestPrefixLimitedTokenMovesRedacted checks that a token limited to a
// prefix is never shown the name of a key outside it: a move from outside
// reads as a put, a move out as a delete, with the moves' trailers (and
// the subject gitstate wrote for them) left out, in history and in the
// watch alike. A move inside the prefix stays a move.
func TestPrefixLimitedTokenMovesRedacted(t *testing.T) {
	st, err := storage.Open(context.Background(), t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hub := watch.NewHub(st, watch.Options{})
	srv := httptest.NewServer(api.New(api.Options{Store: st, Auth: testAuth, Watch: hub, WatchProgress: time.Hour}))
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
		st.Close()
	})
	ts := &testServer{url: srv.URL, store: st}
	ts.put(t, "team-b/svc.yaml", "v")                                                                                                     // 1
	ts.commit(t, wire.CommitRequest{Ops: []wire.Op{{Op: "move", From: "team-b/svc.yaml", To: "team-a/svc.yaml"}}})                        // 2: in
	ts.put(t, "team-a/x", "x")                                                                                                            // 3
	ts.commit(t, wire.CommitRequest{Message: "rename", Ops: []wire.Op{{Op: "move", From: "team-a/x", To: "team-a/y"}}})                   // 4: inside
	ts.commit(t, wire.CommitRequest{Message: "hand back", Ops: []wire.Op{{Op: "move", From: "team-a/svc.yaml", To: "team-b/back.yaml"}}}) // 5: out

	// What team-a sees of revisions 2 to 5.
	want := map[int64]struct {
		subject string
		change  wire.Change
		trailer bool // the message keeps its move trailers
	}{
		2: {"put team-a/svc.yaml", wire.Change{Key: "team-a/svc.yaml", Op: "put", ETag: blobID("v")}, false},
		3: {"put team-a/x", wire.Change{Key: "team-a/x", Op: "put", ETag: blobID("x")}, false},
		4: {"rename", wire.Change{Key: "team-a/y", Op: "move", From: "team-a/x", ETag: blobID("x")}, true},
		5: {"hand back", wire.Change{Key: "team-a/svc.yaml", Op: "delete"}, false},
	}
	check := func(where string, rev int64, raw []byte, msg string, changes []wire.Change) {
		t.Helper()
		w, ok := want[rev]
		if !ok {
			t.Errorf("%s: revision %d shown to team-a", where, rev)
			return
		}
		if strings.Contains(string(raw), "team-b") {
			t.Errorf("%s: revision %d names a key outside team-a/: %s", where, rev, raw)
		}
		if subject, _, _ := strings.Cut(msg, "\n"); subject != w.subject {
			t.Errorf("%s: revision %d subject %q, want %q", where, rev, subject, w.subject)
		}
		if got := strings.Contains(msg, storage.TrailerMoveFrom+": team-a/x\n"+storage.TrailerMoveTo+": team-a/y"); got != w.trailer {
			t.Errorf("%s: revision %d message %q: move trailers %v, want %v", where, rev, msg, got, w.trailer)
		}
		if len(changes) != 1 || changes[0] != w.change {
			t.Errorf("%s: revision %d changes %+v, want [%+v]", where, rev, changes, w.change)
		}
	}

	r := ts.send(t, request{method: "GET", target: "/v1/repos/default/commits", token: teamAToken})
	var log wire.CommitList
	r.ok(t, 200, &log)
	if len(log.Commits) != 4 {
		t.Errorf("history shows %d revisions, want 4", len(log.Commits))
	}
	for _, c := range log.Commits {
		check("history", c.Revision, mustMarshal(t, c), c.Message, c.Changes)
	}
	for rev := range want {
		r := ts.send(t, request{method: "GET", target: "/v1/repos/default/commits/" + strconv.FormatInt(rev, 10), token: teamAToken})
		var ci wire.CommitInfo
		r.ok(t, 200, &ci)
		check("commit", rev, r.body, ci.Message, ci.Changes)
	}
	s := (&txnEnv{t: t, srv: srv}).watch(teamAToken, "from=0", nil)
	for range want {
		ev := s.next(t, 5*time.Second, "revision")
		we := revisionOf(t, ev)
		check("watch", we.Revision, []byte(ev.Data), we.Message, we.Changes)
	}

	// An unrestricted token sees the moves whole.
	var ci wire.CommitInfo
	ts.send(t, request{method: "GET", target: "/v1/repos/default/commits/2"}).ok(t, 200, &ci)
	if len(ci.Changes) != 1 || ci.Changes[0].From != "team-b/svc.yaml" || !strings.HasPrefix(ci.Message, "move team-b/svc.yaml to team-a/svc.yaml\n") ||
		!strings.Contains(ci.Message, storage.TrailerMoveFrom+": team-b/svc.yaml") {
		t.Errorf("administrator's revision 2: %+v", ci)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
