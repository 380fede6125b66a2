package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/storage"
)

// recordingAuditor keeps the events it is given, as JSON.
type recordingAuditor struct {
	mu     sync.Mutex
	events []AuditEvent
	json   []string
}

func (a *recordingAuditor) Record(ctx context.Context, ev AuditEvent) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
	a.json = append(a.json, string(b))
	return nil
}

type fixedAuth struct{ p *Principal }

func (f fixedAuth) Authenticate(r *http.Request) (*Principal, error) {
	if r.Header.Get("Authorization") == "" {
		return nil, gitstate.Errorf(gitstate.KindUnauthorized, "unauthorized", "authentication required")
	}
	return f.p, nil
}

// TestAuditOfSecretReads: a read that sets secretRead is audited (a plain
// read is not), before its answer and without the value.
func TestAuditOfSecretReads(t *testing.T) {
	rec := &recordingAuditor{}
	s := New(Options{Auditor: rec, Auth: fixedAuth{&Principal{TokenID: "t1", Name: "ops", Scopes: []Scope{ScopeSecretsRead}, Repos: []string{"*"}}}})
	const secret = "S3CRET-VALUE-e1f0"
	serve := func(secretRead bool) http.Handler {
		return s.wrap(Route{Method: http.MethodGet, Path: "/v1/repos/{repo}/secrets/{key}", Action: "secret.get", handler: func(w http.ResponseWriter, r *http.Request) {
			if err := authorize(r, ScopeSecretsRead, "default", "db/password"); err != nil {
				s.writeError(w, r, err)
				return
			}
			infoOf(r).secretRead = secretRead
			n := len(rec.events)
			w.Write([]byte(secret))
			if secretRead && len(rec.events) != n+1 {
				t.Error("the secret read was not audited before its answer")
			}
		}})
	}
	for _, secretRead := range []bool{true, false} {
		srv := httptest.NewServer(serve(secretRead))
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Authorization", "Bearer x")
		req.Header.Set("X-Request-Id", "req-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if string(b) != secret {
			t.Fatalf("answer %q", b)
		}
	}
	if len(rec.events) != 1 {
		t.Fatalf("%d events, want the secret read only: %v", len(rec.events), rec.json)
	}
	ev := rec.events[0]
	if ev.Action != "secret.get" || ev.Status != http.StatusOK || ev.Principal.Name != "ops" || ev.Repo != "default" ||
		len(ev.Keys) != 1 || ev.Keys[0] != "db/password" || ev.RequestID != "req-secret" || ev.Time.IsZero() {
		t.Errorf("event %+v", ev)
	}
	if strings.Contains(rec.json[0], secret) {
		t.Errorf("the audit event holds the value: %s", rec.json[0])
	}

	// Denied (401) reads are audited too.
	srv := httptest.NewServer(serve(true))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(rec.events) != 2 || rec.events[1].Status != http.StatusUnauthorized || rec.events[1].Principal != nil {
		t.Errorf("a denied read: %v", rec.json)
	}
}

// TestAuditRevisionOfUnchangedWrite: an auditor that records every line
// itself (not a LineAuditor) gets a revision only from a write that made
// one; one that changed nothing answers main's revision and made none.
func TestAuditRevisionOfUnchangedWrite(t *testing.T) {
	st, err := storage.Open(context.Background(), t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec := &recordingAuditor{}
	srv := httptest.NewServer(New(Options{Store: st, Auditor: rec}))
	defer srv.Close()
	put := func(path, body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT %s: %d", path, resp.StatusCode)
		}
	}
	put("/v1/repos/default/kv/a", "v")
	put("/v1/repos/default/kv/a", "v")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.events) != 2 || rec.events[0].Revision != 1 || rec.events[1].Revision != 0 {
		t.Errorf("events %v: want revision 1, then none", rec.json)
	}
}
