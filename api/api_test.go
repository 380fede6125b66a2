package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
)

// Limits of the test server, small so that tests can cross them cheaply.
const (
	testMaxValue = 4 << 10
	testMaxBody  = 64 << 10
)

// The tokens of testAuth.
const (
	adminToken = "admin-token"
	rwToken    = "rw-token"     // scopes read and write: no admin
	teamAToken = "team-a-token" // read and write, keys under team-a/ only
	noToken    = "-"            // send no Authorization header
)

// tokenAuth is a test Authenticator: a bearer token names a principal.
type tokenAuth map[string]*api.Principal

var _ api.Authenticator = tokenAuth(nil)

func (a tokenAuth) Authenticate(r *http.Request) (*api.Principal, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if p := a[tok]; ok && p != nil {
		return p, nil
	}
	return nil, gitstate.Errorf(gitstate.KindUnauthorized, "unauthorized", "unknown token")
}

var testAuth = tokenAuth{
	adminToken: {Name: "admin", Scopes: []api.Scope{api.ScopeAdmin}, Repos: []string{"*"}},
	rwToken:    {Name: "rw", Scopes: []api.Scope{api.ScopeRead, api.ScopeWrite}, Repos: []string{"*"}},
	teamAToken: {Name: "team-a", Scopes: []api.Scope{api.ScopeRead, api.ScopeWrite}, Repos: []string{"*"}, Prefixes: []string{"team-a/"}},
}

// testServer is the API over real HTTP on loopback, over a store in a
// temporary directory.
type testServer struct {
	url   string
	store *storage.Store
}

// newTestServer starts a server. At cleanup it stops it, closes the store
// and runs git fsck --strict on every repo.
func newTestServer(t *testing.T) *testServer {
	t.Helper()
	dir := t.TempDir()
	st, err := storage.Open(context.Background(), dir, storage.Options{MaxValueSize: testMaxValue})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	hs := httptest.NewServer(api.New(api.Options{
		Store:        st,
		Auth:         testAuth,
		MaxValueSize: testMaxValue,
		MaxBodyBytes: testMaxBody,
	}))
	t.Cleanup(func() {
		hs.Close()
		names := st.Repos()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
		if _, err := exec.LookPath("git"); err != nil {
			return
		}
		for _, n := range names {
			gitDir := filepath.Join(dir, "repos", n+".git")
			out, err := exec.Command("git", "-C", gitDir, "fsck", "--strict", "--no-progress").CombinedOutput()
			if err != nil || len(fsckProblems(out)) > 0 {
				t.Errorf("git fsck --strict %s: %v\n%s", gitDir, err, out)
			}
		}
	})
	return &testServer{url: hs.URL, store: st}
}

// fsckProblems returns the lines of git fsck's output that are not
// notices (an empty repo has no main yet: "HEAD points to an unborn branch").
func fsckProblems(out []byte) []string {
	var lines []string
	for line := range strings.Lines(string(out)) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "notice:") {
			lines = append(lines, line)
		}
	}
	return lines
}

// request is one HTTP request. target is the request URI's path and query,
// sent exactly as written: neither cleaned nor re-escaped.
type request struct {
	method string
	target string
	body   string
	header map[string]string
	token  string // default adminToken; noToken for none
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (ts *testServer) send(t *testing.T, rq request) *response {
	t.Helper()
	req, err := http.NewRequest(rq.method, ts.url, strings.NewReader(rq.body))
	if err != nil {
		t.Fatal(err)
	}
	path, query, _ := strings.Cut(rq.target, "?")
	req.URL.Opaque = path
	req.URL.RawQuery = query
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	switch rq.token {
	case "":
		req.Header.Set("Authorization", "Bearer "+adminToken)
	case noToken:
	default:
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.target, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &response{status: res.StatusCode, header: res.Header, body: b}
}

// decode decodes a JSON body into v.
func (r *response) decode(t *testing.T, v any) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %s", ct, r.body)
	}
	// Decode into a zero value: encoding/json keeps the fields of a reused
	// value that the body omits.
	reflect.ValueOf(v).Elem().SetZero()
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// ok decodes a 2xx body into v (when v is not nil), failing otherwise.
func (r *response) ok(t *testing.T, want int, v any) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body %s", r.status, want, r.body)
	}
	if v != nil {
		r.decode(t, v)
	}
}

// wireError decodes an error body.
func (r *response) wireError(t *testing.T) wire.Error {
	t.Helper()
	var e wire.ErrorResponse
	r.decode(t, &e)
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Errorf("error without code or message: %s", r.body)
	}
	return e.Error
}

// wantError checks an error response's status and code.
func (r *response) wantError(t *testing.T, status int, code string) wire.Error {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	e := r.wireError(t)
	if e.Code != code {
		t.Fatalf("code %q, want %q; body %s", e.Code, code, r.body)
	}
	return e
}

func (ts *testServer) head(t *testing.T, repo string) storage.Head {
	t.Helper()
	r, err := ts.store.Repo(repo)
	if err != nil {
		t.Fatal(err)
	}
	return r.Head()
}

func (ts *testServer) put(t *testing.T, key, value string) wire.WriteResult {
	t.Helper()
	var res wire.WriteResult
	ts.send(t, request{method: "PUT", target: "/v1/repos/default/kv/" + key, body: value}).ok(t, 200, &res)
	return res
}

func (ts *testServer) commit(t *testing.T, cr wire.CommitRequest) wire.CommitResult {
	t.Helper()
	var res wire.CommitResult
	ts.send(t, request{method: "POST", target: "/v1/repos/default/commits", body: jsonString(t, cr)}).ok(t, 200, &res)
	return res
}

func (ts *testServer) get(t *testing.T, key string) string {
	t.Helper()
	r := ts.send(t, request{method: "GET", target: "/v1/repos/default/kv/" + key})
	r.ok(t, 200, nil)
	return string(r.body)
}

