package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/secrets"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/txn"
)

// secretAuth authenticates "Bearer <name>" as a test principal: root is an
// administrator; the others hold the scopes their names say.
type secretAuth struct{}

var secretPrincipals = map[string][]api.Scope{
	"ops":     {api.ScopeRead, api.ScopeWrite, api.ScopeTxn, api.ScopeSecretsRead, api.ScopeSecretsWrite},
	"reader":  {api.ScopeRead},
	"writer":  {api.ScopeRead, api.ScopeWrite, api.ScopeTxn},
	"sreader": {api.ScopeSecretsRead},
	"swriter": {api.ScopeSecretsWrite},
}

func (secretAuth) Authenticate(r *http.Request) (*api.Principal, error) {
	name, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if name == "root" {
		return &api.Principal{Name: "root", Scopes: []api.Scope{api.ScopeAdmin}, Repos: []string{"*"}}, nil
	}
	if sc, ok := secretPrincipals[name]; ok {
		return &api.Principal{Name: name, Scopes: sc, Repos: []string{"*"}}, nil
	}
	return nil, gitstate.Errorf(gitstate.KindUnauthorized, "unauthorized", "unknown user")
}

// fileAuditor appends every audit event to a JSON-lines file, as an audit
// log would, and keeps them for the test to read.
type fileAuditor struct {
	mu     sync.Mutex
	path   string
	events []api.AuditEvent
}

func (a *fileAuditor) Record(_ context.Context, ev api.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
	f, err := os.OpenFile(a.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	return json.NewEncoder(f).Encode(ev)
}

func (a *fileAuditor) find(action string) []api.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []api.AuditEvent
	for _, ev := range a.events {
		if ev.Action == action {
			out = append(out, ev)
		}
	}
	return out
}

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// secEnv is a server with secrets, transactions, an audit log and a
// captured debug log, over a store in a temporary data directory.
type secEnv struct {
	t       *testing.T
	dir     string
	st      *storage.Store
	txns    *txn.Manager
	eng     *secrets.Engine
	srv     *httptest.Server
	audit   *fileAuditor
	log     *lockedBuffer
	engOpts secrets.Options
}

func newSecEnv(t *testing.T, opts secrets.Options) *secEnv {
	t.Helper()
	dir := t.TempDir()
	e := &secEnv{t: t, dir: dir, log: &lockedBuffer{}, audit: &fileAuditor{path: filepath.Join(dir, "audit.log")}}
	logger := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := storage.Open(context.Background(), dir, storage.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	e.txns = txn.NewManager(st, txn.Options{Logger: logger})
	if err := e.txns.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	opts.KeyFile = filepath.Join(dir, secrets.KeyFileName)
	opts.Logger = logger
	e.engOpts = opts
	if e.eng, err = secrets.New(opts); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(api.New(api.Options{Store: st, Auth: secretAuth{}, Txns: e.txns, Secrets: e.eng, Auditor: e.audit, Logger: logger}))
	t.Cleanup(e.stop)
	return e
}

func (e *secEnv) stop() {
	if e.srv == nil {
		return
	}
	e.srv.Close()
	e.txns.Close()
	if err := e.st.Close(); err != nil {
		e.t.Errorf("close store: %v", err)
	}
	e.srv = nil
}

// call sends a request as user; body is a string (raw) or a value (JSON).
func (e *secEnv) call(user, method, path string, body any, header ...string) *response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+user)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return &response{status: res.StatusCode, header: res.Header, body: data}
}

func (e *secEnv) putSecret(user, key, value string) wire.WriteResult {
	e.t.Helper()
	var wr wire.WriteResult
	e.call(user, "PUT", repoPath+"/secrets/"+key, value).ok(e.t, 200, &wr)
	return wr
}

func (e *secEnv) getSecret(user, key string) string {
	e.t.Helper()
	r := e.call(user, "GET", repoPath+"/secrets/"+key, nil)
	r.ok(e.t, 200, nil)
	return string(r.body)
}

func (e *secEnv) head() storage.Head {
	r, err := e.st.Repo(storage.DefaultRepo)
	if err != nil {
		e.t.Fatal(err)
	}
	return r.Head()
}

// newPlaintext returns a distinctive secret value, easy to search for.
func newPlaintext(t *testing.T, what string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return "PLAINTEXT-" + what + "-" + hex.EncodeToString(b)
}

