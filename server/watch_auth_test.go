package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
)

// sseEvent is one Server-Sent Event of a watch stream.
type sseEvent struct {
	ID, Name, Data string
}

// openWatch opens GET /v1/repos/default/watch?query with token and returns
// its events, read in a goroutine; the channel closes when the stream ends.
func openWatch(t *testing.T, ts *testServer, token, query string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL()+"/v1/repos/default/watch?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("watch: status %d", resp.StatusCode)
	}
	events := make(chan sseEvent, 1000)
	go func() {
		defer close(events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Name != "" {
					events <- ev
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
	return events
}

// nextEvent returns the next event that is not a progress event, failing
// after timeout or when the stream ends.
func nextEvent(t *testing.T, events <-chan sseEvent, timeout time.Duration) sseEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			if ev.Name != "progress" {
				return ev
			}
		case <-deadline:
			t.Fatalf("no event within %s", timeout)
		}
	}
}

// TestWatchEndsWithItsToken: a watch stream (on main or on a transaction's
// branch) whose token is revoked or expires ends with a close event naming
// why and the id to resume from, and sends nothing written after.
func TestWatchEndsWithItsToken(t *testing.T) {
	revoke := func(t *testing.T, ts *testServer, tok wire.CreatedToken) {
		ts.mustDo(t, ok, http.MethodDelete, "/v1/tokens/"+tok.ID, ts.admin, nil)
	}
	expire := func(t *testing.T, ts *testServer, tok wire.CreatedToken) {
		time.Sleep(time.Until(*tok.ExpiresAt) + 10*time.Millisecond)
	}
	for _, tc := range []struct {
		name      string
		expiresIn string
		onTxn     bool
		end       func(*testing.T, *testServer, wire.CreatedToken)
		// idle waits for the close before the next write: an idle stream
		// must notice on its own.
		idle   bool
		reason string
	}{
		{name: "revoked/main", end: revoke, reason: "token revoked"},
		{name: "revoked/txn", onTxn: true, end: revoke, reason: "token revoked"},
		{name: "revoked idle/main", end: revoke, idle: true, reason: "token revoked"},
		{name: "expired/main", expiresIn: "2s", end: expire, reason: "token expired"},
		{name: "expired/txn", expiresIn: "2s", onTxn: true, end: expire, reason: "token expired"},
		{name: "expired idle/txn", expiresIn: "2s", onTxn: true, end: expire, idle: true, reason: "token expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t)
			tok := ts.createToken(t, wire.CreateTokenRequest{Name: "watcher", Scopes: []string{"read"}, ExpiresIn: tc.expiresIn})
			query, write := "prefix=app/", func(key, value string) { ts.put(t, ts.admin, key, value) }
			if tc.onTxn {
				id := beginTxn(t, ts, ts.admin)
				query = "branch=txn/" + id
				write = func(key, value string) {
					ts.mustDo(t, ok, http.MethodPut, "/v1/repos/default/txns/"+id+"/kv/"+key, ts.admin, []byte(value))
				}
			}
			events := openWatch(t, ts, tok.Secret, query)
			write("app/m1", "a")
			first := nextEvent(t, events, 5*time.Second)
			if first.Name != "revision" || !strings.Contains(first.Data, "app/m1") {
				t.Fatalf("first event %+v, want the revision of app/m1", first)
			}

			tc.end(t, ts, tok)
			if !tc.idle {
				write("app/m2", "b")
			}
			ev := nextEvent(t, events, 5*time.Second)
			if ev.Name != "close" {
				t.Fatalf("after the token ended: %+v, want close", ev)
			}
			var c wire.WatchClose
			mustJSON(t, []byte(ev.Data), &c)
			if c.Reason != tc.reason || c.Resume != first.ID || c.Retry {
				t.Errorf("close %+v, want reason %q and resume %s, no retry", c, tc.reason, first.ID)
			}
			if tc.idle {
				write("app/m2", "b")
			}
			for ev := range events {
				t.Errorf("event after close: %+v", ev)
			}
		})
	}
}

// TestLongPollEndsWithItsToken: a long poll (GET commits with wait) whose
// token is revoked or expires while it waits answers 401, not the
// revisions written since.
func TestLongPollEndsWithItsToken(t *testing.T) {
	for _, tc := range []struct {
		name      string
		expiresIn string
		code      string
	}{
		{name: "revoked", code: "token_revoked"},
		{name: "expired", expiresIn: "1500ms", code: "token_expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t)
			tok := ts.createToken(t, wire.CreateTokenRequest{Name: "poller", Scopes: []string{"read"}, ExpiresIn: tc.expiresIn})
			head := ts.put(t, ts.admin, "app/m1", "a")
			type answer struct {
				status int
				body   []byte
				err    error
			}
			req, err := http.NewRequest(http.MethodGet, ts.URL()+"/v1/repos/default/commits?after="+strconv.FormatInt(head, 10)+"&wait=20s", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tok.Secret)
			done := make(chan answer, 1)
			go func() {
				resp, err := ts.client.Do(req)
				if err != nil {
					done <- answer{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				done <- answer{resp.StatusCode, b, err}
			}()
			if tc.expiresIn == "" {
				time.Sleep(300 * time.Millisecond) // let the poll start waiting
				ts.mustDo(t, ok, http.MethodDelete, "/v1/tokens/"+tok.ID, ts.admin, nil)
			} else {
				time.Sleep(time.Until(*tok.ExpiresAt) + 10*time.Millisecond)
			}
			ts.put(t, ts.admin, "app/m2", "b")
			select {
			case a := <-done:
				if a.err != nil {
					t.Fatalf("long poll: %v", a.err)
				}
				if a.status != http.StatusUnauthorized {
					t.Fatalf("long poll: status %d, want 401: %s", a.status, a.body)
				}
				var e wire.ErrorResponse
				if err := json.Unmarshal(a.body, &e); err != nil || e.Error.Code != tc.code {
					t.Errorf("long poll: %s, want code %s", a.body, tc.code)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("long poll still waiting 5s after its token ended")
			}
		})
	}
}