func (ts *testServer) absent(t *testing.T, key string) {
	t.Helper()
	ts.send(t, request{method: "GET", target: "/v1/repos/default/kv/" + key}).wantError(t, 404, "key_not_found")
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ptr[T any](v T) *T { return &v }

func blobID(value string) string {
	return storage.HashObject(storage.BlobObject, []byte(value)).String()
}

// TestBadInput sends every kind of bad request the API must refuse and
// checks the status, the error code, the keys named, and that nothing
// changed.
func TestBadInput(t *testing.T) {
	ts := newTestServer(t)
	ts.put(t, "a", "1")     // revision 1
	ts.put(t, "dir/x", "x") // revision 2
	ts.put(t, "a", "2")     // revision 3
	wrongETag := blobID("not the value")
	unknownCommit := strings.Repeat("deadbeef", 5)
	long := strings.Repeat("k", storage.MaxKeyLen+1)
	batch := func(body string) request {
		return request{method: "POST", target: "/v1/repos/default/commits", body: body}
	}
	okOps := `"ops":[{"op":"put","key":"k","value":"v"}]`

	tests := []struct {
		name    string
		req     request
		status  int
		code    string
		keys    []string // when not nil, the error's keys
		missing string   // when set, the error's missing
	}{
		// Bad keys, percent-encoded or raw: never cleaned, always refused.
		{"key ..", request{method: "PUT", target: "/v1/repos/default/kv/%2E%2E", body: "v"}, 400, "invalid_key", nil, ""},
		{"key a/../b encoded", request{method: "PUT", target: "/v1/repos/default/kv/a/%2E%2E/b", body: "v"}, 400, "invalid_key", nil, ""},
		{"key a/../b raw", request{method: "PUT", target: "/v1/repos/default/kv/a/../b", body: "v"}, 400, "invalid_key", nil, ""},
		{"key ./a raw", request{method: "PUT", target: "/v1/repos/default/kv/./a", body: "v"}, 400, "invalid_key", nil, ""},
		{"key a//b encoded", request{method: "PUT", target: "/v1/repos/default/kv/a%2F%2Fb", body: "v"}, 400, "invalid_key", nil, ""},
		{"key a//b raw", request{method: "PUT", target: "/v1/repos/default/kv/a//b", body: "v"}, 400, "invalid_key", nil, ""},
		{"key trailing slash", request{method: "PUT", target: "/v1/repos/default/kv/a/", body: "v"}, 400, "invalid_key", nil, ""},
		{"key leading slash", request{method: "PUT", target: "/v1/repos/default/kv//a", body: "v"}, 400, "invalid_key", nil, ""},
		{"key .git segment", request{method: "PUT", target: "/v1/repos/default/kv/a/.git/b", body: "v"}, 400, "invalid_key", nil, ""},
		{"key .GIT segment", request{method: "PUT", target: "/v1/repos/default/kv/.GIT", body: "v"}, 400, "invalid_key", nil, ""},
		{"key control char", request{method: "PUT", target: "/v1/repos/default/kv/a%01b", body: "v"}, 400, "invalid_key", nil, ""},
		{"key DEL char", request{method: "PUT", target: "/v1/repos/default/kv/a%7Fb", body: "v"}, 400, "invalid_key", nil, ""},
		{"key backslash", request{method: "PUT", target: "/v1/repos/default/kv/a%5Cb", body: "v"}, 400, "invalid_key", nil, ""},
		{"key not UTF-8", request{method: "PUT", target: "/v1/repos/default/kv/a%FF", body: "v"}, 400, "invalid_key", nil, ""},
		{"key 1025 bytes", request{method: "PUT", target: "/v1/repos/default/kv/" + long, body: "v"}, 400, "invalid_key", nil, ""},
		{"get bad key", request{method: "GET", target: "/v1/repos/default/kv/a/%2E%2E"}, 400, "invalid_key", nil, ""},
		{"delete bad key", request{method: "DELETE", target: "/v1/repos/default/kv/a%2F%2Fb"}, 400, "invalid_key", nil, ""},
		{"batch bad key", batch(`{"ops":[{"op":"put","key":"a/../b","value":"v"}]}`), 400, "invalid_key", nil, ""},
		{"batch move bad from", batch(`{"ops":[{"op":"move","from":"a/","to":"b"}]}`), 400, "invalid_key", nil, ""},
		{"batch precondition bad key", batch(`{` + okOps + `,"preconditions":[{"key":"/a","absent":true}]}`), 400, "invalid_key", nil, ""},
		{"list bad prefix", request{method: "GET", target: "/v1/repos/default/kv?prefix=a/../"}, 400, "invalid_key", nil, ""},
		{"log bad key", request{method: "GET", target: "/v1/repos/default/commits?key=a//b"}, 400, "invalid_key", nil, ""},
		{"rollback bad prefix", request{method: "POST", target: "/v1/repos/default/rollback", body: `{"to":1,"prefix":"../"}`}, 400, "invalid_key", nil, ""},

		// Bad repo names.
		{"repo uppercase", request{method: "PUT", target: "/v1/repos/Default/kv/a", body: "v"}, 400, "invalid_repo_name", nil, ""},
		{"repo leading dash", request{method: "PUT", target: "/v1/repos/-a/kv/a", body: "v"}, 400, "invalid_repo_name", nil, ""},
		{"repo 64 chars", request{method: "PUT", target: "/v1/repos/" + strings.Repeat("r", 64) + "/kv/a", body: "v"}, 400, "invalid_repo_name", nil, ""},
		{"repo get uppercase", request{method: "GET", target: "/v1/repos/Default"}, 400, "invalid_repo_name", nil, ""},
		{"create repo uppercase", request{method: "POST", target: "/v1/repos", body: `{"name":"Staging"}`}, 400, "invalid_repo_name", nil, ""},
		{"create repo leading dash", request{method: "POST", target: "/v1/repos", body: `{"name":"-staging"}`}, 400, "invalid_repo_name", nil, ""},
		{"create repo 64 chars", request{method: "POST", target: "/v1/repos", body: `{"name":"` + strings.Repeat("r", 64) + `"}`}, 400, "invalid_repo_name", nil, ""},
		{"create repo empty name", request{method: "POST", target: "/v1/repos", body: `{}`}, 400, "invalid_repo_name", nil, ""},
		{"create repo exists", request{method: "POST", target: "/v1/repos", body: `{"name":"default"}`}, 409, "repo_exists", nil, ""},

		// Oversized bodies.
		{"put value over limit", request{method: "PUT", target: "/v1/repos/default/kv/big", body: strings.Repeat("v", testMaxValue+1)}, 413, "value_too_large", nil, ""},
		{"put body over body limit", request{method: "PUT", target: "/v1/repos/default/kv/big", body: strings.Repeat("v", testMaxBody+1)}, 413, "value_too_large", nil, ""},
		{"batch value over limit", batch(jsonString(t, wire.CommitRequest{Ops: []wire.Op{{Op: "put", Key: "big", Value: ptr(strings.Repeat("v", testMaxValue+1))}}})), 413, "value_too_large", []string{"big"}, ""},
		{"batch value_base64 over limit", batch(jsonString(t, wire.CommitRequest{Ops: []wire.Op{{Op: "put", Key: "big", ValueBase64: ptr(base64.StdEncoding.EncodeToString(make([]byte, testMaxValue+1)))}}})), 413, "value_too_large", []string{"big"}, ""},
		{"batch body over limit", batch(`{"message":"` + strings.Repeat("m", testMaxBody) + `",` + okOps + `}`), 413, "body_too_large", nil, ""},
		{"revert body over limit", request{method: "POST", target: "/v1/repos/default/revert", body: `{"revision":1,"message":"` + strings.Repeat("m", testMaxBody) + `"}`}, 413, "body_too_large", nil, ""},
		{"rollback body over limit", request{method: "POST", target: "/v1/repos/default/rollback", body: `{"to":1,"message":"` + strings.Repeat("m", testMaxBody) + `"}`}, 413, "body_too_large", nil, ""},
		{"create repo body over limit", request{method: "POST", target: "/v1/repos", body: `{"name":"` + strings.Repeat("r", testMaxBody) + `"}`}, 413, "body_too_large", nil, ""},

		// Malformed JSON.
		{"batch truncated JSON", batch(`{"ops":[`), 400, "invalid_request", nil, ""},
		{"batch empty body", batch(``), 400, "invalid_request", nil, ""},
		{"batch not an object", batch(`[]`), 400, "invalid_request", nil, ""},
		{"batch wrong field type", batch(`{"ops":"put"}`), 400, "invalid_request", nil, ""},
		{"batch trailing data", batch(`{` + okOps + `} {}`), 400, "invalid_request", nil, ""},
		{"batch unknown field", batch(`{` + okOps + `,"opps":[]}`), 400, "invalid_request", nil, ""},
		{"batch unknown op field", batch(`{"ops":[{"op":"put","key":"k","value":"v","vaule":"w"}]}`), 400, "invalid_request", nil, ""},
		{"batch no ops", batch(`{"ops":[]}`), 400, "invalid_request", nil, ""},
		{"batch unknown op", batch(`{"ops":[{"op":"patch","key":"k","value":"v"}]}`), 400, "unknown_op", nil, ""},
		{"batch put without value", batch(`{"ops":[{"op":"put","key":"k"}]}`), 400, "invalid_request", nil, ""},
		{"batch put with both values", batch(`{"ops":[{"op":"put","key":"k","value":"v","value_base64":"dg=="}]}`), 400, "invalid_request", nil, ""},
		{"batch bad base64", batch(`{"ops":[{"op":"put","key":"k","value_base64":"not base64!"}]}`), 400, "invalid_request", nil, ""},
		{"batch key twice", batch(`{"ops":[{"op":"put","key":"k","value":"1"},{"op":"put","key":"k","value":"2"}]}`), 400, "duplicate_key", []string{"k"}, ""},
		{"batch put then delete", batch(`{"ops":[{"op":"put","key":"a","value":"3"},{"op":"delete","key":"a"}]}`), 400, "duplicate_key", []string{"a"}, ""},
		{"batch move onto a put key", batch(`{"ops":[{"op":"put","key":"b","value":"1"},{"op":"move","from":"a","to":"b"}]}`), 400, "duplicate_key", []string{"b"}, ""},
		{"batch move from a put key", batch(`{"ops":[{"op":"put","key":"a","value":"3"},{"op":"move","from":"a","to":"c"}]}`), 400, "duplicate_key", []string{"a"}, ""},
		{"batch two moves from a key", batch(`{"ops":[{"op":"move","from":"a","to":"c"},{"op":"move","from":"a","to":"d"}]}`), 400, "duplicate_key", []string{"a"}, ""},
		{"batch secret and its file", batch(`{"ops":[{"op":"put_secret","key":"s","value":"1"},{"op":"put","key":"s.sops.json","value":"{}"}]}`), 400, "duplicate_key", []string{"s.sops.json"}, ""},
		{"batch precondition neither", batch(`{` + okOps + `,"preconditions":[{"key":"a"}]}`), 400, "invalid_request", nil, ""},
		{"batch precondition both", batch(`{` + okOps + `,"preconditions":[{"key":"a","absent":true,"etag":"` + wrongETag + `"}]}`), 400, "invalid_request", nil, ""},
		{"batch precondition bad etag", batch(`{` + okOps + `,"preconditions":[{"key":"a","etag":"xyz"}]}`), 400, "invalid_request", nil, ""},
		{"revert malformed", request{method: "POST", target: "/v1/repos/default/revert", body: `{"revision":`}, 400, "invalid_request", nil, ""},
		{"revert unknown field", request{method: "POST", target: "/v1/repos/default/revert", body: `{"revision":1,"forse":true}`}, 400, "invalid_request", nil, ""},
		{"revert no revision", request{method: "POST", target: "/v1/repos/default/revert", body: `{}`}, 400, "invalid_request", nil, ""},
		{"rollback no to", request{method: "POST", target: "/v1/repos/default/rollback", body: `{"prefix":"a"}`}, 400, "invalid_request", nil, ""},
		{"create repo malformed", request{method: "POST", target: "/v1/repos", body: `{"name":`}, 400, "invalid_request", nil, ""},

		// Bad query parameters and headers.
		{"list limit 0", request{method: "GET", target: "/v1/repos/default/kv?limit=0"}, 400, "invalid_request", nil, ""},
		{"list limit not a number", request{method: "GET", target: "/v1/repos/default/kv?limit=ten"}, 400, "invalid_request", nil, ""},
		{"list values not a bool", request{method: "GET", target: "/v1/repos/default/kv?values=maybe"}, 400, "invalid_request", nil, ""},
		{"log limit too large", request{method: "GET", target: "/v1/repos/default/commits?limit=1000000"}, 400, "invalid_request", nil, ""},
		{"diff patch not a bool", request{method: "GET", target: "/v1/repos/default/diff?patch=maybe"}, 400, "invalid_request", nil, ""},
		{"delete prefix not a bool", request{method: "DELETE", target: "/v1/repos/default/kv/dir?prefix=maybe"}, 400, "invalid_request", nil, ""},
		{"put If-None-Match etag", request{method: "PUT", target: "/v1/repos/default/kv/a", body: "v", header: map[string]string{"If-None-Match": `"` + wrongETag + `"`}}, 400, "invalid_request", nil, ""},
		{"put If-Match list", request{method: "PUT", target: "/v1/repos/default/kv/a", body: "v", header: map[string]string{"If-Match": `"` + wrongETag + `", "` + blobID("2") + `"`}}, 400, "invalid_request", nil, ""},

		// Unknown revisions.
		{"get rev too large", request{method: "GET", target: "/v1/repos/default/kv/a?rev=4"}, 404, "revision_not_found", nil, ""},
		{"get rev huge number", request{method: "GET", target: "/v1/repos/default/kv/a?rev=99999999999999999999"}, 404, "revision_not_found", nil, ""},
		{"get rev unknown commit", request{method: "GET", target: "/v1/repos/default/kv/a?rev=" + unknownCommit}, 404, "revision_not_found", nil, ""},
		{"get rev garbage", request{method: "GET", target: "/v1/repos/default/kv/a?rev=main~1"}, 400, "invalid_revision", nil, ""},
		{"list rev too large", request{method: "GET", target: "/v1/repos/default/kv?rev=99"}, 404, "revision_not_found", nil, ""},
		{"list rev garbage", request{method: "GET", target: "/v1/repos/default/kv?rev=HEAD"}, 400, "invalid_revision", nil, ""},
		{"commit rev too large", request{method: "GET", target: "/v1/repos/default/commits/99"}, 404, "revision_not_found", nil, ""},
		{"commit rev unknown commit", request{method: "GET", target: "/v1/repos/default/commits/" + unknownCommit}, 404, "revision_not_found", nil, ""},
		{"commit rev garbage", request{method: "GET", target: "/v1/repos/default/commits/xyz"}, 400, "invalid_revision", nil, ""},
		{"log after garbage", request{method: "GET", target: "/v1/repos/default/commits?after=xyz"}, 400, "invalid_revision", nil, ""},
		{"diff from too large", request{method: "GET", target: "/v1/repos/default/diff?from=99"}, 404, "revision_not_found", nil, ""},
		{"diff to garbage", request{method: "GET", target: "/v1/repos/default/diff?to=xyz"}, 400, "invalid_revision", nil, ""},
		{"revert rev too large", request{method: "POST", target: "/v1/repos/default/revert", body: `{"revision":99}`}, 404, "revision_not_found", nil, ""},
		{"revert rev 0", request{method: "POST", target: "/v1/repos/default/revert", body: `{"revision":0}`}, 404, "revision_not_found", nil, ""},
		{"revert rev garbage", request{method: "POST", target: "/v1/repos/default/revert", body: `{"revision":"xyz"}`}, 400, "invalid_revision", nil, ""},
		{"revert rev bad type", request{method: "POST", target: "/v1/repos/default/revert", body: `{"revision":true}`}, 400, "invalid_request", nil, ""},
		{"rollback to unknown commit", request{method: "POST", target: "/v1/repos/default/rollback", body: `{"to":"` + unknownCommit + `"}`}, 404, "revision_not_found", nil, ""},
		{"rollback to garbage", request{method: "POST", target: "/v1/repos/default/rollback", body: `{"to":"xyz"}`}, 400, "invalid_revision", nil, ""},
		{"batch base_revision too large", batch(`{` + okOps + `,"base_revision":99}`), 404, "revision_not_found", nil, ""},
		{"batch base_revision garbage", batch(`{` + okOps + `,"base_revision":"xyz"}`), 400, "invalid_revision", nil, ""},

		// Unknown repo.
		{"get unknown repo", request{method: "GET", target: "/v1/repos/nope/kv/a"}, 404, "repo_not_found", nil, ""},
		{"put unknown repo", request{method: "PUT", target: "/v1/repos/nope/kv/a", body: "v"}, 404, "repo_not_found", nil, ""},
		{"delete unknown repo", request{method: "DELETE", target: "/v1/repos/nope/kv/a"}, 404, "repo_not_found", nil, ""},
		{"repo unknown", request{method: "GET", target: "/v1/repos/nope"}, 404, "repo_not_found", nil, ""},
		{"list unknown repo", request{method: "GET", target: "/v1/repos/nope/kv"}, 404, "repo_not_found", nil, ""},
		{"batch unknown repo", request{method: "POST", target: "/v1/repos/nope/commits", body: `{` + okOps + `}`}, 404, "repo_not_found", nil, ""},
		{"log unknown repo", request{method: "GET", target: "/v1/repos/nope/commits"}, 404, "repo_not_found", nil, ""},
		{"commit unknown repo", request{method: "GET", target: "/v1/repos/nope/commits/1"}, 404, "repo_not_found", nil, ""},
		{"diff unknown repo", request{method: "GET", target: "/v1/repos/nope/diff"}, 404, "repo_not_found", nil, ""},
		{"revert unknown repo", request{method: "POST", target: "/v1/repos/nope/revert", body: `{"revision":1}`}, 404, "repo_not_found", nil, ""},
		{"rollback unknown repo", request{method: "POST", target: "/v1/repos/nope/rollback", body: `{"to":1}`}, 404, "repo_not_found", nil, ""},

		// Failed preconditions.
		{"put If-Match wrong etag", request{method: "PUT", target: "/v1/repos/default/kv/a", body: "v", header: map[string]string{"If-Match": `"` + wrongETag + `"`}}, 412, "precondition_failed", []string{"a"}, ""},
		{"put If-Match old etag", request{method: "PUT", target: "/v1/repos/default/kv/a", body: "v", header: map[string]string{"If-Match": `"` + blobID("1") + `"`}}, 412, "precondition_failed", []string{"a"}, ""},
		{"put If-Match malformed", request{method: "PUT", target: "/v1/repos/default/kv/a", body: "v", header: map[string]string{"If-Match": `"xyz"`}}, 412, "precondition_failed", []string{"a"}, ""},
		{"put If-Match * absent", request{method: "PUT", target: "/v1/repos/default/kv/new", body: "v", header: map[string]string{"If-Match": `*`}}, 412, "precondition_failed", []string{"new"}, ""},
		{"put If-None-Match * existing", request{method: "PUT", target: "/v1/repos/default/kv/a", body: "v", header: map[string]string{"If-None-Match": `*`}}, 412, "precondition_failed", []string{"a"}, ""},
		{"delete If-Match wrong etag", request{method: "DELETE", target: "/v1/repos/default/kv/a", header: map[string]string{"If-Match": `"` + wrongETag + `"`}}, 412, "precondition_failed", []string{"a"}, ""},
		{"batch preconditions", batch(jsonString(t, wire.CommitRequest{
			Ops: []wire.Op{{Op: "put", Key: "a", Value: ptr("3")}, {Op: "delete", Key: "dir/x"}},
			Preconditions: []wire.Precondition{
				{Key: "a", ETag: wrongETag},        // fails
				{Key: "dir/x", Absent: true},       // fails
				{Key: "new", Absent: true},         // holds
				{Key: "dir/x", ETag: blobID("x")},  // holds
				{Key: "dir/y", ETag: blobID("x")},  // fails: absent
				{Key: "dir", ETag: blobID("dir/")}, // fails: a directory
			},
		})), 412, "precondition_failed", []string{"a", "dir/x", "dir/y", "dir"}, ""},

		// Conflicts.
		{"batch changed since base", batch(`{"ops":[{"op":"put","key":"a","value":"3"},{"op":"put","key":"dir/x","value":"y"}],"base_revision":1}`), 409, "changed_since_base", []string{"a", "dir/x"}, ""},
		{"batch changed since base commit", batch(`{"ops":[{"op":"delete","key":"a"}],"base_revision":"` + revCommit(t, ts, 2) + `"}`), 409, "changed_since_base", []string{"a"}, ""},
		{"batch move changed since base", batch(`{"ops":[{"op":"move","from":"a","to":"b"}],"base_revision":2}`), 409, "changed_since_base", []string{"a"}, ""},
		{"put under a value", request{method: "PUT", target: "/v1/repos/default/kv/a/b", body: "v"}, 409, "key_conflict", nil, ""},
		{"put over a directory", request{method: "PUT", target: "/v1/repos/default/kv/dir", body: "v"}, 409, "key_conflict", []string{"dir"}, ""},
		{"batch put under a value", batch(`{"ops":[{"op":"put","key":"ok","value":"v"},{"op":"put","key":"a/b/c","value":"v"}]}`), 409, "key_conflict", nil, ""},
		{"batch move onto a key", batch(`{"ops":[{"op":"move","from":"a","to":"dir/x"}]}`), 409, "key_exists", []string{"dir/x"}, ""},
		{"batch move absent", batch(`{"ops":[{"op":"move","from":"nope","to":"b"}]}`), 404, "key_not_found", []string{"nope"}, ""},

		// Absent keys.
		{"get absent", request{method: "GET", target: "/v1/repos/default/kv/nope"}, 404, "key_not_found", nil, ""},
		{"get directory", request{method: "GET", target: "/v1/repos/default/kv/dir"}, 404, "key_not_found", nil, ""},
		{"get absent at old rev", request{method: "GET", target: "/v1/repos/default/kv/dir/x?rev=1"}, 404, "key_not_found", nil, ""},
		{"delete absent", request{method: "DELETE", target: "/v1/repos/default/kv/nope"}, 404, "key_not_found", []string{"nope"}, ""},
		{"delete directory", request{method: "DELETE", target: "/v1/repos/default/kv/dir"}, 404, "key_not_found", []string{"dir"}, ""},
		{"delete absent prefix", request{method: "DELETE", target: "/v1/repos/default/kv/nope?prefix=true"}, 404, "key_not_found", nil, ""},

		// Authentication and permissions.
		{"no token", request{method: "GET", target: "/v1/repos/default/kv/a", token: noToken}, 401, "unauthorized", nil, ""},
		{"unknown token", request{method: "PUT", target: "/v1/repos/default/kv/a", body: "v", token: "wrong"}, 401, "unauthorized", nil, ""},
		{"reserved put", request{method: "PUT", target: "/v1/repos/default/kv/.gitstate/x", body: "v", token: rwToken}, 403, "reserved_key", []string{".gitstate/x"}, ""},
		{"reserved delete", request{method: "DELETE", target: "/v1/repos/default/kv/.gitstate/x", token: rwToken}, 403, "reserved_key", []string{".gitstate/x"}, ""},
		{"reserved batch", request{method: "POST", target: "/v1/repos/default/commits", body: `{"ops":[{"op":"put","key":"ok","value":"v"},{"op":"put","key":".gitstate/policy","value":"v"}]}`, token: rwToken}, 403, "reserved_key", []string{".gitstate/policy"}, ""},
		{"reserved move", request{method: "POST", target: "/v1/repos/default/commits", body: `{"ops":[{"op":"move","from":"a","to":".gitstate/a"}]}`, token: rwToken}, 403, "reserved_key", []string{".gitstate/a"}, ""},
		{"create repo without admin", request{method: "POST", target: "/v1/repos", body: `{"name":"staging"}`, token: rwToken}, 403, "forbidden", nil, "scope:admin"},

		// Routing.
		{"wrong method on a key", request{method: "POST", target: "/v1/repos/default/kv/a", body: "v"}, 405, "method_not_allowed", nil, ""},
		{"wrong method on repos", request{method: "DELETE", target: "/v1/repos"}, 405, "method_not_allowed", nil, ""},
		{"wrong method on commits", request{method: "PUT", target: "/v1/repos/default/commits", body: "{}"}, 405, "method_not_allowed", nil, ""},
		{"unknown route", request{method: "GET", target: "/v2/repos"}, 404, "not_found", nil, ""},
		{"unknown repo route", request{method: "GET", target: "/v1/repos/default/keys"}, 404, "not_found", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.head(t, "default")
			repos := ts.store.Repos()
			r := ts.send(t, tt.req)
			e := r.wantError(t, tt.status, tt.code)
			if tt.keys != nil && !slices.Equal(e.Keys, tt.keys) {
				t.Errorf("keys %q, want %q", e.Keys, tt.keys)
			}
			if tt.missing != "" && e.Missing != tt.missing {
				t.Errorf("missing %q, want %q", e.Missing, tt.missing)
			}
			if after := ts.head(t, "default"); after != before {
				t.Errorf("head moved from %d to %d", before.Revision, after.Revision)
			}
			if got := ts.store.Repos(); !slices.Equal(got, repos) {
				t.Errorf("repos changed from %v to %v", repos, got)
			}
		})
	}
	if got := ts.get(t, "a"); got != "2" {
		t.Errorf("a = %q after the bad requests, want 2", got)
	}
}