func TestSecretsHTTP(t *testing.T) {
	e := newSecEnv(t, secrets.Options{})
	v1, v2 := newPlaintext(t, "v1"), newPlaintext(t, "v2")

	w1 := e.putSecret("ops", "apps/web/db-password", v1)
	if !w1.Changed || w1.Revision != 1 {
		t.Fatalf("first put: %+v", w1)
	}
	// The tree holds a SOPS document at <key>.sops.json: the kv route
	// gives it as is.
	doc := e.call("reader", "GET", repoPath+"/kv/apps/web/db-password.sops.json", nil)
	doc.ok(t, 200, nil)
	if strings.Contains(string(doc.body), v1) || secrets.CheckDocument("x.sops.json", doc.body) != nil {
		t.Fatalf("kv GET of the secret's file is not an encrypted document:\n%s", doc.body)
	}
	if doc.header.Get("ETag") != `"`+w1.ETag+`"` {
		t.Errorf("kv etag %s, put etag %s", doc.header.Get("ETag"), w1.ETag)
	}
	e.call("reader", "GET", repoPath+"/kv/apps/web/db-password", nil).wantError(t, 404, "key_not_found")

	r := e.call("ops", "GET", repoPath+"/secrets/apps/web/db-password", nil)
	r.ok(t, 200, nil)
	if string(r.body) != v1 || r.header.Get("Cache-Control") != "no-store" || r.header.Get("ETag") != `"`+w1.ETag+`"` ||
		r.header.Get(wire.HeaderRevision) != "1" || r.header.Get(wire.HeaderModRevision) != "1" {
		t.Fatalf("GET secret: %q %v", r.body, r.header)
	}

	// Re-putting the same plaintext makes no commit, although SOPS output
	// is randomized.
	again := e.putSecret("ops", "apps/web/db-password", v1)
	if again.Changed || again.Revision != 1 || again.ETag != w1.ETag || e.head().Revision != 1 {
		t.Fatalf("re-put of the same plaintext: %+v", again)
	}
	// After a restart of the engine's cache too.
	e.eng.Forget()
	if again := e.putSecret("ops", "apps/web/db-password", v1); again.Changed {
		t.Fatalf("re-put after Forget: %+v", again)
	}
	w2 := e.putSecret("ops", "apps/web/db-password", v2)
	if !w2.Changed || w2.Revision != 2 {
		t.Fatalf("put v2: %+v", w2)
	}
	if got := e.getSecret("ops", "apps/web/db-password"); got != v2 {
		t.Errorf("head: %q", got)
	}
	r = e.call("ops", "GET", repoPath+"/secrets/apps/web/db-password?rev=1", nil)
	if r.ok(t, 200, nil); string(r.body) != v1 {
		t.Errorf("rev=1: %q", r.body)
	}
	e.call("ops", "GET", repoPath+"/secrets/apps/web/db-password", nil, "If-None-Match", `"`+w2.ETag+`"`).ok(t, 304, nil)

	// Preconditions, as for kv.
	e.call("ops", "PUT", repoPath+"/secrets/apps/web/db-password", "v3", "If-Match", `"`+w1.ETag+`"`).wantError(t, 412, "precondition_failed")
	e.call("ops", "PUT", repoPath+"/secrets/apps/web/db-password", v2, "If-None-Match", "*").wantError(t, 412, "precondition_failed")
	e.call("ops", "PUT", repoPath+"/secrets/apps/web/db-password", v2, "If-Match", `"`+w1.ETag+`"`).wantError(t, 412, "precondition_failed")
	if again := e.putSecret("ops", "apps/web/db-password", v2); again.Changed {
		t.Errorf("no-op put with no precondition: %+v", again)
	}
	var wr wire.WriteResult
	e.call("ops", "PUT", repoPath+"/secrets/apps/web/db-password", v2, "If-Match", `"`+w2.ETag+`"`).ok(t, 200, &wr)
	if wr.Changed {
		t.Errorf("no-op put with a holding If-Match: %+v", wr)
	}
	e.call("ops", "PUT", repoPath+"/secrets/apps/web/api-key", "k", "If-None-Match", "*").ok(t, 200, &wr)

	// Bad input.
	e.call("ops", "PUT", repoPath+"/secrets/apps/x.sops.json", "v").wantError(t, 400, "invalid_key")
	e.call("ops", "PUT", repoPath+"/secrets/apps/x", "").wantError(t, 400, "invalid_request")
	e.call("ops", "PUT", repoPath+"/secrets/a/../b", "v").wantError(t, 400, "invalid_key")
	e.call("ops", "GET", repoPath+"/secrets/apps/none", nil).wantError(t, 404, "key_not_found")

	// The list: keys and revisions, never values.
	var list wire.SecretList
	e.putSecret("ops", "apps/web-extra", "x")
	e.call("ops", "PUT", repoPath+"/kv/apps/web/plain.json", `{"a":1}`).ok(t, 200, nil)
	e.call("sreader", "GET", repoPath+"/secrets?prefix=apps/", nil).ok(t, 200, &list)
	var keys []string
	for _, it := range list.Items {
		keys = append(keys, it.Key)
	}
	if !slices.Equal(keys, []string{"apps/web-extra", "apps/web/api-key", "apps/web/db-password"}) || list.Next != "" {
		t.Errorf("list %+v", list)
	}
	e.call("reader", "GET", repoPath+"/secrets?prefix=apps/&limit=2", nil).ok(t, 200, &list)
	if len(list.Items) != 2 || list.Next != "apps/web/api-key" {
		t.Fatalf("page 1: %+v", list)
	}
	e.call("reader", "GET", repoPath+"/secrets?prefix=apps/&limit=2&after="+list.Next, nil).ok(t, 200, &list)
	if len(list.Items) != 1 || list.Items[0].Key != "apps/web/db-password" || list.Items[0].ModRevision != 2 || list.Next != "" {
		t.Fatalf("page 2: %+v", list)
	}
	if bytes.Contains(e.call("ops", "GET", repoPath+"/secrets", nil).body, []byte(v2)) {
		t.Error("the list shows a value")
	}
	// A prefix without secrets: no items, at head's revision (not 0, the
	// empty state).
	var empty wire.SecretList
	e.call("reader", "GET", repoPath+"/secrets?prefix=none/", nil).ok(t, 200, &empty)
	if len(empty.Items) != 0 || empty.Revision != e.head().Revision || empty.Revision == 0 {
		t.Errorf("empty list: %+v, head %d", empty, e.head().Revision)
	}

	// Delete.
	var dr wire.DeleteResult
	e.call("ops", "DELETE", repoPath+"/secrets/apps/web-extra", nil).ok(t, 200, &dr)
	e.call("ops", "DELETE", repoPath+"/secrets/apps/web-extra", nil).wantError(t, 404, "key_not_found")
}

