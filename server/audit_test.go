package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/server"
)

// auditLines reads the audit file as it is on disk now.
func (ts *testServer) auditLines(t *testing.T) []wire.AuditEntry {
	t.Helper()
	f, err := os.Open(filepath.Join(ts.cfg.DataDir, "audit", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []wire.AuditEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var e wire.AuditEntry
		mustJSON(t, sc.Bytes(), &e)
		out = append(out, e)
	}
	return out
}

// auditFile returns every audit file's content, rotated ones included.
func (ts *testServer) auditFile(t *testing.T) []byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(ts.cfg.DataDir, "audit", "*"))
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// findAudit returns the one entry of a request, or nil when there is none
// or more than one (a request has exactly one line).
func findAudit(entries []wire.AuditEntry, requestID string) *wire.AuditEntry {
	var found *wire.AuditEntry
	for i := range entries {
		if entries[i].RequestID == requestID {
			if found != nil {
				return nil
			}
			found = &entries[i]
		}
	}
	return found
}

// TestAuditLog: allowed mutations and denied requests are on disk when the
// response arrives, with who, what, where and the result; reads are not
// logged; no value, message or token appears in the file.
func TestAuditLog(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.Limits.FailRate = 0 })
	const value = "DISTINCTIVE-VALUE-91c2e"
	const message = "DISTINCTIVE-MESSAGE-5d0a"
	alice := ts.createToken(t, wire.CreateTokenRequest{Name: "alice", Scopes: []string{"read", "write"}})
	bob := ts.createToken(t, wire.CreateTokenRequest{Name: "bob", Scopes: []string{"read"}})

	// An allowed write.
	resp, b := ts.do(t, http.MethodPut, "/v1/repos/default/kv/apps/web/x?message="+url.QueryEscape(message), alice.Secret, []byte(value),
		"X-Request-Id", "req-allowed-1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("put: %d %s", resp.StatusCode, b)
	}
	var wr wire.WriteResult
	mustJSON(t, b, &wr)
	e := findAudit(ts.auditLines(t), "req-allowed-1")
	if e == nil {
		t.Fatal("not exactly one audit line for an allowed write right after its response")
	}
	if e.Identity != "alice" || e.TokenID != alice.ID || e.Action != "kv.put" || e.Method != http.MethodPut ||
		e.Route != "/v1/repos/{repo}/kv/{key}" || e.Repo != "default" || len(e.Keys) != 1 || e.Keys[0] != "apps/web/x" ||
		e.Status != http.StatusOK || e.Revision != wr.Revision || !strings.HasPrefix(e.Remote, "127.0.0.1:") ||
		time.Since(e.Time) > time.Minute {
		t.Errorf("audit line for the write: %+v (revision %d)", e, wr.Revision)
	}

	// A batch with a value in its body.
	resp, _ = ts.do(t, http.MethodPost, "/v1/repos/default/commits", alice.Secret,
		[]byte(`{"message":"`+message+`","ops":[{"op":"put","key":"apps/web/y","value":"`+value+`"},{"op":"delete","key":"apps/web/x"}]}`),
		"X-Request-Id", "req-batch")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("commit: %d", resp.StatusCode)
	}
	if e := findAudit(ts.auditLines(t), "req-batch"); e == nil || len(e.Keys) != 2 || e.Action != "commit.create" {
		t.Errorf("audit line for the batch: %+v", e)
	}

	// A delete (its line rides in the commit's journal record, as the
	// put's did), and a put refused by its precondition (recorded apart).
	resp, b = ts.do(t, http.MethodDelete, "/v1/repos/default/kv/apps/web/y", alice.Secret, nil, "X-Request-Id", "req-delete")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	var dr wire.DeleteResult
	mustJSON(t, b, &dr)
	if e := findAudit(ts.auditLines(t), "req-delete"); e == nil || e.Action != "kv.delete" || e.Status != http.StatusOK || e.Revision != dr.Revision {
		t.Errorf("audit line for the delete: %+v (revision %d)", e, dr.Revision)
	}
	resp, _ = ts.do(t, http.MethodPut, "/v1/repos/default/kv/apps/web/z", alice.Secret, []byte("v"),
		"X-Request-Id", "req-refused", "If-Match", `"0000000000000000000000000000000000000000"`)
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("put with a failing precondition: %d", resp.StatusCode)
	}
	if e := findAudit(ts.auditLines(t), "req-refused"); e == nil || e.Status != http.StatusPreconditionFailed || e.Revision != 0 {
		t.Errorf("audit line for the refused put: %+v", e)
	}

	// Denied: no scope (403) and no token (401).
	ts.do(t, http.MethodPut, "/v1/repos/default/kv/apps/web/z", bob.Secret, []byte(value), "X-Request-Id", "req-denied-403")
	if e := findAudit(ts.auditLines(t), "req-denied-403"); e == nil || e.Status != http.StatusForbidden || e.Identity != "bob" || e.Revision != 0 {
		t.Errorf("audit line for a 403: %+v", e)
	}
	ts.do(t, http.MethodGet, "/v1/repos/default/kv/apps/web/y", "", nil, "X-Request-Id", "req-denied-401")
	if e := findAudit(ts.auditLines(t), "req-denied-401"); e == nil || e.Status != http.StatusUnauthorized || e.Identity != "" {
		t.Errorf("audit line for a 401: %+v", e)
	}

	// An allowed read is not audited.
	ts.do(t, http.MethodGet, "/v1/repos/default/kv/apps/web/y", bob.Secret, nil, "X-Request-Id", "req-read")
	if e := findAudit(ts.auditLines(t), "req-read"); e != nil {
		t.Errorf("an allowed read was audited: %+v", e)
	}

	// Token creation is audited with its target, never its secret.
	lines := ts.auditLines(t)
	targets := map[string]bool{}
	for _, l := range lines {
		targets[l.Target] = true
	}
	if !targets["token:"+alice.ID] || !targets["token:"+bob.ID] {
		t.Errorf("token creations not audited: %v", targets)
	}

	all := ts.auditFile(t)
	for _, secret := range []string{value, message, alice.Secret, bob.Secret, ts.admin, strings.Split(alice.Secret, "_")[2]} {
		if n := bytes.Count(all, []byte(secret)); n != 0 {
			t.Errorf("the audit log holds %q %d times", secret, n)
		}
	}
	if logs := ts.logs.String(); strings.Contains(logs, alice.Secret) || strings.Contains(logs, ts.admin) || strings.Contains(logs, value) {
		t.Errorf("the server's log holds a token or a value")
	}
	fi, err := os.Stat(filepath.Join(ts.cfg.DataDir, "audit", "audit.log"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit.log mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

// TestAuditQuery: GET /v1/audit filters by identity, repo and time, newest
// first, with a limit.
func TestAuditQuery(t *testing.T) {
	ts := startServer(t)
	ts.mustDo(t, http.StatusCreated, http.MethodPost, "/v1/repos", ts.admin, []byte(`{"name":"other"}`))
	alice := ts.createToken(t, wire.CreateTokenRequest{Name: "alice", Scopes: []string{"read", "write"}}).Secret
	for i := range 3 {
		ts.put(t, alice, fmt.Sprintf("k%d", i), "v")
	}
	mid := time.Now()
	ts.mustDo(t, http.StatusOK, http.MethodPut, "/v1/repos/other/kv/k", alice, []byte("v"))

	query := func(q string) wire.AuditList {
		t.Helper()
		var l wire.AuditList
		mustJSON(t, ts.mustDo(t, http.StatusOK, http.MethodGet, "/v1/audit?"+q, ts.admin, nil), &l)
		return l
	}
	l := query("identity=alice")
	if len(l.Entries) != 4 || l.Truncated {
		t.Fatalf("alice's entries: %+v", l)
	}
	if l.Entries[0].Repo != "other" || l.Entries[3].Keys[0] != "k0" {
		t.Errorf("entries not newest first: %+v", l.Entries)
	}
	if l := query("identity=alice&repo=other"); len(l.Entries) != 1 {
		t.Errorf("alice in other: %+v", l)
	}
	if l := query("since=" + url.QueryEscape(mid.Format(time.RFC3339Nano))); len(l.Entries) != 1 || l.Entries[0].Repo != "other" {
		t.Errorf("since %v: %+v", mid, l)
	}
	if l := query("since=1h&identity=alice"); len(l.Entries) != 4 {
		t.Errorf("since=1h: %+v", l)
	}
	if l := query("identity=alice&limit=2"); len(l.Entries) != 2 || !l.Truncated || l.Entries[0].Repo != "other" {
		t.Errorf("limit=2: %+v", l)
	}
	if l := query("identity=nobody"); len(l.Entries) != 0 || l.Entries == nil {
		t.Errorf("nobody: %+v", l)
	}
	ts.mustDo(t, http.StatusBadRequest, http.MethodGet, "/v1/audit?since=yesterday", ts.admin, nil)
	ts.mustDo(t, http.StatusBadRequest, http.MethodGet, "/v1/audit?limit=0", ts.admin, nil)
}

// TestAuditRotation: the log rotates by size, keeps the rotated files, and
// queries read across them.
func TestAuditRotation(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.AuditMaxSize = 2 << 10 })
	for i := range 40 {
		ts.put(t, ts.admin, fmt.Sprintf("key-%02d", i), "v")
	}
	rotated, _ := filepath.Glob(filepath.Join(ts.cfg.DataDir, "audit", "audit-*.log"))
	if len(rotated) < 2 {
		t.Fatalf("%d rotated files after 40 writes with a 2 KiB limit", len(rotated))
	}
	var l wire.AuditList
	mustJSON(t, ts.mustDo(t, http.StatusOK, http.MethodGet, "/v1/audit?limit=1000&identity=admin", ts.admin, nil), &l)
	puts := 0
	for _, e := range l.Entries {
		if e.Action == "kv.put" {
			puts++
		}
	}
	if puts != 40 {
		t.Errorf("query across rotated files found %d of 40 writes", puts)
	}
}