// TestBatchDuplicateKeyInTxn checks that a transaction's batch, validated
// as main's, refuses two ops on one key and leaves the branch as it was.
func TestBatchDuplicateKeyInTxn(t *testing.T) {
	e := newTxnEnv(t)
	var tx wire.Txn
	e.must("alice", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
	e.must("alice", "PUT", repoPath+"/txns/"+tx.ID+"/kv/k", "1", nil, 200)
	var before wire.Txn
	e.must("alice", "GET", repoPath+"/txns/"+tx.ID, nil, &before, 200)
	dup := wire.CommitRequest{Ops: []wire.Op{{Op: "put", Key: "k", Value: ptr("2")}, {Op: "put", Key: "k", Value: ptr("3")}}}
	if status, code := e.do("alice", "POST", repoPath+"/txns/"+tx.ID+"/commits", dup, nil); status != 400 || code != "duplicate_key" {
		t.Fatalf("duplicate key in a transaction's batch: %d %q, want 400 duplicate_key", status, code)
	}
	var after wire.Txn
	e.must("alice", "GET", repoPath+"/txns/"+tx.ID, nil, &after, 200)
	if after.HeadCommit != before.HeadCommit {
		t.Errorf("the branch moved from %s to %s", before.HeadCommit, after.HeadCommit)
	}
}

// TestIfMatchMalformedMessage checks that an If-Match no value can match
// names its tag quoted once, however the client quoted it.
func TestIfMatchMalformedMessage(t *testing.T) {
	ts := newTestServer(t)
	ts.put(t, "a", "1")
	zero := strings.Repeat("0", 40)
	for _, tt := range []struct{ im, want string }{
		{`"deadbeef"`, `If-Match "deadbeef" matches no value: an entity tag is a value's etag, 40 hex digits`},
		{`deadbeef`, `If-Match "deadbeef" matches no value: an entity tag is a value's etag, 40 hex digits`},
		{`W/"deadbeef"`, `If-Match "deadbeef" matches no value: an entity tag is a value's etag, 40 hex digits`},
		// Well formed, but no value has the zero id.
		{`"` + zero + `"`, `If-Match "` + zero + `" matches no value: no value has the zero id as its etag`},
	} {
		r := ts.send(t, request{method: "PUT", target: "/v1/repos/default/kv/a", body: "2", header: map[string]string{"If-Match": tt.im}})
		if e := r.wantError(t, 412, "precondition_failed"); e.Message != tt.want {
			t.Errorf("If-Match %s: message %q, want %q", tt.im, e.Message, tt.want)
		}
	}
}

// revCommit returns the commit id of a revision of the default repo.
func revCommit(t *testing.T, ts *testServer, rev int64) string {
	t.Helper()
	var ci wire.CommitInfo
	ts.send(t, request{method: "GET", target: "/v1/repos/default/commits/" + strconv.FormatInt(rev, 10)}).ok(t, 200, &ci)
	return ci.Commit
}

func TestRequestID(t *testing.T) {
	ts := newTestServer(t)
	r := ts.send(t, request{method: "GET", target: "/healthz", token: noToken, header: map[string]string{"X-Request-Id": "my-request.1"}})
	r.ok(t, 200, nil)
	if got := r.header.Get("X-Request-Id"); got != "my-request.1" {
		t.Errorf("X-Request-Id %q, want the request's", got)
	}
	r = ts.send(t, request{method: "GET", target: "/v1/repos/default/kv/nope", header: map[string]string{"X-Request-Id": "bad id!"}})
	if got := r.header.Get("X-Request-Id"); got == "" || got == "bad id!" {
		t.Errorf("X-Request-Id %q, want a new one", got)
	}
}

// TestRequestIDWithoutRoute: the 404 and 405 of a request no route serves
// carry X-Request-Id too, with or without a token.
func TestRequestIDWithoutRoute(t *testing.T) {
	ts := newTestServer(t)
	for _, tt := range []struct {
		method, target string
		status         int
	}{
		{"GET", "/v1/nope", 404},
		{"GET", "/", 404},
		{"DELETE", "/v1/nope", 404},
		{"DELETE", "/v1/repos", 405},
		{"POST", "/v1/repos/default/kv/a", 405},
		{"PATCH", "/v1/repos/default/kv/a", 405},
		{"OPTIONS", "/v1/repos", 405},
	} {
		for _, token := range []string{adminToken, noToken} {
			r := ts.send(t, request{method: tt.method, target: tt.target, token: token, header: map[string]string{"X-Request-Id": "req-unrouted"}})
			if token == adminToken && r.status != tt.status {
				t.Errorf("%s %s: %d, want %d", tt.method, tt.target, r.status, tt.status)
			}
			if got := r.header.Get("X-Request-Id"); got != "req-unrouted" {
				t.Errorf("%s %s (token %q): %d with X-Request-Id %q, want the request's", tt.method, tt.target, token, r.status, got)
			}
		}
	}
}

// TestMetricsMethodLabel: a request's method reaches the metrics only as
// one of the methods the API serves, or OTHER: requests no route serves are
// measured, before their token is checked, so any other method would add a
// series per distinct method a client makes up.
func TestMetricsMethodLabel(t *testing.T) {
	ts := newTestServer(t)
	for i := range 20 {
		for _, target := range []string{"/v1/nope", "/v1/repos/default/kv/a"} {
			ts.send(t, request{method: "X" + strconv.Itoa(i), target: target, token: noToken})
		}
	}
	r := ts.send(t, request{method: "GET", target: "/metrics", token: noToken})
	methods := map[string]bool{}
	for _, line := range strings.Split(string(r.body), "\n") {
		if !strings.HasPrefix(line, "gitstate_http_request_duration_seconds_count{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `method="`)
		m, _, _ := strings.Cut(rest, `"`)
		methods[m] = true
	}
	if !methods["OTHER"] {
		t.Errorf("no OTHER series among the methods %v", methods)
	}
	for m := range methods {
		if strings.HasPrefix(m, "X") {
			t.Errorf("a series for the made-up method %q", m)
		}
	}
}

func TestOpenRoutes(t *testing.T) {
	ts := newTestServer(t)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		r := ts.send(t, request{method: "GET", target: path, token: noToken})
		if r.status != 200 {
			t.Errorf("GET %s without a token: %d %s", path, r.status, r.body)
		}
	}
	var h wire.Health
	ts.send(t, request{method: "GET", target: "/readyz", token: noToken}).ok(t, 200, &h)
	if h.Status != "ready" {
		t.Errorf("readyz status %q", h.Status)
	}
	ts.send(t, request{method: "GET", target: "/v1/repos", token: noToken}).wantError(t, 401, "unauthorized")
}

func TestRepos(t *testing.T) {
	ts := newTestServer(t)
	var repo wire.Repo
	ts.send(t, request{method: "POST", target: "/v1/repos", body: `{"name":"staging-2"}`}).ok(t, 201, &repo)
	if repo.Name != "staging-2" || repo.Revision != 0 || repo.Commit != "" {
		t.Errorf("created %+v", repo)
	}
	var list wire.RepoList
	ts.send(t, request{method: "GET", target: "/v1/repos", token: rwToken}).ok(t, 200, &list)
	var names []string
	for _, r := range list.Repos {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"default", "staging-2"}) {
		t.Errorf("repos %v", names)
	}
	w := ts.send(t, request{method: "PUT", target: "/v1/repos/staging-2/kv/a", body: "v"})
	var wr wire.WriteResult
	w.ok(t, 200, &wr)
	ts.send(t, request{method: "GET", target: "/v1/repos/staging-2"}).ok(t, 200, &repo)
	if repo.Revision != 1 || repo.Commit != wr.Commit {
		t.Errorf("repo %+v after a write %+v", repo, wr)
	}
	if h := ts.head(t, "default"); h.Revision != 0 {
		t.Errorf("default moved to %d", h.Revision)
	}
}