// TestSecretErrorsNameTheSecret checks that the secrets routes' errors
// name the secret ("svc/pw"), as the caller does, and not the file that
// holds it ("svc/pw.sops.json").
func TestSecretErrorsNameTheSecret(t *testing.T) {
	e := newSecEnv(t, secrets.Options{})
	e.call("ops", "PUT", repoPath+"/kv/other", "x").ok(t, 200, nil) // revision 1
	e.putSecret("ops", "svc/pw", newPlaintext(t, "pw"))             // revision 2
	wrong := strings.Repeat("1", 40)
	tests := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		code, message            string
	}{
		{"get before it existed", "GET", "/secrets/svc/pw?rev=1", "", nil, 404, "key_not_found", `secret "svc/pw" does not exist`},
		{"get absent", "GET", "/secrets/svc/none", "", nil, 404, "key_not_found", `secret "svc/none" does not exist`},
		{"delete absent", "DELETE", "/secrets/svc/none", "", nil, 404, "key_not_found", `secret "svc/none" does not exist`},
		{"put If-Match stale", "PUT", "/secrets/svc/pw", "v", []string{"If-Match", `"` + wrong + `"`}, 412, "precondition_failed", ""},
		{"delete If-Match stale", "DELETE", "/secrets/svc/pw", "", []string{"If-Match", `"` + wrong + `"`}, 412, "precondition_failed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			r := e.call("ops", tt.method, repoPath+tt.path, body, tt.header...)
			er := r.wantError(t, tt.status, tt.code)
			if strings.Contains(er.Message, secrets.Suffix) || slices.ContainsFunc(er.Keys, func(k string) bool { return strings.HasSuffix(k, secrets.Suffix) }) {
				t.Errorf("the error names a secret's file: %s", r.body)
			}
			if tt.message != "" && er.Message != tt.message {
				t.Errorf("message %q, want %q", er.Message, tt.message)
			}
		})
	}
}

// TestRotationAndBatchErrorsNameTheSecret checks that a rotation's errors,
// and a batch's errors about its put_secret ops, name secrets by their keys
// ("prot/s"), not by their files ("prot/s.sops.json").
func TestRotationAndBatchErrorsNameTheSecret(t *testing.T) {
	e := newSecEnv(t, secrets.Options{})
	e.putSecret("ops", "prot/s", newPlaintext(t, "prot"))
	// prot/ becomes protected: the secret cannot be rotated on main.
	var tx wire.Txn
	e.call("root", "POST", repoPath+"/txns", map[string]any{}).ok(t, 201, &tx)
	e.call("root", "PUT", repoPath+"/txns/"+tx.ID+"/kv/.gitstate/policy.yaml", "protected:\n  - prefix: prot/\n").ok(t, 200, nil)
	e.call("root", "POST", repoPath+"/txns/"+tx.ID+"/commit", map[string]any{}).ok(t, 200, nil)
	// other/t holds a document whose MAC is another's: a SOPS document
	// (the kv route takes it) that does not decrypt.
	e.putSecret("ops", "other/u", newPlaintext(t, "u"))
	var doc, donor map[string]any
	for key, into := range map[string]*map[string]any{"prot/s.sops.json": &doc, "other/u.sops.json": &donor} {
		r := e.call("ops", "GET", repoPath+"/kv/"+key, nil)
		if r.ok(t, 200, nil); json.Unmarshal(r.body, into) != nil {
			t.Fatalf("%s: %s", key, r.body)
		}
	}
	doc["sops"].(map[string]any)["mac"] = donor["sops"].(map[string]any)["mac"]
	e.call("ops", "PUT", repoPath+"/kv/other/t.sops.json", jsonString(t, doc)).ok(t, 200, nil)

	secretOp := func(key, value string) wire.Op { return wire.Op{Op: "put_secret", Key: key, Value: ptr(value)} }
	tests := []struct {
		name, path string
		body       any
		status     int
		code       string
		keys       []string
		message    string // a part of it
	}{
		{"rotate protected", "/secrets/rotate", map[string]any{"prefix": "prot/"}, 403, "protected_prefix", []string{"prot/s"}, ""},
		{"rotate undecryptable", "/secrets/rotate", map[string]any{"prefix": "other/"}, 422, "secret_not_decryptable", []string{"other/t"}, "cannot decrypt other/t: "},
		{"batch duplicate", "/commits", wire.CommitRequest{Ops: []wire.Op{secretOp("cli/x", "1"), secretOp("cli/x", "2")}},
			400, "duplicate_key", []string{"cli/x"}, `both change "cli/x"`},
		{"batch invalid key", "/commits", wire.CommitRequest{Ops: []wire.Op{secretOp("cli/../x", "1")}}, 400, "invalid_key", nil, `"cli/../x"`},
		{"batch empty value", "/commits", wire.CommitRequest{Ops: []wire.Op{{Op: "put", Key: "cli/config", Value: ptr("c")}, secretOp("cli/x", "")}},
			400, "invalid_request", []string{"cli/x"}, "must not be empty"},
		{"batch too large", "/commits", wire.CommitRequest{Ops: []wire.Op{secretOp("cli/x", strings.Repeat("v", 1<<20+1))}},
			413, "value_too_large", []string{"cli/x"}, `the secret "cli/x"`},
		{"batch protected", "/commits", wire.CommitRequest{Ops: []wire.Op{secretOp("prot/s", "new")}}, 403, "protected_prefix", []string{"prot/s"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.call("ops", "POST", repoPath+tt.path, tt.body)
			er := r.wantError(t, tt.status, tt.code)
			if !slices.Equal(er.Keys, tt.keys) || strings.Contains(er.Message, secrets.Suffix) || !strings.Contains(er.Message, tt.message) {
				t.Errorf("error %s: want keys %q, a message with %q and without %s", r.body, tt.keys, tt.message, secrets.Suffix)
			}
		})
	}
	// A batch's plain op on a secret's file is named as the caller named it.
	r := e.call("ops", "POST", repoPath+"/commits", wire.CommitRequest{Ops: []wire.Op{{Op: "put", Key: "prot/s.sops.json", Value: ptr("x")}}})
	if er := r.wantError(t, 422, "not_encrypted"); !slices.Equal(er.Keys, []string{"prot/s.sops.json"}) {
		t.Errorf("plain put of a secret's file: %s", r.body)
	}
}