// TestAuditRevisionOnlyWhenMade: an audit line carries a revision only when
// its request made one. A write that changed nothing answers main's
// revision but made none, and reads (a secret's) and reports name
// revisions they did not make.
func TestAuditRevisionOnlyWhenMade(t *testing.T) {
	ts := startServer(t)
	ts.put(t, ts.admin, "apps/web/x", "v")
	ts.mustDo(t, http.StatusOK, http.MethodPut, "/v1/repos/default/secrets/db/pw", ts.admin, []byte("s3cret"))
	for _, tt := range []struct {
		name, method, path, body string
		madeOne                  bool
	}{
		{"put", http.MethodPut, "/v1/repos/default/kv/apps/web/x", "w", true},
		{"put unchanged", http.MethodPut, "/v1/repos/default/kv/apps/web/x", "w", false},
		{"commit", http.MethodPost, "/v1/repos/default/commits", `{"ops":[{"op":"put","key":"apps/web/y","value":"1"}]}`, true},
		{"commit unchanged", http.MethodPost, "/v1/repos/default/commits", `{"ops":[{"op":"put","key":"apps/web/y","value":"1"}]}`, false},
		{"secret put", http.MethodPut, "/v1/repos/default/secrets/db/pw", "t0p", true},
		{"secret get", http.MethodGet, "/v1/repos/default/secrets/db/pw", "", false},
		{"reconciler report", http.MethodPost, "/v1/repos/default/reconcilers/flux/status", `{"revision":1,"state":"applied"}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := "req-rev-" + strings.ReplaceAll(tt.name, " ", "-")
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			resp, b := ts.do(t, tt.method, tt.path, ts.admin, body, "X-Request-Id", id)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			var res struct {
				Revision int64 `json:"revision"`
				Changed  *bool `json:"changed"`
			}
			if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				mustJSON(t, b, &res)
			}
			if res.Changed != nil && *res.Changed != tt.madeOne {
				t.Fatalf("changed %v, want %v: %s", *res.Changed, tt.madeOne, b)
			}
			e := findAudit(ts.auditLines(t), id)
			if e == nil {
				t.Fatal("not exactly one audit line")
			}
			want := int64(0)
			if tt.madeOne {
				want = res.Revision
			}
			if e.Revision != want || (tt.madeOne && want == 0) {
				t.Errorf("audit line's revision %d, want %d (answer %s)", e.Revision, want, b)
			}
		})
	}
}

// TestAuditOfUnroutedRequests: a mutating request that no route serves is
// authenticated and audited: with a valid token it gets its 404 or 405 and
// a line naming its caller and path; without one it is refused 401, and
// audited as on any route. A read no route serves is neither.
func TestAuditOfUnroutedRequests(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.Limits.FailRate = 0 })
	alice := ts.createToken(t, wire.CreateTokenRequest{Name: "alice", Scopes: []string{"read"}})
	for _, tt := range []struct {
		name, method, path, token string
		status                    int
		action                    string // "" when not audited
	}{
		{"delete on repos", http.MethodDelete, "/v1/repos", alice.Secret, http.StatusMethodNotAllowed, "method_not_allowed"},
		{"patch on a key", "PATCH", "/v1/repos/default/kv/a", alice.Secret, http.StatusMethodNotAllowed, "method_not_allowed"},
		{"post on no route", http.MethodPost, "/v1/nope", alice.Secret, http.StatusNotFound, "not_found"},
		{"put on no route", http.MethodPut, "/nope/x%2Fy", alice.Secret, http.StatusNotFound, "not_found"},
		{"delete without a token", http.MethodDelete, "/v1/repos", "", http.StatusUnauthorized, "method_not_allowed"},
		{"post with a bad token", http.MethodPost, "/v1/nope", "gst_nope", http.StatusUnauthorized, "not_found"},
		{"get on no route", http.MethodGet, "/v1/nope", alice.Secret, http.StatusNotFound, ""},
		{"get without a token", http.MethodGet, "/v1/nope", "", http.StatusNotFound, ""},
		{"options", http.MethodOptions, "/v1/repos", "", http.StatusMethodNotAllowed, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := "req-unrouted-" + strings.ReplaceAll(tt.name, " ", "-")
			resp, b := ts.do(t, tt.method, tt.path, tt.token, nil, "X-Request-Id", id)
			if resp.StatusCode != tt.status || resp.Header.Get("X-Request-Id") != id {
				t.Fatalf("status %d, X-Request-Id %q: %s", resp.StatusCode, resp.Header.Get("X-Request-Id"), b)
			}
			lines := ts.auditLines(t)
			e := findAudit(lines, id)
			if tt.action == "" {
				for _, l := range lines {
					if l.RequestID == id {
						t.Fatalf("audited: %+v", l)
					}
				}
				return
			}
			if e == nil {
				t.Fatal("not exactly one audit line")
			}
			if e.Action != tt.action || e.Method != tt.method || e.Route != "" || e.Target != "path:"+tt.path || e.Status != tt.status {
				t.Errorf("audit line %+v", e)
			}
			if authenticated := tt.status != http.StatusUnauthorized; authenticated != (e.Identity == "alice" && e.TokenID == alice.ID) {
				t.Errorf("audit line's identity %q, token %q", e.Identity, e.TokenID)
			}
		})
	}
}

// TestAuditOfRefusedTokens: a request refused for its token is audited
// with the token's id (never its secret), its holder's name when the
// secret matched, and the repo and keys of its path: over the token's rate
// limit (429), revoked or expired (401), or a known id with a wrong secret
// (401, no name). An unknown token's 401 names no token.
func TestAuditOfRefusedTokens(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.Limits.FailRate = 0
		c.Limits.TokenRate = 0.001 // the burst, then nothing for the test's length
		c.Limits.TokenBurst = 5
	})
	limited := ts.createToken(t, wire.CreateTokenRequest{Name: "busy", Scopes: []string{"read", "write"}})
	revoked := ts.createToken(t, wire.CreateTokenRequest{Name: "gone", Scopes: []string{"read", "write", "secrets:read"}})
	ts.mustDo(t, http.StatusOK, http.MethodDelete, "/v1/tokens/"+revoked.ID, ts.admin, nil)
	expired := ts.createToken(t, wire.CreateTokenRequest{Name: "brief", Scopes: []string{"read"}, ExpiresIn: "1s"})
	wrongSecret := "gst_" + revoked.ID + "_" + strings.Repeat("A", len(strings.Split(revoked.Secret, "_")[2]))

	// The burst passes (and PUTs are audited as themselves); the rest are
	// refused and audited.
	for i := range 10 {
		id := fmt.Sprintf("req-busy-%d", i)
		resp, b := ts.do(t, http.MethodPut, "/v1/repos/default/kv/c/new", limited.Secret, []byte("v"), "X-Request-Id", id)
		want := http.StatusOK
		if i >= 5 {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Fatalf("PUT %d: %d %s, want %d", i, resp.StatusCode, b, want)
		}
		e := findAudit(ts.auditLines(t), id)
		if e == nil || e.Status != want || e.Identity != "busy" || e.TokenID != limited.ID || e.Action != "kv.put" ||
			e.Repo != "default" || len(e.Keys) != 1 || e.Keys[0] != "c/new" {
			t.Errorf("PUT %d's audit line: %+v", i, e)
		}
	}
	// Reads past the limit are refusals too, a secret's included.
	for _, tt := range []struct{ path, action, key string }{
		{"/v1/repos/default/kv/c/new", "kv.get", "c/new"},
		{"/v1/repos/default/secrets/db/pw", "secret.get", "db/pw.sops.json"},
	} {
		id := "req-busy-" + tt.action
		if resp, b := ts.do(t, http.MethodGet, tt.path, limited.Secret, nil, "X-Request-Id", id); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("GET %s: %d %s, want 429", tt.path, resp.StatusCode, b)
		}
		e := findAudit(ts.auditLines(t), id)
		if e == nil || e.Status != http.StatusTooManyRequests || e.Identity != "busy" || e.TokenID != limited.ID ||
			e.Action != tt.action || len(e.Keys) != 1 || e.Keys[0] != tt.key {
			t.Errorf("GET %s's audit line: %+v", tt.path, e)
		}
	}

	time.Sleep(time.Until(*expired.ExpiresAt) + 10*time.Millisecond)
	for _, tt := range []struct {
		name, method, path, token string
		status                    int
		identity, tokenID, repo   string
		keys                      []string
	}{
		{"revoked", http.MethodGet, "/v1/repos/default/kv/c/new", revoked.Secret, http.StatusUnauthorized, "gone", revoked.ID, "default", []string{"c/new"}},
		{"revoked put in a txn", http.MethodPut, "/v1/repos/other/txns/t1/kv/a%2Fb", revoked.Secret, http.StatusUnauthorized, "gone", revoked.ID, "other", []string{"a/b"}},
		{"revoked secret", http.MethodGet, "/v1/repos/default/secrets/db/pw", revoked.Secret, http.StatusUnauthorized, "gone", revoked.ID, "default", []string{"db/pw.sops.json"}},
		{"revoked, invalid key", http.MethodGet, "/v1/repos/default/kv/a/../b", revoked.Secret, http.StatusUnauthorized, "gone", revoked.ID, "default", nil},
		{"expired", http.MethodDelete, "/v1/repos/default/kv/x", expired.Secret, http.StatusUnauthorized, "brief", expired.ID, "default", []string{"x"}},
		{"expired, no repo", http.MethodPost, "/v1/tokens", expired.Secret, http.StatusUnauthorized, "brief", expired.ID, "", nil},
		{"wrong secret", http.MethodGet, "/v1/repos/default/kv/c/new", wrongSecret, http.StatusUnauthorized, "", revoked.ID, "default", []string{"c/new"}},
		{"unknown token", http.MethodGet, "/v1/repos/default/kv/c/new", "gst_" + strings.Repeat("B", 12) + "_x", http.StatusUnauthorized, "", "", "default", []string{"c/new"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := "req-refused-" + strings.ReplaceAll(tt.name, " ", "-")
			id = strings.ReplaceAll(id, ",", "")
			resp, b := ts.do(t, tt.method, tt.path, tt.token, nil, "X-Request-Id", id)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			e := findAudit(ts.auditLines(t), id)
			if e == nil {
				t.Fatal("not exactly one audit line")
			}
			if e.Status != tt.status || e.Identity != tt.identity || e.TokenID != tt.tokenID || e.Repo != tt.repo ||
				strings.Join(e.Keys, ",") != strings.Join(tt.keys, ",") {
				t.Errorf("audit line %+v", e)
			}
		})
	}
	all := ts.auditFile(t)
	for _, tok := range []wire.CreatedToken{limited, revoked, expired} {
		if bytes.Contains(all, []byte(strings.Split(tok.Secret, "_")[2])) {
			t.Errorf("the audit log holds the secret of %s", tok.ID)
		}
	}
}

// TestBlockedAddressIsNotAudited: the 429s of a client address blocked for
// its failed authentications are not audited (its 401s are), whatever
// token they carry: an unauthenticated flood cannot fill the disk.
func TestBlockedAddressIsNotAudited(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.Limits.FailRate = 0.001
		c.Limits.FailBurst = 3
	})
	for i := range 6 {
		ts.do(t, http.MethodPut, "/v1/repos/default/kv/k", "gst_nope", []byte("v"), "X-Request-Id", fmt.Sprintf("req-guess-%d", i))
	}
	resp, _ := ts.do(t, http.MethodPut, "/v1/repos/default/kv/k", ts.admin, []byte("v"), "X-Request-Id", "req-blocked-admin")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a valid token from a blocked address: %d, want 429", resp.StatusCode)
	}
	if n := ts.auditedActions(t, "kv.put", http.StatusUnauthorized); n != 3 {
		t.Errorf("%d 401s audited, want the 3 failures", n)
	}
	if n := ts.auditedActions(t, "kv.put", http.StatusTooManyRequests); n != 0 {
		t.Errorf("%d 429s of a blocked address audited, want none", n)
	}
}

// TestAuditOfHiddenConflicts: a prefix-limited token's refused transaction
// commit is told only the conflicting keys it may read, but its audit line
// (which only an administrator reads) names every one.
func TestAuditOfHiddenConflicts(t *testing.T) {
	ts := startServer(t)
	lim := ts.createToken(t, wire.CreateTokenRequest{Name: "lim", Scopes: []string{"read", "write", "txn"}, Prefixes: []string{"app/"}})
	var tx wire.Txn
	if err := json.Unmarshal(ts.mustDo(t, http.StatusCreated, http.MethodPost, "/v1/repos/default/txns", lim.Secret, []byte(`{}`)), &tx); err != nil {
		t.Fatal(err)
	}
	tp := "/v1/repos/default/txns/" + tx.ID
	ts.mustDo(t, http.StatusOK, http.MethodPut, tp+"/kv/app/x", lim.Secret, []byte("1"))
	// An administrator may write in anyone's transaction.
	ts.mustDo(t, http.StatusOK, http.MethodPut, tp+"/kv/secret/y", ts.admin, []byte("1"))
	ts.mustDo(t, http.StatusOK, http.MethodPut, "/v1/repos/default/kv/app/x", ts.admin, []byte("main"))
	ts.mustDo(t, http.StatusOK, http.MethodPut, "/v1/repos/default/kv/secret/y", ts.admin, []byte("main"))

	resp, b := ts.do(t, http.MethodPost, tp+"/commit", lim.Secret, nil, "X-Request-Id", "req-hidden-conflict")
	if resp.StatusCode != http.StatusConflict || strings.Contains(string(b), "secret/y") {
		t.Fatalf("the limited token's commit: %d %s, want a 409 that does not name secret/y", resp.StatusCode, b)
	}
	e := findAudit(ts.auditLines(t), "req-hidden-conflict")
	if e == nil || e.Status != http.StatusConflict || !slices.Equal(e.Keys, []string{"app/x", "secret/y"}) {
		t.Errorf("its audit line: %+v, want both conflicting keys", e)
	}
}