func TestGetAndPut(t *testing.T) {
	ts := newTestServer(t)
	w1 := ts.put(t, "apps/web/config", "v1")
	if w1.Revision != 1 || !w1.Changed || w1.ETag != blobID("v1") || len(w1.Commit) != 40 {
		t.Fatalf("first put %+v", w1)
	}
	w2 := ts.put(t, "other", "o")
	w3 := ts.put(t, "apps/web/config", "v2")

	t.Run("headers", func(t *testing.T) {
		r := ts.send(t, request{method: "GET", target: "/v1/repos/default/kv/apps/web/config"})
		r.ok(t, 200, nil)
		want := map[string]string{
			"ETag":                    `"` + blobID("v2") + `"`,
			"X-Gitstate-Revision":     "3",
			"X-Gitstate-Commit":       w3.Commit,
			"X-Gitstate-Mod-Revision": "3",
			"Content-Type":            "application/octet-stream",
			"Content-Length":          "2",
		}
		for k, v := range want {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s: %q, want %q", k, got, v)
			}
		}
		if string(r.body) != "v2" {
			t.Errorf("body %q", r.body)
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Errorf("no X-Request-Id")
		}
		r = ts.send(t, request{method: "GET", target: "/v1/repos/default/kv/other"})
		if got := r.header.Get("X-Gitstate-Mod-Revision"); got != "2" {
			t.Errorf("other: mod revision %q, want 2", got)
		}
	})

	t.Run("rev", func(t *testing.T) {
		for _, rev := range []string{"2", w2.Commit, w2.Commit[:7], strings.ToUpper(w2.Commit[:12])} {
			r := ts.send(t, request{method: "GET", target: "/v1/repos/default/kv/apps/web/config?rev=" + rev})
			r.ok(t, 200, nil)
			if string(r.body) != "v1" {
				t.Errorf("rev=%s: %q, want v1", rev, r.body)
			}
			if r.header.Get("X-Gitstate-Revision") != "2" || r.header.Get("X-Gitstate-Commit") != w2.Commit ||
				r.header.Get("X-Gitstate-Mod-Revision") != "1" || r.header.Get("ETag") != `"`+blobID("v1")+`"` {
				t.Errorf("rev=%s: headers %v", rev, r.header)
			}
		}
		r := ts.send(t, request{method: "GET", target: "/v1/repos/default/kv/other?rev=1"})
		r.wantError(t, 404, "key_not_found")
	})

	t.Run("If-None-Match", func(t *testing.T) {
		for _, inm := range []string{`"` + blobID("v2") + `"`, `W/"` + blobID("v2") + `"`, `"` + blobID("x") + `", "` + blobID("v2") + `"`, `*`} {
			r := ts.send(t, request{method: "GET", target: "/v1/repos/default/kv/apps/web/config", header: map[string]string{"If-None-Match": inm}})
			if r.status != 304 || len(r.body) != 0 {
				t.Errorf("If-None-Match %s: %d %q, want 304 without a body", inm, r.status, r.body)
			}
			if r.header.Get("ETag") != `"`+blobID("v2")+`"` {
				t.Errorf("304 without the ETag")
			}
		}
		r := ts.send(t, request{method: "GET", target: "/v1/repos/default/kv/apps/web/config", header: map[string]string{"If-None-Match": `"` + blobID("v1") + `"`}})
		if r.status != 200 || string(r.body) != "v2" {
			t.Errorf("stale If-None-Match: %d %q", r.status, r.body)
		}
	})

	t.Run("HEAD", func(t *testing.T) {
		r := ts.send(t, request{method: "HEAD", target: "/v1/repos/default/kv/apps/web/config"})
		if r.status != 200 || len(r.body) != 0 {
			t.Fatalf("HEAD: %d %q", r.status, r.body)
		}
		if r.header.Get("ETag") != `"`+blobID("v2")+`"` || r.header.Get("Content-Length") != "2" || r.header.Get("X-Gitstate-Revision") != "3" {
			t.Errorf("HEAD headers %v", r.header)
		}
		if r := ts.send(t, request{method: "HEAD", target: "/v1/repos/default/kv/nope"}); r.status != 404 {
			t.Errorf("HEAD absent: %d", r.status)
		}
	})

	t.Run("no-op", func(t *testing.T) {
		before := ts.head(t, "default")
		w := ts.put(t, "apps/web/config", "v2")
		if w.Changed || w.Revision != before.Revision || w.Commit != before.Commit.String() || w.ETag != blobID("v2") {
			t.Errorf("no-op put %+v, head %d", w, before.Revision)
		}
		if h := ts.head(t, "default"); h != before {
			t.Errorf("no-op put moved the head to %d", h.Revision)
		}
		res := ts.commit(t, wire.CommitRequest{Ops: []wire.Op{{Op: "put", Key: "other", Value: ptr("o")}, {Op: "delete", Key: "nope"}}})
		if res.Changed || res.Revision != before.Revision {
			t.Errorf("no-op batch %+v", res)
		}
	})

	t.Run("preconditions", func(t *testing.T) {
		var w wire.WriteResult
		ts.send(t, request{method: "PUT", target: "/v1/repos/default/kv/apps/web/config", body: "v3",
			header: map[string]string{"If-Match": `"` + blobID("v2") + `"`}}).ok(t, 200, &w)
		if !w.Changed || w.ETag != blobID("v3") {
			t.Errorf("If-Match put %+v", w)
		}
		// The bare etag of a write result works too.
		ts.send(t, request{method: "PUT", target: "/v1/repos/default/kv/apps/web/config", body: "v4",
			header: map[string]string{"If-Match": w.ETag}}).ok(t, 200, &w)
		ts.send(t, request{method: "PUT", target: "/v1/repos/default/kv/created", body: "c",
			header: map[string]string{"If-None-Match": "*"}}).ok(t, 200, &w)
		ts.send(t, request{method: "PUT", target: "/v1/repos/default/kv/created", body: "d",
			header: map[string]string{"If-Match": "*"}}).ok(t, 200, &w)
		var d wire.DeleteResult
		ts.send(t, request{method: "DELETE", target: "/v1/repos/default/kv/created",
			header: map[string]string{"If-Match": `"` + blobID("d") + `"`}}).ok(t, 200, &d)
		if !d.Changed || d.Revision != ts.head(t, "default").Revision {
			t.Errorf("delete %+v", d)
		}
		ts.absent(t, "created")
	})

	t.Run("message and author", func(t *testing.T) {
		var w wire.WriteResult
		ts.send(t, request{method: "PUT", target: "/v1/repos/default/kv/msg?message=set%20msg%20key", body: "m", token: rwToken}).ok(t, 200, &w)
		var ci wire.CommitInfo
		ts.send(t, request{method: "GET", target: "/v1/repos/default/commits/" + w.Commit}).ok(t, 200, &ci)
		if !strings.HasPrefix(ci.Message, "set msg key") || ci.Author != "rw" || ci.Revision != w.Revision {
			t.Errorf("commit %+v", ci)
		}
	})

	t.Run("escaped key", func(t *testing.T) {
		ts.send(t, request{method: "PUT", target: "/v1/repos/default/kv/sp%20ace/%C3%A9t%C3%A9%3F", body: "s"}).ok(t, 200, nil)
		var list wire.ListResponse
		ts.send(t, request{method: "GET", target: "/v1/repos/default/kv?prefix=sp"}).ok(t, 200, &list)
		if len(list.Items) != 1 || list.Items[0].Key != "sp ace/été?" {
			t.Errorf("list %+v", list.Items)
		}
		if got := ts.get(t, "sp%20ace/%C3%A9t%C3%A9%3F"); got != "s" {
			t.Errorf("get %q", got)
		}
	})

	t.Run("delete prefix", func(t *testing.T) {
		ts.put(t, "tree/a", "1")
		ts.put(t, "tree/b/c", "2")
		ts.put(t, "treetop", "3")
		var d wire.DeleteResult
		ts.send(t, request{method: "DELETE", target: "/v1/repos/default/kv/tree?prefix=true"}).ok(t, 200, &d)
		ts.absent(t, "tree/a")
		ts.absent(t, "tree/b/c")
		if ts.get(t, "treetop") != "3" {
			t.Errorf("treetop deleted")
		}
		var ci wire.CommitInfo
		ts.send(t, request{method: "GET", target: "/v1/repos/default/commits/" + strconv.FormatInt(d.Revision, 10)}).ok(t, 200, &ci)
		if len(ci.Changes) != 2 {
			t.Errorf("one commit should delete both keys: %+v", ci.Changes)
		}
	})

	t.Run("reserved key by an administrator", func(t *testing.T) {
		ts.put(t, ".gitstate/config", "c")
		if ts.get(t, ".gitstate/config") != "c" {
			t.Error("reserved key not written")
		}
		// Others may read it.
		ts.send(t, request{method: "GET", target: "/v1/repos/default/kv/.gitstate/config", token: rwToken}).ok(t, 200, nil)
	})
}