func TestSecretsScopesAndAudit(t *testing.T) {
	e := newSecEnv(t, secrets.Options{})
	v := newPlaintext(t, "scoped")
	e.putSecret("swriter", "db", v)
	// secrets:read, not read, reads secrets; read does not.
	e.call("reader", "GET", repoPath+"/secrets/db", nil).wantError(t, 403, "forbidden")
	e.call("writer", "PUT", repoPath+"/secrets/db", "x").wantError(t, 403, "forbidden")
	e.call("swriter", "GET", repoPath+"/secrets/db", nil).wantError(t, 403, "forbidden")
	if got := e.getSecret("sreader", "db"); got != v {
		t.Fatalf("sreader: %q", got)
	}
	// A batch with a put_secret needs secrets:write too.
	batch := wire.CommitRequest{Ops: []wire.Op{{Op: "put", Key: "cfg", Value: ptr("1")}, {Op: "put_secret", Key: "db", Value: ptr("y")}}}
	e.call("writer", "POST", repoPath+"/commits", batch).wantError(t, 403, "forbidden")
	e.call("swriter", "POST", repoPath+"/commits", batch).wantError(t, 403, "forbidden")
	e.call("ops", "POST", repoPath+"/commits", batch).ok(t, 200, nil)
	e.call("ops", "POST", repoPath+"/secrets/rotate", map[string]any{}).ok(t, 200, nil)
	e.call("writer", "POST", repoPath+"/secrets/rotate", map[string]any{}).wantError(t, 403, "forbidden")

	// Every read of a secret is audited, the refused one included; reads
	// of plain keys are not.
	reads := e.audit.find("secret.get")
	if len(reads) != 3 {
		t.Fatalf("audited secret reads: %+v", reads)
	}
	statuses := []int{reads[0].Status, reads[1].Status, reads[2].Status}
	if !slices.Equal(statuses, []int{403, 403, 200}) || reads[2].Principal.Name != "sreader" || !slices.Equal(reads[2].Keys, []string{"db.sops.json"}) {
		t.Errorf("audit of secret reads: %+v", reads)
	}
	e.call("reader", "GET", repoPath+"/kv/cfg", nil).ok(t, 200, nil)
	if got := e.audit.find("kv.get"); len(got) != 0 {
		t.Errorf("plain reads audited: %+v", got)
	}
}

func TestPlaintextRefusedWhereSecretExpected(t *testing.T) {
	e := newSecEnv(t, secrets.Options{})
	v := newPlaintext(t, "leak")
	// kv PUT of plaintext at a secret's path.
	r := e.call("ops", "PUT", repoPath+"/kv/db.sops.json", v)
	er := r.wantError(t, 422, "not_encrypted")
	if strings.Contains(string(r.body), v) || !slices.Equal(er.Keys, []string{"db.sops.json"}) {
		t.Errorf("error %s", r.body)
	}
	// A JSON document with a plaintext value.
	r = e.call("ops", "PUT", repoPath+"/kv/db.sops.json", `{"password":"`+v+`","sops":{"version":"3.13.3"}}`)
	if r.wantError(t, 422, "not_encrypted"); strings.Contains(string(r.body), v) {
		t.Errorf("error echoes the value: %s", r.body)
	}
	// In a batch, on main and in a transaction.
	batch := wire.CommitRequest{Ops: []wire.Op{{Op: "put", Key: "a", Value: ptr("1")}, {Op: "put", Key: "db.sops.json", Value: ptr(v)}}}
	if r := e.call("ops", "POST", repoPath+"/commits", batch); r.status != 422 || strings.Contains(string(r.body), v) {
		t.Errorf("batch: %d %s", r.status, r.body)
	}
	var tx wire.Txn
	e.call("ops", "POST", repoPath+"/txns", map[string]any{}).ok(t, 201, &tx)
	e.call("ops", "PUT", repoPath+"/txns/"+tx.ID+"/kv/db.sops.json", v).wantError(t, 422, "not_encrypted")
	// A move may not turn a plain file into a secret's file.
	e.call("ops", "PUT", repoPath+"/kv/plain", v).ok(t, 200, nil)
	mv := wire.CommitRequest{Ops: []wire.Op{{Op: "move", From: "plain", To: "plain.sops.json"}}}
	e.call("ops", "POST", repoPath+"/commits", mv).wantError(t, 422, "not_encrypted")
	if e.head().Revision != 1 {
		t.Errorf("a refused write changed main: revision %d", e.head().Revision)
	}
	// An encrypted document written as a value is a secret.
	e.putSecret("ops", "src", v)
	docRes := e.call("ops", "GET", repoPath+"/kv/src.sops.json", nil)
	docRes.ok(t, 200, nil)
	// Changing a secret's file needs secrets:write, whatever the route.
	e.call("writer", "PUT", repoPath+"/kv/copy.sops.json", docRes.body).wantError(t, 403, "forbidden")
	e.call("writer", "DELETE", repoPath+"/kv/src.sops.json", nil).wantError(t, 403, "forbidden")
	e.call("writer", "POST", repoPath+"/revert", map[string]any{"revision": e.head().Revision}).wantError(t, 403, "forbidden")
	e.call("writer", "POST", repoPath+"/rollback", map[string]any{"to": 1}).wantError(t, 403, "forbidden")
	e.call("ops", "PUT", repoPath+"/kv/copy.sops.json", docRes.body).ok(t, 200, nil)
	if got := e.getSecret("ops", "copy"); got != v {
		t.Errorf("secret written as a document: %q", got)
	}
	// A broken .gitstate/sops.yaml is refused (in a transaction, by an
	// administrator: the only way to change it).
	var tx2 wire.Txn
	e.call("root", "POST", repoPath+"/txns", map[string]any{}).ok(t, 201, &tx2)
	e.call("root", "PUT", repoPath+"/txns/"+tx2.ID+"/kv/.gitstate/sops.yaml", "creation_rules:\n  - kms: arn\n").wantError(t, 422, "invalid_sops_config")
	e.call("root", "PUT", repoPath+"/kv/.gitstate/sops.yaml", "creation_rules: []\n").wantError(t, 403, "protected_prefix")
}

func TestSecretsInTransaction(t *testing.T) {
	e := newSecEnv(t, secrets.Options{})
	v1, v2 := newPlaintext(t, "main"), newPlaintext(t, "txn")
	e.putSecret("ops", "db", v1)
	var tx wire.Txn
	e.call("ops", "POST", repoPath+"/txns", map[string]any{"message": "rotate db"}).ok(t, 201, &tx)
	tp := repoPath + "/txns/" + tx.ID
	// Writing in a transaction needs txn too.
	e.call("swriter", "PUT", tp+"/secrets/db", v2).wantError(t, 403, "forbidden")
	var wr wire.WriteResult
	e.call("ops", "PUT", tp+"/secrets/db", v2).ok(t, 200, &wr)
	if !wr.Changed || wr.Revision != 0 {
		t.Fatalf("txn put: %+v", wr)
	}
	e.call("ops", "PUT", tp+"/secrets/db", v2).ok(t, 200, &wr)
	if wr.Changed {
		t.Errorf("txn re-put: %+v", wr)
	}
	// A config change and its secret, in one batch.
	e.call("ops", "POST", tp+"/commits", wire.CommitRequest{Ops: []wire.Op{
		{Op: "put", Key: "apps/api/config.json", Value: ptr(`{"user":"api"}`)},
		{Op: "put_secret", Key: "apps/api/password", ValueBase64: ptr(base64.StdEncoding.EncodeToString([]byte(v2)))},
	}}).ok(t, 200, nil)
	r := e.call("ops", "GET", tp+"/secrets/db", nil)
	if r.ok(t, 200, nil); string(r.body) != v2 {
		t.Errorf("txn read: %q", r.body)
	}
	if got := e.getSecret("ops", "db"); got != v1 {
		t.Errorf("main sees the transaction's write: %q", got)
	}
	var list wire.SecretList
	e.call("ops", "GET", tp+"/secrets", nil).ok(t, 200, &list)
	if len(list.Items) != 2 {
		t.Errorf("txn list: %+v", list)
	}
	e.call("ops", "GET", tp+"/secrets/db?rev=1", nil).wantError(t, 400, "invalid_request")
	var res wire.CommitResult
	e.call("ops", "POST", tp+"/commit", map[string]any{}).ok(t, 200, &res)
	if got := e.getSecret("ops", "db"); got != v2 {
		t.Errorf("after commit: %q", got)
	}
	if got := e.getSecret("ops", "apps/api/password"); got != v2 {
		t.Errorf("after commit: %q", got)
	}
	e.call("ops", "PUT", tp+"/secrets/db", "x").wantError(t, 409, "txn_committed")
}