func TestList(t *testing.T) {
	ts := newTestServer(t)
	for _, k := range []string{"k/1", "k/2", "k/3", "k/4", "k/5", "l/1"} {
		ts.put(t, k, "value of "+k)
	}
	bin := string([]byte{0xff, 0x00, 0xfe})
	ts.put(t, "k/6", bin)
	pinned := ts.head(t, "default").Revision

	var page wire.ListResponse
	ts.send(t, request{method: "GET", target: "/v1/repos/default/kv?prefix=k/&limit=2"}).ok(t, 200, &page)
	if page.Revision != pinned || len(page.Items) != 2 || page.Items[0].Key != "k/1" || page.Items[1].Key != "k/2" || page.Next != "k/2" {
		t.Fatalf("first page %+v", page)
	}
	it := page.Items[0]
	if it.ETag != blobID("value of k/1") || it.Size != int64(len("value of k/1")) || it.ModRevision != 1 || it.Value != nil || it.ValueBase64 != nil {
		t.Errorf("item %+v", it)
	}

	// Writes after the first page are not seen by the pages that follow it
	// at its revision.
	ts.put(t, "k/3", "changed")
	ts.put(t, "k/2a", "added")
	var keys []string
	for next := page.Next; next != ""; {
		var p wire.ListResponse
		ts.send(t, request{method: "GET", target: "/v1/repos/default/kv?prefix=k/&limit=2&values=true&rev=" + strconv.FormatInt(pinned, 10) + "&after=" + next}).ok(t, 200, &p)
		if p.Revision != pinned {
			t.Fatalf("page at revision %d, want %d", p.Revision, pinned)
		}
		for _, it := range p.Items {
			keys = append(keys, it.Key)
			switch it.Key {
			case "k/3":
				if it.Value == nil || *it.Value != "value of k/3" {
					t.Errorf("k/3 at the pinned revision: %+v", it)
				}
			case "k/6":
				if it.Value != nil || it.ValueBase64 == nil || *it.ValueBase64 != base64.StdEncoding.EncodeToString([]byte(bin)) {
					t.Errorf("binary value: %+v", it)
				}
			}
		}
		next = p.Next
	}
	if want := []string{"k/3", "k/4", "k/5", "k/6"}; !slices.Equal(keys, want) {
		t.Errorf("pages after the first: %v, want %v", keys, want)
	}

	// At head the new writes are there.
	var all wire.ListResponse
	ts.send(t, request{method: "GET", target: "/v1/repos/default/kv?values=true"}).ok(t, 200, &all)
	keys = nil
	for _, it := range all.Items {
		keys = append(keys, it.Key)
	}
	if want := []string{"k/1", "k/2", "k/2a", "k/3", "k/4", "k/5", "k/6", "l/1"}; !slices.Equal(keys, want) || all.Next != "" {
		t.Errorf("list at head: %v next %q, want %v", keys, all.Next, want)
	}

	// A prefix need not end at a segment.
	var part wire.ListResponse
	ts.send(t, request{method: "GET", target: "/v1/repos/default/kv?prefix=k/2"}).ok(t, 200, &part)
	if len(part.Items) != 2 {
		t.Errorf("prefix k/2: %+v", part.Items)
	}
	// An empty repo lists nothing, with items [] rather than null.
	ts.send(t, request{method: "POST", target: "/v1/repos", body: `{"name":"empty"}`}).ok(t, 201, nil)
	r := ts.send(t, request{method: "GET", target: "/v1/repos/empty/kv"})
	r.ok(t, 200, nil)
	if !bytes.Contains(r.body, []byte(`"items":[]`)) {
		t.Errorf("empty list %s", r.body)
	}
}