// TestSecretsNeverInPlaintext writes secrets every way there is (PUT, batch,
// transaction), rotates, reverts and rolls back, then searches every Git
// object, every file of the data directory (the index and the journals
// included), the audit log and the server's debug log for the plaintexts:
// there must be no hit. Revert and rollback must restore a configuration
// and its secret together.
func TestSecretsNeverInPlaintext(t *testing.T) {
	e := newSecEnv(t, secrets.Options{})
	var plains []string
	plain := func(what string) string {
		p := newPlaintext(t, what)
		plains = append(plains, p)
		return p
	}
	var res wire.CommitResult
	dbV1, dbV2, dbTxn := plain("db-v1"), plain("db-v2"), plain("db-txn")
	e.putSecret("ops", "apps/web/db", dbV1)                                       // 1
	e.call("ops", "POST", repoPath+"/commits", wire.CommitRequest{Ops: []wire.Op{ // 2
		{Op: "put", Key: "apps/web/config.json", Value: ptr(`{"db_user":"web","version":1}`)},
		{Op: "put_secret", Key: "apps/web/api-token", Value: ptr(plain("token-v1"))},
	}}).ok(t, 200, &res)
	e.call("ops", "POST", repoPath+"/commits", wire.CommitRequest{Ops: []wire.Op{ // 3: config and secret change together
		{Op: "put", Key: "apps/web/config.json", Value: ptr(`{"db_user":"web","version":2}`)},
		{Op: "put_secret", Key: "apps/web/db", Value: ptr(dbV2)},
	}}).ok(t, 200, &res)
	changeRev := res.Revision
	// A failed write and a refused plaintext must not leak either.
	e.call("ops", "PUT", repoPath+"/secrets/apps/web/db", plain("refused"), "If-Match", `"1111111111111111111111111111111111111111"`).wantError(t, 412, "precondition_failed")
	e.call("ops", "PUT", repoPath+"/kv/apps/web/leak.sops.json", plain("refused-kv")).wantError(t, 422, "not_encrypted")

	// Rotate (new data keys), then revert the change: config and secret
	// go back together.
	var rot wire.RotateResult
	e.call("ops", "POST", repoPath+"/secrets/rotate", map[string]any{"prefix": "apps/"}).ok(t, 200, &rot) // 4
	if !rot.Changed || !slices.Equal(rot.Keys, []string{"apps/web/api-token", "apps/web/db"}) {
		t.Fatalf("rotate: %+v", rot)
	}
	if got := e.getSecret("ops", "apps/web/db"); got != dbV2 {
		t.Fatalf("after rotation: %q", got)
	}
	// Revert the rotation (the value stays: only its encryption changes),
	// then the change itself.
	e.call("ops", "POST", repoPath+"/revert", map[string]any{"revision": rot.Revision}).ok(t, 200, &res) // 5
	e.call("ops", "POST", repoPath+"/revert", map[string]any{"revision": changeRev}).ok(t, 200, &res)    // 6
	if got := e.getSecret("ops", "apps/web/db"); got != dbV1 {
		t.Errorf("revert left the secret at %q", got)
	}
	if got := string(e.call("ops", "GET", repoPath+"/kv/apps/web/config.json", nil).body); !strings.Contains(got, `"version":1`) {
		t.Errorf("revert left the config at %s", got)
	}

	// Through a transaction: a new recipient (an administrator's change
	// of .gitstate/sops.yaml), a secret, a rotation keeping data keys.
	otherKey := filepath.Join(t.TempDir(), "other.key")
	other, err := secrets.New(secrets.Options{KeyFile: otherKey})
	if err != nil {
		t.Fatal(err)
	}
	var tx wire.Txn
	e.call("root", "POST", repoPath+"/txns", map[string]any{}).ok(t, 201, &tx)
	tp := repoPath + "/txns/" + tx.ID
	e.call("root", "PUT", tp+"/kv/.gitstate/sops.yaml", "creation_rules:\n  - prefix: apps/\n    age: "+other.Recipient()+"\n").ok(t, 200, nil)
	e.call("root", "PUT", tp+"/secrets/apps/web/db", dbTxn).ok(t, 200, nil)
	e.call("root", "POST", tp+"/secrets/rotate", map[string]any{"prefix": "apps/", "keep_data_key": true}).ok(t, 200, &rot)
	if !slices.Equal(rot.Keys, []string{"apps/web/api-token"}) {
		t.Errorf("txn updatekeys rotated %v, want only the secret without the new recipient", rot.Keys)
	}
	e.call("root", "POST", tp+"/commit", map[string]any{}).ok(t, 200, &res) // 7
	doc := e.call("ops", "GET", repoPath+"/kv/apps/web/db.sops.json", nil).body
	if p, err := other.Decrypt(context.Background(), "apps/web/db.sops.json", doc); err != nil || string(p) != dbTxn {
		t.Errorf("the new recipient cannot decrypt: %v", err)
	}

	// Roll back to revision 3: both keys return to their values there.
	e.call("root", "POST", repoPath+"/rollback", map[string]any{"to": changeRev, "prefix": "apps/"}).ok(t, 200, &res) // 8
	if got := e.getSecret("ops", "apps/web/db"); got != dbV2 {
		t.Errorf("rollback left the secret at %q", got)
	}
	if got := string(e.call("ops", "GET", repoPath+"/kv/apps/web/config.json", nil).body); !strings.Contains(got, `"version":2`) {
		t.Errorf("rollback left the config at %s", got)
	}
	// Every revision's secrets still read.
	for rev, want := range map[string]string{"1": dbV1, "3": dbV2, "6": dbV1, "7": dbTxn} {
		r := e.call("ops", "GET", repoPath+"/secrets/apps/web/db?rev="+rev, nil)
		if r.ok(t, 200, nil); string(r.body) != want {
			t.Errorf("rev %s: %q, want %q", rev, r.body, want)
		}
	}
	e.call("ops", "GET", repoPath+"/secrets", nil).ok(t, 200, nil)

	// Now search. Git objects first, decompressed.
	e.stop()
	gitDir := filepath.Join(e.dir, "repos", storage.DefaultRepo+".git")
	needles := map[string][]byte{}
	for _, p := range plains {
		needles[p] = []byte(p)
		needles[p+" (base64)"] = []byte(base64.StdEncoding.EncodeToString([]byte(p)))
	}
	hits := func(where string, data []byte) {
		for name, n := range needles {
			if bytes.Contains(data, n) {
				t.Errorf("%s holds the plaintext %s", where, name)
			}
		}
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed to scan the objects")
	}
	out, err := exec.Command("git", "-C", gitDir, "cat-file", "--batch-all-objects", "--batch").Output()
	if err != nil {
		t.Fatalf("git cat-file: %v", err)
	}
	if n := bytes.Count(out, []byte(" blob ")); n < 8 {
		t.Fatalf("only %d blobs in the repo: the scan is not looking at the right place", n)
	}
	hits("a Git object", out)
	// Every file of the data directory: the index, the journals, packs.
	files := 0
	filepath.Walk(e.dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		hits(path, data)
		return nil
	})
	if files < 5 {
		t.Fatalf("only %d files in the data directory", files)
	}
	audit, err := os.ReadFile(e.audit.path)
	if err != nil || len(audit) == 0 {
		t.Fatalf("audit log: %v", err)
	}
	hits("the audit log", audit)
	logs := e.log.Bytes()
	if !bytes.Contains(logs, []byte("request")) {
		t.Fatalf("the captured server log is empty")
	}
	hits("the server log", logs)
}

// sopsBin returns the sops CLI: $SOPS_BIN, or sops on $PATH. Without it the
// test is skipped, except in CI (CI=true), where it is a failure.
func sopsBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SOPS_BIN"); p != "" {
		return p
	}
	if p, err := exec.LookPath("sops"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the sops CLI is not installed and CI=true: .ci/run must install it (.ci/install-sops.sh) and set SOPS_BIN")
	}
	t.Skip("the sops CLI is not installed: SOPS_BIN=$(.ci/install-sops.sh) to run the interop tests")
	return ""
}

// runSops runs the sops CLI with the data directory's age key.
func runSops(t *testing.T, bin, keyFile string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE="+keyFile, "SOPS_DISABLE_VERSION_CHECK=1")
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sops %v: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

func TestSecretsSOPSInterop(t *testing.T) {
	bin := sopsBin(t)
	e := newSecEnv(t, secrets.Options{})
	keyFile := filepath.Join(e.dir, secrets.KeyFileName)
	v := newPlaintext(t, "interop") + "\nsecond line\n"
	e.putSecret("ops", "apps/web/db", v)
	if err := e.st.Flush(); err != nil {
		t.Fatal(err)
	}

	// The sops CLI decrypts what we wrote, taken from Git.
	gitDir := filepath.Join(e.dir, "repos", storage.DefaultRepo+".git")
	doc, err := exec.Command("git", "-C", gitDir, "show", "main:apps/web/db.sops.json").Output()
	if err != nil {
		t.Fatalf("git show: %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "db.sops.json")
	os.WriteFile(path, doc, 0o600)
	if got := runSops(t, bin, keyFile, nil, "decrypt", "--input-type", "binary", "--output-type", "binary", path); string(got) != v {
		t.Errorf("sops decrypt (binary): %q", got)
	}
	var asJSON map[string]string
	if err := json.Unmarshal(runSops(t, bin, keyFile, nil, "decrypt", path), &asJSON); err != nil || asJSON["data"] != v {
		t.Errorf("sops decrypt (json): %v %v", asJSON, err)
	}

	// And we read what the sops CLI encrypted, written as a value at the
	// secret's path: an opaque value (binary format) and a JSON file.
	raw := filepath.Join(dir, "token.txt")
	token := newPlaintext(t, "cli-token")
	os.WriteFile(raw, []byte(token), 0o600)
	enc := runSops(t, bin, keyFile, nil, "encrypt", "--age", e.eng.Recipient(), "--input-type", "binary", "--output-type", "json", raw)
	e.call("ops", "PUT", repoPath+"/kv/apps/web/token.sops.json", enc).ok(t, 200, nil)
	if got := e.getSecret("ops", "apps/web/token"); got != token {
		t.Errorf("sops-encrypted opaque value: %q", got)
	}
	cfg := filepath.Join(dir, "creds.json")
	pw := newPlaintext(t, "cli-json")
	os.WriteFile(cfg, []byte(`{"user":"web","password":"`+pw+`","port":5432}`), 0o600)
	enc = runSops(t, bin, keyFile, nil, "encrypt", "--age", e.eng.Recipient(), cfg)
	if bytes.Contains(enc, []byte(pw)) {
		t.Fatal("sops left the password in plaintext")
	}
	e.call("ops", "PUT", repoPath+"/kv/apps/web/creds.sops.json", enc).ok(t, 200, nil)
	var creds map[string]any
	if err := json.Unmarshal([]byte(e.getSecret("ops", "apps/web/creds")), &creds); err != nil || creds["password"] != pw || creds["port"] != float64(5432) {
		t.Errorf("sops-encrypted JSON: %v %v", creds, err)
	}
	// Rotation keeps such a document's shape, and the CLI still reads it.
	e.call("ops", "POST", repoPath+"/secrets/rotate", map[string]any{"prefix": "apps/web/creds"}).ok(t, 200, nil)
	os.WriteFile(path, e.call("ops", "GET", repoPath+"/kv/apps/web/creds.sops.json", nil).body, 0o600)
	var after map[string]any
	if err := json.Unmarshal(runSops(t, bin, keyFile, nil, "decrypt", "--input-type", "json", "--output-type", "json", path), &after); err != nil || after["password"] != pw {
		t.Errorf("sops decrypt after rotation: %v %v", after, err)
	}
}

// vaultEnv returns the Vault dev server of the integration tests (see
// .ci/start-vault.sh): skipped without VAULT_ADDR, a failure in CI.
func vaultEnv(t *testing.T) (addr, token string) {
	t.Helper()
	addr, token = os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	if addr == "" || token == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("VAULT_ADDR and VAULT_TOKEN are not set, and CI=true: .ci/run must start Vault (.ci/start-vault.sh)")
		}
		t.Skip("VAULT_ADDR is not set: start a Vault dev server with .ci/start-vault.sh and export what it prints to run the Vault tests")
	}
	return addr, token
}

// TestSecretsVaultHTTP makes a Vault transit key the recipient of a
// prefix, through .gitstate/sops.yaml, and checks that the server, another
// server sharing only the Vault, and the sops CLI decrypt the secret.
func TestSecretsVaultHTTP(t *testing.T) {
	addr, token := vaultEnv(t)
	e := newSecEnv(t, secrets.Options{VaultAddr: addr, VaultToken: token})
	var tx wire.Txn
	e.call("root", "POST", repoPath+"/txns", map[string]any{}).ok(t, 201, &tx)
	e.call("root", "PUT", repoPath+"/txns/"+tx.ID+"/kv/.gitstate/sops.yaml",
		"creation_rules:\n  - prefix: vault/\n    hc_vault_transit_uri: transit/keys/gitstate-test\n").ok(t, 200, nil)
	e.call("root", "POST", repoPath+"/txns/"+tx.ID+"/commit", map[string]any{}).ok(t, 200, nil)
	v := newPlaintext(t, "vault")
	e.putSecret("ops", "vault/db", v)
	doc := e.call("ops", "GET", repoPath+"/kv/vault/db.sops.json", nil).body
	var d struct {
		Sops struct {
			Age     []any `json:"age"`
			HCVault []struct {
				KeyName string `json:"key_name"`
			} `json:"hc_vault"`
		} `json:"sops"`
	}
	if err := json.Unmarshal(doc, &d); err != nil || len(d.Sops.HCVault) != 1 || d.Sops.HCVault[0].KeyName != "gitstate-test" || len(d.Sops.Age) != 0 {
		t.Fatalf("document: %s", doc)
	}
	e.eng.Forget()
	if got := e.getSecret("ops", "vault/db"); got != v {
		t.Fatalf("read through Vault: %q", got)
	}
	other, err := secrets.New(secrets.Options{KeyFile: filepath.Join(t.TempDir(), "k"), VaultAddr: addr, VaultToken: token})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := other.Decrypt(context.Background(), "vault/db.sops.json", doc); err != nil || string(p) != v {
		t.Errorf("another server with the Vault: %q %v", p, err)
	}
	if _, err := exec.LookPath("sops"); err != nil && os.Getenv("SOPS_BIN") == "" {
		return
	}
	bin := sopsBin(t)
	path := filepath.Join(t.TempDir(), "db.sops.json")
	os.WriteFile(path, doc, 0o600)
	cmd := exec.Command(bin, "decrypt", "--input-type", "binary", "--output-type", "binary", path)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+addr, "VAULT_TOKEN="+token, "SOPS_DISABLE_VERSION_CHECK=1")
	if out, err := cmd.Output(); err != nil || string(out) != v {
		t.Errorf("sops CLI through Vault: %q %v", out, err)
	}
}