func TestCommits(t *testing.T) {
	ts := newTestServer(t)
	ts.put(t, "apps/web/image", "web:1")     // 1
	ts.put(t, "apps/api/image", "api:1")     // 2
	ts.put(t, "apps/old/config", "old-conf") // 3
	res := ts.commit(t, wire.CommitRequest{  // 4
		Message: "move config",
		Ops: []wire.Op{
			{Op: "move", From: "apps/old/config", To: "apps/web/config"},
			{Op: "put", Key: "apps/web/image", Value: ptr("web:2")},
			{Op: "put", Key: "bin", ValueBase64: ptr(base64.StdEncoding.EncodeToString([]byte{0, 1, 2}))},
		},
		Preconditions: []wire.Precondition{{Key: "apps/web/image", ETag: blobID("web:1")}, {Key: "bin", Absent: true}},
		BaseRevision:  "3",
	})
	if res.Revision != 4 || !res.Changed {
		t.Fatalf("batch %+v", res)
	}
	ts.commit(t, wire.CommitRequest{Ops: []wire.Op{{Op: "delete", Key: "apps/api/image"}}}) // 5

	var ci wire.CommitInfo
	ts.send(t, request{method: "GET", target: "/v1/repos/default/commits/4"}).ok(t, 200, &ci)
	if ci.Revision != 4 || ci.Commit != res.Commit || len(ci.Parents) != 1 || ci.Author != "admin" || ci.AuthorEmail != "admin@gitstate.local" ||
		!strings.HasPrefix(ci.Message, "move config") || ci.Time.IsZero() {
		t.Errorf("commit 4: %+v", ci)
	}
	wantChanges := []wire.Change{
		{Key: "apps/web/config", Op: "move", From: "apps/old/config", ETag: blobID("old-conf")},
		{Key: "apps/web/image", Op: "put", ETag: blobID("web:2")},
		{Key: "bin", Op: "put", ETag: storage.HashObject(storage.BlobObject, []byte{0, 1, 2}).String()},
	}
	if !slices.Equal(ci.Changes, wantChanges) {
		t.Errorf("changes of 4:\n got %+v\nwant %+v", ci.Changes, wantChanges)
	}
	if ts.get(t, "apps/web/config") != "old-conf" {
		t.Error("move did not move")
	}
	ts.absent(t, "apps/old/config")
	var first wire.CommitInfo
	ts.send(t, request{method: "GET", target: "/v1/repos/default/commits/1"}).ok(t, 200, &first)
	if len(first.Parents) != 0 || first.Parents == nil {
		t.Errorf("revision 1 parents %v, want []", first.Parents)
	}

	revs := func(target string) ([]int64, wire.CommitList) {
		t.Helper()
		var l wire.CommitList
		ts.send(t, request{method: "GET", target: target}).ok(t, 200, &l)
		var out []int64
		for _, c := range l.Commits {
			out = append(out, c.Revision)
		}
		return out, l
	}
	if got, l := revs("/v1/repos/default/commits"); !slices.Equal(got, []int64{5, 4, 3, 2, 1}) || l.Next != 0 || l.Revision != 5 {
		t.Errorf("log: %v next %d revision %d", got, l.Next, l.Revision)
	}
	// Pages: next is the last revision listed while older ones remain, 0
	// on the page that reaches the oldest (even when it is full).
	for _, tt := range []struct {
		query string
		want  []int64
		next  int64
	}{
		{"limit=2", []int64{5, 4}, 4},
		{"limit=2&after=4", []int64{3, 2}, 2},
		{"limit=2&after=2", []int64{1}, 0},
		{"limit=2&after=3", []int64{2, 1}, 0},
		{"limit=5", []int64{5, 4, 3, 2, 1}, 0},
		{"limit=4", []int64{5, 4, 3, 2}, 2},
		{"after=1", nil, 0},
		{"key=apps/web/image&limit=1", []int64{4}, 4},
		{"key=apps/web/image&limit=1&after=4", []int64{1}, 0},
		{"key=apps/web/image&limit=2", []int64{4, 1}, 0},
		{"key=apps/old/config&limit=2", []int64{4, 3}, 0},
		{"prefix=apps/&limit=2&after=3", []int64{2, 1}, 0},
		// With prefix, older revisions are not scanned for one the prefix
		// keeps: next may lead to an empty last page.
		{"prefix=apps/api/&limit=2", []int64{5, 2}, 2},
		{"prefix=apps/api/&limit=2&after=2", nil, 0},
	} {
		if got, l := revs("/v1/repos/default/commits?" + tt.query); !slices.Equal(got, tt.want) || l.Next != tt.next {
			t.Errorf("log ?%s: %v next %d, want %v next %d", tt.query, got, l.Next, tt.want, tt.next)
		}
	}
	var got []int64
	var l wire.CommitList
	if got, _ := revs("/v1/repos/default/commits?after=" + res.Commit); !slices.Equal(got, []int64{3, 2, 1}) {
		t.Errorf("log after a commit id: %v", got)
	}
	if got, _ := revs("/v1/repos/default/commits?key=apps/web/image"); !slices.Equal(got, []int64{4, 1}) {
		t.Errorf("log of a key: %v", got)
	}
	// A move belongs to the history of both of its keys.
	if got, _ := revs("/v1/repos/default/commits?key=apps/old/config"); !slices.Equal(got, []int64{4, 3}) {
		t.Errorf("log of a moved key: %v", got)
	}
	got, l = revs("/v1/repos/default/commits?prefix=apps/api/")
	if !slices.Equal(got, []int64{5, 2}) {
		t.Errorf("log of a prefix: %v", got)
	} else if c := l.Commits[0].Changes; len(c) != 1 || c[0] != (wire.Change{Key: "apps/api/image", Op: "delete"}) {
		t.Errorf("delete change %+v", c)
	}
	got, l = revs("/v1/repos/default/commits?prefix=apps/web/")
	if !slices.Equal(got, []int64{4, 1}) || len(l.Commits[0].Changes) != 2 {
		t.Errorf("log of apps/web/: %v %+v", got, l.Commits)
	}
}

func TestDiff(t *testing.T) {
	ts := newTestServer(t)
	ts.put(t, "a", "one\ntwo\nthree\n")             // 1
	ts.put(t, "b", "bee\n")                         // 2
	ts.put(t, "bin", "\x00\x01")                    // 3
	ts.commit(t, wire.CommitRequest{Ops: []wire.Op{ // 4
		{Op: "put", Key: "a", Value: ptr("one\n2\nthree\n")},
		{Op: "delete", Key: "b"},
		{Op: "put", Key: "c", Value: ptr("sea\n")},
		{Op: "put", Key: "bin", Value: ptr("\x00\x02")},
	}})

	var d wire.DiffResponse
	ts.send(t, request{method: "GET", target: "/v1/repos/default/diff?from=3&to=4&patch=true"}).ok(t, 200, &d)
	if d.From != 3 || d.To != 4 || len(d.Changes) != 4 {
		t.Fatalf("diff %+v", d)
	}
	byKey := map[string]wire.DiffChange{}
	for _, c := range d.Changes {
		byKey[c.Key] = c
	}
	a := byKey["a"]
	if a.Op != "modified" || a.FromETag != blobID("one\ntwo\nthree\n") || a.ToETag != blobID("one\n2\nthree\n") {
		t.Errorf("a: %+v", a)
	}
	for _, line := range []string{"--- a/a", "+++ b/a", "@@", "-two", "+2", " one"} {
		if !strings.Contains(a.Patch, line+"\n") && !strings.Contains(a.Patch, line+" ") {
			t.Errorf("patch of a lacks %q:\n%s", line, a.Patch)
		}
	}
	if b := byKey["b"]; b.Op != "deleted" || b.ToETag != "" || b.FromETag != blobID("bee\n") || !strings.Contains(b.Patch, "+++ /dev/null") {
		t.Errorf("b: %+v", b)
	}
	if c := byKey["c"]; c.Op != "added" || c.FromETag != "" || !strings.Contains(c.Patch, "--- /dev/null") || !strings.Contains(c.Patch, "+sea") {
		t.Errorf("c: %+v", c)
	}
	if bin := byKey["bin"]; bin.Op != "modified" || bin.Patch != "" {
		t.Errorf("bin: %+v (binary values get no patch)", bin)
	}

	// Without patch, no patches; defaults are from 0 to head; prefix
	// filters.
	ts.send(t, request{method: "GET", target: "/v1/repos/default/diff"}).ok(t, 200, &d)
	if d.From != 0 || d.To != 4 || len(d.Changes) != 3 {
		t.Errorf("diff from empty: %+v", d)
	}
	for _, c := range d.Changes {
		if c.Op != "added" || c.Patch != "" {
			t.Errorf("diff from empty: %+v", c)
		}
	}
	ts.send(t, request{method: "GET", target: "/v1/repos/default/diff?from=1&prefix=b"}).ok(t, 200, &d)
	if len(d.Changes) != 1 || d.Changes[0].Key != "bin" {
		t.Errorf("diff with prefix b from 1: %+v", d.Changes)
	}
}

func TestRevertAndRollback(t *testing.T) {
	ts := newTestServer(t)
	ts.put(t, "app/a", "a1")                        // 1
	ts.put(t, "app/b", "b1")                        // 2
	ts.put(t, "db/x", "x1")                         // 3
	ts.commit(t, wire.CommitRequest{Ops: []wire.Op{ // 4: the change to undo
		{Op: "put", Key: "app/a", Value: ptr("a2")},
		{Op: "put", Key: "app/c", Value: ptr("c2")},
		{Op: "delete", Key: "app/b"},
	}})

	var res wire.CommitResult
	ts.send(t, request{method: "POST", target: "/v1/repos/default/revert", body: `{"revision":4}`}).ok(t, 200, &res)
	if res.Revision != 5 || !res.Changed {
		t.Fatalf("revert %+v", res)
	}
	if ts.get(t, "app/a") != "a1" || ts.get(t, "app/b") != "b1" {
		t.Error("revert did not restore app/a and app/b")
	}
	ts.absent(t, "app/c")

	// Reverting 5 (the revert) redoes 4; then 4's keys have changed since
	// 4, so reverting 4 again conflicts.
	ts.send(t, request{method: "POST", target: "/v1/repos/default/revert", body: `{"revision":"` + revCommit(t, ts, 5) + `"}`}).ok(t, 200, &res)
	ts.put(t, "app/a", "a3") // 7
	before := ts.head(t, "default")
	r := ts.send(t, request{method: "POST", target: "/v1/repos/default/revert", body: `{"revision":4}`})
	e := r.wantError(t, 409, "revert_conflict")
	if !slices.Equal(e.Keys, []string{"app/a"}) {
		t.Errorf("revert_conflict keys %v, want [app/a]", e.Keys)
	}
	if h := ts.head(t, "default"); h != before {
		t.Errorf("a failed revert moved the head")
	}
	ts.send(t, request{method: "POST", target: "/v1/repos/default/revert", body: `{"revision":4,"force":true,"message":"forced"}`}).ok(t, 200, &res)
	if ts.get(t, "app/a") != "a1" || ts.get(t, "app/b") != "b1" {
		t.Error("forced revert did not restore app/a and app/b")
	}

	// Rollback under app/ to revision 2: db/x is left alone.
	ts.put(t, "db/x", "x2")
	ts.put(t, "app/d", "d")
	ts.send(t, request{method: "POST", target: "/v1/repos/default/rollback", body: `{"to":2,"prefix":"app/"}`}).ok(t, 200, &res)
	if !res.Changed {
		t.Fatalf("rollback %+v", res)
	}
	var list wire.ListResponse
	ts.send(t, request{method: "GET", target: "/v1/repos/default/kv?values=true"}).ok(t, 200, &list)
	got := map[string]string{}
	for _, it := range list.Items {
		got[it.Key] = *it.Value
	}
	want := map[string]string{"app/a": "a1", "app/b": "b1", "db/x": "x2"}
	if len(got) != len(want) {
		t.Errorf("after rollback: %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("after rollback: %v, want %v", got, want)
			break
		}
	}
	// A second rollback changes nothing and makes no commit.
	before = ts.head(t, "default")
	ts.send(t, request{method: "POST", target: "/v1/repos/default/rollback", body: `{"to":2,"prefix":"app/"}`}).ok(t, 200, &res)
	if res.Changed || res.Revision != before.Revision || ts.head(t, "default") != before {
		t.Errorf("no-op rollback %+v", res)
	}
	// Rollback of everything to revision 0 empties the repo.
	ts.send(t, request{method: "POST", target: "/v1/repos/default/rollback", body: `{"to":0}`}).ok(t, 200, &res)
	ts.send(t, request{method: "GET", target: "/v1/repos/default/kv"}).ok(t, 200, &list)
	if len(list.Items) != 0 {
		t.Errorf("after rollback to 0: %+v", list.Items)
	}
}