// TestSecretsConcurrentPuts has writers race on one secret with two values:
// the no-op guard's retries must never surface as a 412 nobody asked for.
func TestSecretsConcurrentPuts(t *testing.T) {
	e := newSecEnv(t, secrets.Options{})
	values := []string{newPlaintext(t, "a"), newPlaintext(t, "b")}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 6 {
				req, _ := http.NewRequest("PUT", e.srv.URL+repoPath+"/secrets/race", strings.NewReader(values[(g+i)%2]))
				req.Header.Set("Authorization", "Bearer ops")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					errs <- res.Status + " " + string(body)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := e.getSecret("ops", "race"); got != values[0] && got != values[1] {
		t.Errorf("final value %q", got)
	}
}

// forgetCounter wraps the engine and counts Forget calls: a test double of
// api.Secrets.
type forgetCounter struct {
	api.Secrets
	mu     sync.Mutex
	forgot int
}

func (f *forgetCounter) Forget() {
	f.mu.Lock()
	f.forgot++
	f.mu.Unlock()
	f.Secrets.Forget()
}

// TestRotationDropsCache checks that every rotation drops the plaintext
// cache, on main and in a transaction.
func TestRotationDropsCache(t *testing.T) {
	dir := t.TempDir()
	st, err := storage.Open(context.Background(), dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	txns := txn.NewManager(st, txn.Options{})
	defer txns.Close()
	eng, err := secrets.New(secrets.Options{KeyFile: filepath.Join(dir, secrets.KeyFileName)})
	if err != nil {
		t.Fatal(err)
	}
	fc := &forgetCounter{Secrets: eng}
	srv := httptest.NewServer(api.New(api.Options{Store: st, Auth: secretAuth{}, Txns: txns, Secrets: fc}))
	defer srv.Close()
	e := &secEnv{t: t, srv: srv, st: st}
	e.putSecret("ops", "a", "1")
	e.call("ops", "POST", repoPath+"/secrets/rotate", map[string]any{}).ok(t, 200, nil)
	var tx wire.Txn
	e.call("ops", "POST", repoPath+"/txns", map[string]any{}).ok(t, 201, &tx)
	e.call("ops", "POST", repoPath+"/txns/"+tx.ID+"/secrets/rotate", map[string]any{"keep_data_key": true}).ok(t, 200, nil)
	if fc.forgot != 2 {
		t.Errorf("Forget called %d times for 2 rotations", fc.forgot)
	}
	e.srv = nil // closed by the defers
}