// TestPrefixLimitedToken checks what a token limited to team-a/ sees and
// may do.
func TestPrefixLimitedToken(t *testing.T) {
	ts := newTestServer(t)
	ts.put(t, "team-a/app", "a1")                   // 1
	ts.put(t, "team-b/app", "b1")                   // 2
	ts.commit(t, wire.CommitRequest{Ops: []wire.Op{ // 3: both teams
		{Op: "put", Key: "team-a/app", Value: ptr("a2")},
		{Op: "put", Key: "team-b/app", Value: ptr("b2")},
	}})
	ts.put(t, "team-b/other", "b3") // 4
	asA := func(method, target, body string) *response {
		return ts.send(t, request{method: method, target: target, body: body, token: teamAToken})
	}

	var list wire.ListResponse
	asA("GET", "/v1/repos/default/kv?values=true", "").ok(t, 200, &list)
	if len(list.Items) != 1 || list.Items[0].Key != "team-a/app" {
		t.Errorf("list of \"\": %+v", list.Items)
	}
	asA("GET", "/v1/repos/default/kv?prefix=team-b/", "").ok(t, 200, &list)
	if len(list.Items) != 0 {
		t.Errorf("list of team-b/: %+v", list.Items)
	}

	var log wire.CommitList
	asA("GET", "/v1/repos/default/commits", "").ok(t, 200, &log)
	var revs []int64
	for _, c := range log.Commits {
		revs = append(revs, c.Revision)
		for _, ch := range c.Changes {
			if !strings.HasPrefix(ch.Key, "team-a/") {
				t.Errorf("revision %d shows %q", c.Revision, ch.Key)
			}
		}
	}
	if !slices.Equal(revs, []int64{3, 1}) {
		t.Errorf("log revisions %v, want [3 1]", revs)
	}
	asA("GET", "/v1/repos/default/commits?limit=1", "").ok(t, 200, &log)
	if len(log.Commits) != 1 || log.Commits[0].Revision != 3 || log.Next != 3 {
		t.Errorf("log page: %+v next %d", log.Commits, log.Next)
	}
	asA("GET", "/v1/repos/default/commits?limit=1&after=3", "").ok(t, 200, &log)
	if len(log.Commits) != 1 || log.Commits[0].Revision != 1 || log.Next != 0 {
		t.Errorf("log page 2: %+v next %d", log.Commits, log.Next)
	}
	// missing names no key the token may not see: "prefix" alone.
	if e := asA("GET", "/v1/repos/default/commits/2", "").wantError(t, 403, "forbidden"); e.Missing != "prefix" || strings.Contains(jsonString(t, e), "team-b") {
		t.Errorf("commit of team-b only: %+v, want missing prefix, naming no key", e)
	}

	var d wire.DiffResponse
	asA("GET", "/v1/repos/default/diff?patch=true", "").ok(t, 200, &d)
	if len(d.Changes) != 1 || d.Changes[0].Key != "team-a/app" {
		t.Errorf("diff: %+v", d.Changes)
	}

	e := asA("GET", "/v1/repos/default/kv/team-b/app", "").wantError(t, 403, "forbidden")
	if e.Missing != "prefix:team-b/app" {
		t.Errorf("missing %q", e.Missing)
	}
	before := ts.head(t, "default")
	e = asA("PUT", "/v1/repos/default/kv/team-b/app", "x").wantError(t, 403, "forbidden")
	if e.Missing != "prefix:team-b/app" {
		t.Errorf("missing %q", e.Missing)
	}
	e = asA("POST", "/v1/repos/default/commits", `{"ops":[{"op":"put","key":"team-a/x","value":"v"},{"op":"delete","key":"team-b/other"}]}`).wantError(t, 403, "forbidden")
	if e.Missing != "prefix:team-b/other" {
		t.Errorf("missing %q", e.Missing)
	}
	asA("POST", "/v1/repos/default/commits", `{"ops":[{"op":"move","from":"team-b/other","to":"team-a/stolen"}]}`).wantError(t, 403, "forbidden")
	asA("DELETE", "/v1/repos/default/kv/team?prefix=true", "").wantError(t, 403, "forbidden")
	// A revert of a revision that changed other keys names none of them.
	for _, rev := range []string{"2", "3"} {
		e := asA("POST", "/v1/repos/default/revert", `{"revision":`+rev+`}`).wantError(t, 403, "forbidden")
		if e.Missing != "prefix" || strings.Contains(jsonString(t, e), "team-b") {
			t.Errorf("revert of %s: %+v, want missing prefix, naming no key", rev, e)
		}
	}
	if h := ts.head(t, "default"); h != before {
		t.Errorf("refused writes moved the head")
	}

	// Inside its prefix it reads and writes.
	if r := asA("GET", "/v1/repos/default/kv/team-a/app", ""); r.status != 200 || string(r.body) != "a2" {
		t.Errorf("get own key: %d %s", r.status, r.body)
	}
	asA("PUT", "/v1/repos/default/kv/team-a/new", "n").ok(t, 200, nil)
	// A rollback of everything rolls back only its own keys.
	var res wire.CommitResult
	asA("POST", "/v1/repos/default/rollback", `{"to":0}`).ok(t, 200, &res)
	ts.absent(t, "team-a/app")
	ts.absent(t, "team-a/new")
	if ts.get(t, "team-b/app") != "b2" || ts.get(t, "team-b/other") != "b3" {
		t.Error("rollback by a team-a token changed team-b keys")
	}
}

// TestPutBodyLengths checks a PUT's value read with its length declared
// (read into one buffer of that size) and without (chunked): the same value
// is stored up to the limit, and one byte more is refused either way.
func TestPutBodyLengths(t *testing.T) {
	ts := newTestServer(t)
	put := func(key string, value []byte, chunked bool) *http.Response {
		t.Helper()
		var body io.Reader = bytes.NewReader(value)
		if chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
		req, err := http.NewRequest(http.MethodPut, ts.url+"/v1/repos/default/kv/"+key, body)
		if err != nil {
			t.Fatal(err)
		}
		if chunked {
			req.ContentLength = -1 // unknown: the transport sends it chunked
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	for _, chunked := range []bool{false, true} {
		for _, size := range []int{0, 1, testMaxValue - 1, testMaxValue, testMaxValue + 1} {
			key := "len/" + strconv.FormatBool(chunked) + "/" + strconv.Itoa(size)
			value := bytes.Repeat([]byte{'v'}, size)
			for i := range value {
				value[i] = byte('a' + i%26)
			}
			res := put(key, value, chunked)
			if size > testMaxValue {
				if res.StatusCode != http.StatusRequestEntityTooLarge {
					t.Errorf("chunked %v, %d bytes: status %d, want 413", chunked, size, res.StatusCode)
				}
				if got := ts.send(t, request{method: "GET", target: "/v1/repos/default/kv/" + key}); got.status != http.StatusNotFound {
					t.Errorf("chunked %v, %d bytes refused, but GET says %d", chunked, size, got.status)
				}
				continue
			}
			if res.StatusCode != http.StatusOK {
				t.Fatalf("chunked %v, %d bytes: status %d", chunked, size, res.StatusCode)
			}
			got := ts.send(t, request{method: "GET", target: "/v1/repos/default/kv/" + key})
			if got.status != http.StatusOK || !bytes.Equal(got.body, value) {
				t.Errorf("chunked %v, %d bytes: read back %d, %d bytes", chunked, size, got.status, len(got.body))
			}
		}
	}
}

// TestRevertAndRollbackOfAMove: undoing a move through the API is recorded
// as a move back, as the move itself is (issue 2: a reconciler must tell
// "moved" from "deleted").
func TestRevertAndRollbackOfAMove(t *testing.T) {
	ts := newTestServer(t)
	ts.put(t, "mv/old.yaml", "v")                                                                          // 1
	ts.commit(t, wire.CommitRequest{Ops: []wire.Op{{Op: "move", From: "mv/old.yaml", To: "mv/new.yaml"}}}) // 2
	back := wire.Change{Key: "mv/old.yaml", Op: "move", From: "mv/new.yaml", ETag: blobID("v")}
	again := wire.Change{Key: "mv/new.yaml", Op: "move", From: "mv/old.yaml", ETag: blobID("v")}
	for _, tt := range []struct {
		target, body string
		want         wire.Change
	}{
		{"/v1/repos/default/revert", `{"revision":2}`, back},            // 3
		{"/v1/repos/default/revert", `{"revision":3}`, again},           // 4: redoes the move
		{"/v1/repos/default/rollback", `{"to":1,"prefix":"mv/"}`, back}, // 5
	} {
		var res wire.CommitResult
		ts.send(t, request{method: "POST", target: tt.target, body: tt.body}).ok(t, 200, &res)
		var ci wire.CommitInfo
		ts.send(t, request{method: "GET", target: "/v1/repos/default/commits/" + strconv.FormatInt(res.Revision, 10)}).ok(t, 200, &ci)
		if !slices.Equal(ci.Changes, []wire.Change{tt.want}) {
			t.Errorf("%s %s: changes %+v, want [%+v]", tt.target, tt.body, ci.Changes, tt.want)
		}
		if ts.get(t, tt.want.Key) != "v" {
			t.Errorf("%s %s: %s is not v", tt.target, tt.body, tt.want.Key)
		}
		ts.absent(t, tt.want.From)
	}
}

// TestNegativeRevision: a negative revision is no revision (RevisionRef's
// minimum is 0): every route that takes one answers 400 invalid_revision,
// while a revision after the head stays 404 revision_not_found.
func TestNegativeRevision(t *testing.T) {
	ts := newTestServer(t)
	ts.put(t, "some/key", "v") // 1
	const b = "/v1/repos/default"
	for _, tt := range []struct {
		name, method, target, body string
	}{
		{"list", "GET", b + "/kv?rev=-1", ""},
		{"get", "GET", b + "/kv/some/key?rev=-1", ""},
		{"commit info", "GET", b + "/commits/-1", ""},
		{"commit list after", "GET", b + "/commits?after=-1", ""},
		{"diff from", "GET", b + "/diff?from=-1", ""},
		{"diff to", "GET", b + "/diff?to=-1", ""},
		{"revert", "POST", b + "/revert", `{"revision":-1}`},
		{"revert as a string", "POST", b + "/revert", `{"revision":"-1"}`},
		{"rollback", "POST", b + "/rollback", `{"to":-1}`},
		{"base_revision", "POST", b + "/commits", `{"ops":[{"op":"put","key":"k","value":"v"}],"base_revision":-3}`},
		{"long negative", "GET", b + "/commits/-12345678", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts.send(t, request{method: tt.method, target: tt.target, body: tt.body}).wantError(t, 400, "invalid_revision")
		})
	}
	ts.send(t, request{method: "GET", target: b + "/commits/2"}).wantError(t, 404, "revision_not_found")
	ts.send(t, request{method: "GET", target: b + "/kv/some/key?rev=2"}).wantError(t, 404, "revision_not_found")
}
