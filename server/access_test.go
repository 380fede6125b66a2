package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/server"
)

// The principals of the access matrix. The first four never authenticate.
var matrixTokens = []string{"none", "bad", "expired", "revoked", "admin", "reader", "writer", "repo", "prefix"}

// want is the status a route gives each authenticated principal of the
// matrix: admin (scope admin), reader (read), writer (read, write), repo
// (read, write, only repo "other") and prefix (read, write, only keys under
// apps/web/). The unauthenticated ones get 401 unless the route is open.
type want struct {
	admin, reader, writer, repo, prefix int
}

func (w want) of(tok string) int {
	switch tok {
	case "admin":
		return w.admin
	case "reader":
		return w.reader
	case "writer":
		return w.writer
	case "repo":
		return w.repo
	case "prefix":
		return w.prefix
	}
	return http.StatusUnauthorized
}

// matrixCase is how the matrix calls one route.
type matrixCase struct {
	// open routes answer everyone with all.
	open bool
	all  int
	want want
	// setup runs (as the administrator) before each call; its result
	// replaces {arg} in path and body.
	setup func(t *testing.T, ts *testServer, tok string) string
	path  string
	body  string
	// git routes speak Git's protocol: their errors are plain text.
	git bool
}

// Statuses, for short.
const (
	ok        = http.StatusOK
	created   = http.StatusCreated
	forbidden = http.StatusForbidden
)

// accessMatrix places every route of the API. The default repo holds
// cfg/a, a key outside the prefix principal's apps/web/.
func accessMatrix() map[string]matrixCase {
	readAll := want{ok, ok, ok, ok, ok}
	readRepo := want{ok, ok, ok, forbidden, ok}
	readKey := want{ok, ok, ok, forbidden, forbidden}
	writeKey := want{ok, forbidden, ok, forbidden, forbidden}
	adminOnly := want{ok, forbidden, forbidden, forbidden, forbidden}
	putRev := func(key string) func(*testing.T, *testServer, string) string {
		return func(t *testing.T, ts *testServer, tok string) string {
			return fmt.Sprint(ts.put(t, ts.admin, key, "value for "+tok+" at "+time.Now().String()))
		}
	}
	return map[string]matrixCase{
		"GET /healthz": {open: true, all: ok, path: "/healthz"},
		"GET /readyz":  {open: true, all: ok, path: "/readyz"},
		// The matrix server runs with --metrics-auth.
		"GET /metrics": {want: readAll, path: "/metrics"},

		"GET /v1/repos":        {want: readAll, path: "/v1/repos"},
		"POST /v1/repos":       {want: want{created, forbidden, forbidden, forbidden, forbidden}, path: "/v1/repos", body: `{"name":"m-{arg}"}`, setup: func(t *testing.T, ts *testServer, tok string) string { return tok }},
		"GET /v1/repos/{repo}": {want: readRepo, path: "/v1/repos/default"},

		"GET /v1/repos/{repo}/kv":          {want: readRepo, path: "/v1/repos/default/kv?values=true"},
		"GET /v1/repos/{repo}/kv/{key}":    {want: readKey, path: "/v1/repos/default/kv/cfg/a"},
		"HEAD /v1/repos/{repo}/kv/{key}":   {want: readKey, path: "/v1/repos/default/kv/cfg/a"},
		"PUT /v1/repos/{repo}/kv/{key}":    {want: writeKey, path: "/v1/repos/default/kv/cfg/a", body: "new value"},
		"DELETE /v1/repos/{repo}/kv/{key}": {want: writeKey, path: "/v1/repos/default/kv/cfg/a"},

		"POST /v1/repos/{repo}/commits":      {want: writeKey, path: "/v1/repos/default/commits", body: `{"ops":[{"op":"put","key":"cfg/b","value":"{arg}"}]}`, setup: func(t *testing.T, ts *testServer, tok string) string { return tok }},
		"GET /v1/repos/{repo}/commits":       {want: readRepo, path: "/v1/repos/default/commits"},
		"GET /v1/repos/{repo}/commits/{rev}": {want: readKey, path: "/v1/repos/default/commits/{arg}", setup: putRev("cfg/c")},
		"GET /v1/repos/{repo}/diff":          {want: readRepo, path: "/v1/repos/default/diff?from=1&patch=true"},
		"POST /v1/repos/{repo}/revert":       {want: writeKey, path: "/v1/repos/default/revert", body: `{"revision":{arg},"force":true}`, setup: putRev("cfg/r")},
		"POST /v1/repos/{repo}/rollback":     {want: writeKey, path: "/v1/repos/default/rollback", body: `{"to":1,"prefix":"cfg/"}`},

		"POST /v1/tokens": {want: want{created, forbidden, forbidden, forbidden, forbidden}, path: "/v1/tokens", body: `{"name":"made-by-{arg}","scopes":["read"]}`, setup: func(t *testing.T, ts *testServer, tok string) string { return tok }},
		"GET /v1/tokens":  {want: adminOnly, path: "/v1/tokens"},
		"DELETE /v1/tokens/{id}": {want: adminOnly, path: "/v1/tokens/{arg}", setup: func(t *testing.T, ts *testServer, tok string) string {
			return ts.createToken(t, wire.CreateTokenRequest{Name: "victim", Scopes: []string{"read"}}).ID
		}},
		"GET /v1/audit": {want: adminOnly, path: "/v1/audit?limit=5"},

		// A stream that ends at once: the watch of an aborted transaction
		// answers 200 and closes (an unknown one is 404 txn_not_found).
		"GET /v1/repos/{repo}/watch": {want: readRepo, path: "/v1/repos/default/watch?branch=txn/{arg}", setup: abortedTxn},

		// Secrets: only the administrator holds secrets:read and
		// secrets:write here; listing takes read too.
		"GET /v1/repos/{repo}/secrets":                    {want: readRepo, path: "/v1/repos/default/secrets"},
		"POST /v1/repos/{repo}/secrets/rotate":            {want: adminOnly, path: "/v1/repos/default/secrets/rotate", body: `{"prefix":"cfg/"}`},
		"GET /v1/repos/{repo}/secrets/{key}":              {want: adminOnly, path: "/v1/repos/default/secrets/{arg}", setup: putSecret},
		"PUT /v1/repos/{repo}/secrets/{key}":              {want: adminOnly, path: "/v1/repos/default/secrets/cfg/s-{arg}", body: "s3cret", setup: func(t *testing.T, ts *testServer, tok string) string { return tok }},
		"DELETE /v1/repos/{repo}/secrets/{key}":           {want: adminOnly, path: "/v1/repos/default/secrets/{arg}", setup: putSecret},
		"GET /v1/repos/{repo}/txns/{id}/secrets":          {want: readRepo, path: "/v1/repos/default/txns/{arg}/secrets", setup: beginTxn},
		"POST /v1/repos/{repo}/txns/{id}/secrets/rotate":  {want: adminOnly, path: "/v1/repos/default/txns/{arg}/secrets/rotate", body: `{}`, setup: beginTxn},
		"GET /v1/repos/{repo}/txns/{id}/secrets/{key}":    {want: adminOnly, path: "/v1/repos/default/txns/{arg}/secrets/cfg/shared", setup: txnWithSecret},
		"PUT /v1/repos/{repo}/txns/{id}/secrets/{key}":    {want: adminOnly, path: "/v1/repos/default/txns/{arg}/secrets/cfg/t", body: "s3cret", setup: beginTxn},
		"DELETE /v1/repos/{repo}/txns/{id}/secrets/{key}": {want: adminOnly, path: "/v1/repos/default/txns/{arg}/secrets/cfg/shared", setup: txnWithSecret},

		// Webhooks are the administrator's; reconcilers report with scope
		// write (a prefix-limited token too: a report names no key), each
		// token for itself or a sub-name ({arg}/r), and are forgotten by
		// the administrator.
		"POST /v1/repos/{repo}/webhooks":                  {want: want{created, forbidden, forbidden, forbidden, forbidden}, path: "/v1/repos/default/webhooks", body: matrixWebhook},
		"GET /v1/repos/{repo}/webhooks":                   {want: adminOnly, path: "/v1/repos/default/webhooks"},
		"GET /v1/repos/{repo}/webhooks/{id}":              {want: adminOnly, path: "/v1/repos/default/webhooks/{arg}", setup: createWebhook},
		"DELETE /v1/repos/{repo}/webhooks/{id}":           {want: adminOnly, path: "/v1/repos/default/webhooks/{arg}", setup: createWebhook},
		"GET /v1/repos/{repo}/webhooks/{id}/deliveries":   {want: adminOnly, path: "/v1/repos/default/webhooks/{arg}/deliveries", setup: createWebhook},
		"GET /v1/repos/{repo}/reconcilers":                {want: readRepo, path: "/v1/repos/default/reconcilers"},
		"POST /v1/repos/{repo}/reconcilers/{name}/status": {want: want{ok, forbidden, ok, forbidden, ok}, path: "/v1/repos/default/reconcilers/{arg}%2Fr/status", body: `{"revision":1,"state":"applied"}`, setup: func(t *testing.T, ts *testServer, tok string) string { return tok }},
		"DELETE /v1/repos/{repo}/reconcilers/{name}":      {want: want{http.StatusNoContent, forbidden, forbidden, forbidden, forbidden}, path: "/v1/repos/default/reconcilers/{arg}", setup: reportReconciler},
		"GET /v1/repos/{repo}/commits/{rev}/rollout":      {want: readRepo, path: "/v1/repos/default/commits/1/rollout"},

		// Transactions: only the administrator holds scope txn here, and it
		// opens every transaction (setup), so its own approval is refused.
		"POST /v1/repos/{repo}/txns":                 {want: txnOnly(created), path: "/v1/repos/default/txns", body: `{"message":"by {arg}"}`, setup: func(t *testing.T, ts *testServer, tok string) string { return tok }},
		"GET /v1/repos/{repo}/txns":                  {want: readRepo, path: "/v1/repos/default/txns"},
		"GET /v1/repos/{repo}/txns/{id}":             {want: readRepo, path: "/v1/repos/default/txns/{arg}", setup: beginTxn},
		"DELETE /v1/repos/{repo}/txns/{id}":          {want: txnOnly(ok), path: "/v1/repos/default/txns/{arg}", setup: beginTxn},
		"GET /v1/repos/{repo}/txns/{id}/diff":        {want: readRepo, path: "/v1/repos/default/txns/{arg}/diff", setup: beginTxn},
		"POST /v1/repos/{repo}/txns/{id}/commit":     {want: txnOnly(ok), path: "/v1/repos/default/txns/{arg}/commit", setup: beginTxn},
		"POST /v1/repos/{repo}/txns/{id}/rebase":     {want: txnOnly(ok), path: "/v1/repos/default/txns/{arg}/rebase", setup: beginTxn},
		"POST /v1/repos/{repo}/txns/{id}/approvals":  {want: want{forbidden, forbidden, forbidden, forbidden, forbidden}, path: "/v1/repos/default/txns/{arg}/approvals", body: `{}`, setup: beginTxn},
		"POST /v1/repos/{repo}/txns/{id}/reports":    {want: txnOnly(created), path: "/v1/repos/default/txns/{arg}/reports", body: `{"reporter":"plan","status":"ok"}`, setup: beginTxn},
		"GET /v1/repos/{repo}/txns/{id}/kv":          {want: readRepo, path: "/v1/repos/default/txns/{arg}/kv", setup: beginTxn},
		"GET /v1/repos/{repo}/txns/{id}/kv/{key}":    {want: readKey, path: "/v1/repos/default/txns/{arg}/kv/cfg/a", setup: beginTxn},
		"HEAD /v1/repos/{repo}/txns/{id}/kv/{key}":   {want: readKey, path: "/v1/repos/default/txns/{arg}/kv/cfg/a", setup: beginTxn},
		"PUT /v1/repos/{repo}/txns/{id}/kv/{key}":    {want: txnOnly(ok), path: "/v1/repos/default/txns/{arg}/kv/cfg/a", body: "in a txn", setup: beginTxn},
		"DELETE /v1/repos/{repo}/txns/{id}/kv/{key}": {want: txnOnly(ok), path: "/v1/repos/default/txns/{arg}/kv/cfg/a", setup: beginTxn},
		"POST /v1/repos/{repo}/txns/{id}/commits":    {want: txnOnly(ok), path: "/v1/repos/default/txns/{arg}/commits", body: `{"ops":[{"op":"put","key":"cfg/t","value":"x"}]}`, setup: beginTxn},

		// Git: fetches need read, pushes write (or txn); a token limited to
		// key prefixes cannot use Git at all. The bodies are a bare flush:
		// no wants, no commands.
		"GET /git/{repo}.git/info/refs":         {git: true, want: want{ok, ok, ok, forbidden, forbidden}, path: "/git/default.git/info/refs?service=git-upload-pack"},
		"POST /git/{repo}.git/git-upload-pack":  {git: true, want: want{ok, ok, ok, forbidden, forbidden}, path: "/git/default.git/git-upload-pack", body: "0000"},
		"POST /git/{repo}.git/git-receive-pack": {git: true, want: want{ok, forbidden, ok, forbidden, forbidden}, path: "/git/default.git/git-receive-pack", body: "0000"},

		// Imports and upstreams: the administrator configures; readers
		// see; writers sync (naming no key); the webhook is signed, not
		// authenticated.
		"GET /v1/repos/{repo}/import":            {want: want{http.StatusNotFound, http.StatusNotFound, http.StatusNotFound, forbidden, http.StatusNotFound}, path: "/v1/repos/default/import"},
		"GET /v1/repos/{repo}/upstream":          {want: readRepo, path: "/v1/repos/default/upstream", setup: setUpstream},
		"PUT /v1/repos/{repo}/upstream":          {want: adminOnly, path: "/v1/repos/default/upstream", body: matrixUpstream},
		"DELETE /v1/repos/{repo}/upstream":       {want: want{http.StatusNoContent, forbidden, forbidden, forbidden, forbidden}, path: "/v1/repos/default/upstream", setup: setUpstream},
		"POST /v1/repos/{repo}/upstream/sync":    {want: want{ok, forbidden, ok, forbidden, ok}, path: "/v1/repos/default/upstream/sync", setup: setUpstream},
		"POST /v1/repos/{repo}/upstream/webhook": {open: true, all: http.StatusUnauthorized, path: "/v1/repos/default/upstream/webhook", body: `{}`, setup: setUpstream},
	}
}

// matrixUpstream follows a repository that is not there: its fetches fail
// at once and retry in the background, harmlessly.
const matrixUpstream = `{"url":"file:///nonexistent/upstream.git","mode":"follow","interval":"1h","webhook_secret":"matrix"}`

// setUpstream configures the default repo's upstream as the administrator.
func setUpstream(t *testing.T, ts *testServer, tok string) string {
	ts.mustDo(t, ok, http.MethodPut, "/v1/repos/default/upstream", ts.admin, []byte(matrixUpstream))
	return ""
}

// matrixWebhook creates a webhook whose receiver never answers (the
// discard port): its deliveries retry in the background, harmlessly.
const matrixWebhook = `{"url":"http://127.0.0.1:9/hook","secret":"matrix-secret-0123456789"}`

// createWebhook creates a webhook as the administrator and returns its id.
func createWebhook(t *testing.T, ts *testServer, tok string) string {
	var h wire.Webhook
	mustJSON(t, ts.mustDo(t, created, http.MethodPost, "/v1/repos/default/webhooks", ts.admin, []byte(matrixWebhook)), &h)
	return h.ID
}

// reportReconciler reports a reconciler as the administrator and returns
// its name.
func reportReconciler(t *testing.T, ts *testServer, tok string) string {
	ts.mustDo(t, ok, http.MethodPost, "/v1/repos/default/reconcilers/gone-"+tok+"/status", ts.admin, []byte(`{"revision":1,"state":"applied"}`))
	return "gone-" + tok
}

// txnOnly is a route that needs scope txn: of the matrix's principals,
// only the administrator has it.
func txnOnly(status int) want { return want{status, forbidden, forbidden, forbidden, forbidden} }

// putSecret writes a secret as the administrator and returns its key.
func putSecret(t *testing.T, ts *testServer, tok string) string {
	key := "cfg/secret-" + tok
	ts.mustDo(t, ok, http.MethodPut, "/v1/repos/default/secrets/"+key, ts.admin, []byte("s3cret"))
	return key
}

// txnWithSecret writes the secret cfg/shared on main, then opens a
// transaction (which sees it) and returns its id.
func txnWithSecret(t *testing.T, ts *testServer, tok string) string {
	ts.mustDo(t, ok, http.MethodPut, "/v1/repos/default/secrets/cfg/shared", ts.admin, []byte("s3cret"))
	return beginTxn(t, ts, tok)
}

// beginTxn opens a transaction as the administrator and returns its id.
func beginTxn(t *testing.T, ts *testServer, tok string) string {
	var tx wire.Txn
	mustJSON(t, ts.mustDo(t, created, http.MethodPost, "/v1/repos/default/txns", ts.admin, []byte(`{"message":"matrix"}`)), &tx)
	return tx.ID
}

// abortedTxn opens a transaction as the administrator, aborts it and
// returns its id.
func abortedTxn(t *testing.T, ts *testServer, tok string) string {
	id := beginTxn(t, ts, tok)
	ts.mustDo(t, ok, http.MethodDelete, "/v1/repos/default/txns/"+id, ts.admin, nil)
	return id
}

// TestAccessMatrix calls every route the server serves with every kind of
// principal and checks the status. A route missing from accessMatrix fails
// the test: every new route must say who may call it.
func TestAccessMatrix(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.MetricsAuth = true
		// The matrix fails authentication on purpose, often.
		c.Limits.FailRate = 0
	})
	tokens := map[string]string{
		"none":  "",
		"bad":   "gst_AAAAAAAAAAAA_" + strings.Repeat("x", 43),
		"admin": ts.admin,
	}
	ts.mustDo(t, created, http.MethodPost, "/v1/repos", ts.admin, []byte(`{"name":"other"}`))
	var expiresAt time.Time // of "expired"
	for name, req := range map[string]wire.CreateTokenRequest{
		"reader":  {Name: "reader", Scopes: []string{"read"}},
		"writer":  {Name: "writer", Scopes: []string{"read", "write"}},
		"repo":    {Name: "repo", Scopes: []string{"read", "write"}, Repos: []string{"other"}},
		"prefix":  {Name: "prefix", Scopes: []string{"read", "write"}, Prefixes: []string{"apps/web/"}},
		"expired": {Name: "expired", Scopes: []string{"admin"}, ExpiresIn: "1s"}, // the shortest lifetime
		"revoked": {Name: "revoked", Scopes: []string{"admin"}},
	} {
		tok := ts.createToken(t, req)
		tokens[name] = tok.Secret
		if tok.ExpiresAt != nil {
			expiresAt = *tok.ExpiresAt
		}
	}
	revokeID := strings.Split(tokens["revoked"], "_")[1]
	ts.mustDo(t, ok, http.MethodDelete, "/v1/tokens/"+revokeID, ts.admin, nil)
	time.Sleep(time.Until(expiresAt) + 5*time.Millisecond) // let "expired" expire

	matrix := accessMatrix()
	served := map[string]bool{}
	for _, rt := range ts.Routes() {
		key := rt.Method + " " + rt.Path
		served[key] = true
		c, found := matrix[key]
		if !found {
			t.Errorf("route %s is not in the access matrix: add it to accessMatrix with the status each principal must get", key)
			continue
		}
		for _, tok := range matrixTokens {
			// Every call starts from cfg/a present.
			ts.put(t, ts.admin, "cfg/a", "original")
			arg := ""
			if c.setup != nil {
				arg = c.setup(t, ts, tok)
			}
			path := strings.ReplaceAll(c.path, "{arg}", arg)
			var body []byte
			if c.body != "" {
				body = []byte(strings.ReplaceAll(c.body, "{arg}", arg))
			}
			wantStatus := c.want.of(tok)
			if c.open {
				wantStatus = c.all
			}
			resp, b := ts.do(t, rt.Method, path, tokens[tok], body)
			if resp.StatusCode != wantStatus {
				t.Errorf("%s as %s: status %d, want %d: %s", key, tok, resp.StatusCode, wantStatus, b)
				continue
			}
			if rt.Method == http.MethodHead {
				continue
			}
			if c.git {
				// Git shows a plain-text error on its "remote:" lines, and
				// sends a token only when asked for basic credentials.
				if wantStatus >= 400 && !strings.HasPrefix(string(b), "gitstate: ") {
					t.Errorf("%s as %s: %d without a message for git: %s", key, tok, resp.StatusCode, b)
				}
				if wantStatus == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("%s as %s: 401 without a basic challenge", key, tok)
				}
				continue
			}
			switch wantStatus {
			case forbidden:
				// An access-control refusal names what the token lacks; a
				// policy refusal (self_approval, protected_prefix...) has a
				// code of its own.
				if e := errorOf(t, b); e.Code == "forbidden" && e.Missing == "" || e.Code == "" {
					t.Errorf("%s as %s: 403 without naming what is missing: %s", key, tok, b)
				}
			case http.StatusUnauthorized:
				if e := errorOf(t, b); e.Code == "" || e.Message == "" {
					t.Errorf("%s as %s: 401 without a code and message: %s", key, tok, b)
				}
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s as %s: 401 without WWW-Authenticate", key, tok)
				}
			}
		}
	}
	for key := range matrix {
		if !served[key] {
			t.Errorf("access matrix names %s, which the server does not serve", key)
		}
	}
}

// TestForbiddenNamesWhatIsMissing checks the missing field of 403s.
func TestForbiddenNamesWhatIsMissing(t *testing.T) {
	ts := startServer(t)
	ts.mustDo(t, created, http.MethodPost, "/v1/repos", ts.admin, []byte(`{"name":"other"}`))
	ts.put(t, ts.admin, "cfg/a", "v")
	reader := ts.createToken(t, wire.CreateTokenRequest{Name: "reader", Scopes: []string{"read"}}).Secret
	other := ts.createToken(t, wire.CreateTokenRequest{Name: "other", Scopes: []string{"read"}, Repos: []string{"other"}}).Secret
	web := ts.createToken(t, wire.CreateTokenRequest{Name: "web", Scopes: []string{"read"}, Prefixes: []string{"apps/web/"}}).Secret
	for _, c := range []struct {
		method, path, token, body, missing string
	}{
		{http.MethodPut, "/v1/repos/default/kv/cfg/a", reader, "x", "scope:write"},
		{http.MethodGet, "/v1/repos/default/kv/cfg/a", other, "", "repo:default"},
		{http.MethodGet, "/v1/repos/default/kv/cfg/a", web, "", "prefix:cfg/a"},
		{http.MethodGet, "/v1/tokens", reader, "", "scope:admin"},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		b := ts.mustDo(t, forbidden, c.method, c.path, c.token, body)
		if e := errorOf(t, b); e.Missing != c.missing || e.Code != "forbidden" {
			t.Errorf("%s %s: error %+v, want missing %q", c.method, c.path, e, c.missing)
		}
	}
	// An administrator limited to one repo cannot manage tokens.
	repoAdmin := ts.createToken(t, wire.CreateTokenRequest{Name: "ra", Scopes: []string{"admin"}, Repos: []string{"other"}}).Secret
	b := ts.mustDo(t, forbidden, http.MethodPost, "/v1/tokens", repoAdmin, []byte(`{"name":"x","scopes":["admin"]}`))
	if e := errorOf(t, b); e.Missing != "repo:*" {
		t.Errorf("repo-limited admin minting a token: %+v, want missing repo:*", e)
	}
}

func TestTokenExpiry(t *testing.T) {
	ts := startServer(t)
	tok := ts.createToken(t, wire.CreateTokenRequest{Name: "brief", Scopes: []string{"read"}, ExpiresIn: "1s"})
	if tok.ExpiresAt == nil || time.Until(*tok.ExpiresAt) > time.Second {
		t.Fatalf("expires_at %v, want within 1s", tok.ExpiresAt)
	}
	ts.mustDo(t, ok, http.MethodGet, "/v1/repos", tok.Secret, nil)
	time.Sleep(time.Until(*tok.ExpiresAt) + 10*time.Millisecond)
	b := ts.mustDo(t, http.StatusUnauthorized, http.MethodGet, "/v1/repos", tok.Secret, nil)
	if e := errorOf(t, b); e.Code != "token_expired" {
		t.Errorf("expired token: %+v, want code token_expired", e)
	}
	// Under 1s a token is expired, or nearly, before it can be used.
	for _, bad := range []string{"-1h", "0s", "1ms", "999ms", "soon", "100000h"} {
		ts.mustDo(t, http.StatusBadRequest, http.MethodPost, "/v1/tokens", ts.admin,
			[]byte(`{"name":"x","scopes":["read"],"expires_in":"`+bad+`"}`))
	}
}

func TestTokenRequestValidation(t *testing.T) {
	ts := startServer(t)
	for _, body := range []string{
		`{"scopes":["read"]}`,
		`{"name":"x"}`,
		`{"name":"x","scopes":["root"]}`,
		`{"name":"bad name","scopes":["read"]}`,
		`{"name":"x<y>","scopes":["read"]}`,
		`{"name":"x","scopes":["read"],"repos":["Bad_Repo"]}`,
		`{"name":"x","scopes":["read"],"prefixes":[""]}`,
		`{"name":"x","scopes":["read"],"prefixes":["../x"]}`,
		`{"name":"x","scopes":["read"],"unknown":1}`,
	} {
		ts.mustDo(t, http.StatusBadRequest, http.MethodPost, "/v1/tokens", ts.admin, []byte(body))
	}
	ts.mustDo(t, http.StatusNotFound, http.MethodDelete, "/v1/tokens/nosuchtoken0", ts.admin, nil)
	// Without GITSTATE_ADMIN_TOKEN there is no env-admin token (see
	// TestEnvAdminToken for the 409 with it).
	var e wire.ErrorResponse
	mustJSON(t, ts.mustDo(t, http.StatusNotFound, http.MethodDelete, "/v1/tokens/env-admin", ts.admin, nil), &e)
	if e.Error.Code != "token_not_found" {
		t.Errorf("revoking env-admin without GITSTATE_ADMIN_TOKEN: %+v, want token_not_found", e.Error)
	}
}

// TestRevocationIsImmediate: a revoked token is refused on its very next
// request, and after a restart.
func TestRevocationIsImmediate(t *testing.T) {
	ts := startServer(t)
	tok := ts.createToken(t, wire.CreateTokenRequest{Name: "ci", Scopes: []string{"read", "write"}})
	ts.put(t, tok.Secret, "k", "v")
	var revoked wire.Token
	mustJSON(t, ts.mustDo(t, ok, http.MethodDelete, "/v1/tokens/"+tok.ID, ts.admin, nil), &revoked)
	if revoked.RevokedAt == nil {
		t.Fatalf("revoke answered %+v without revoked_at", revoked)
	}
	b := ts.mustDo(t, http.StatusUnauthorized, http.MethodPut, "/v1/repos/default/kv/k", tok.Secret, []byte("w"))
	if e := errorOf(t, b); e.Code != "token_revoked" {
		t.Errorf("revoked token: %+v, want code token_revoked", e)
	}
	var list wire.TokenList
	mustJSON(t, ts.mustDo(t, ok, http.MethodGet, "/v1/tokens", ts.admin, nil), &list)
	found := false
	for _, l := range list.Tokens {
		if l.ID == tok.ID {
			found = l.RevokedAt != nil
		}
	}
	if !found {
		t.Errorf("token list does not show %s revoked: %+v", tok.ID, list)
	}

	// After a restart on the same data directory.
	ts.Shutdown(t.Context())
	ts2 := startServer(t, func(c *server.Config) { c.DataDir = ts.cfg.DataDir })
	if ts2.banner.String() != "" {
		t.Errorf("second start printed a banner: %s", ts2.banner.String())
	}
	ts2.mustDo(t, http.StatusUnauthorized, http.MethodGet, "/v1/repos", tok.Secret, nil)
	ts2.mustDo(t, ok, http.MethodGet, "/v1/repos", ts.admin, nil)
}

// TestPrefixLimitedToken: a token limited to apps/web/ cannot read, list,
// diff, log or revert outside it, and lists, diffs and logs show it only
// what it may see.
func TestPrefixLimitedToken(t *testing.T) {
	ts := startServer(t)
	const hidden = "HIDDEN-VALUE-7f3a"
	ts.put(t, ts.admin, "apps/web/a", "web a")
	dbRev := ts.put(t, ts.admin, "apps/db/x", hidden)
	ts.put(t, ts.admin, "secret/y", hidden+"-y")
	var mixed wire.CommitResult
	mustJSON(t, ts.mustDo(t, ok, http.MethodPost, "/v1/repos/default/commits", ts.admin,
		[]byte(`{"message":"mixed","ops":[{"op":"put","key":"apps/web/b","value":"web b"},{"op":"put","key":"apps/db/z","value":"`+hidden+`-z"}]}`)), &mixed)
	web := ts.createToken(t, wire.CreateTokenRequest{Name: "web", Scopes: []string{"read", "write"}, Prefixes: []string{"apps/web/"}}).Secret
	webRev := ts.put(t, web, "apps/web/c", "web c")

	noHidden := func(what string, b []byte) {
		t.Helper()
		if strings.Contains(string(b), hidden) || strings.Contains(string(b), "apps/db") || strings.Contains(string(b), "secret/") {
			t.Errorf("%s shows what the token may not see: %s", what, b)
		}
	}

	// Read.
	ts.mustDo(t, forbidden, http.MethodGet, "/v1/repos/default/kv/apps/db/x", web, nil)
	ts.mustDo(t, forbidden, http.MethodGet, "/v1/repos/default/kv/secret/y?rev=1", web, nil)
	ts.mustDo(t, ok, http.MethodGet, "/v1/repos/default/kv/apps/web/a", web, nil)

	// List, at every width of prefix.
	for _, prefix := range []string{"", "apps/", "apps/web/", "apps/db/", "secret/"} {
		var list wire.ListResponse
		b := ts.mustDo(t, ok, http.MethodGet, "/v1/repos/default/kv?values=true&prefix="+prefix, web, nil)
		noHidden("list "+prefix, b)
		mustJSON(t, b, &list)
		for _, it := range list.Items {
			if !strings.HasPrefix(it.Key, "apps/web/") {
				t.Errorf("list %q shows %s", prefix, it.Key)
			}
		}
		if (prefix == "" || strings.HasPrefix("apps/web/", prefix)) && len(list.Items) != 3 {
			t.Errorf("list %q shows %d keys, want the token's 3: %s", prefix, len(list.Items), b)
		}
	}

	// Diff, with patches.
	b := ts.mustDo(t, ok, http.MethodGet, "/v1/repos/default/diff?from=0&patch=true", web, nil)
	noHidden("diff", b)
	var diff wire.DiffResponse
	mustJSON(t, b, &diff)
	if len(diff.Changes) != 3 {
		t.Errorf("diff shows %d changes, want the token's 3: %s", len(diff.Changes), b)
	}

	// Log: commits that change only hidden keys are left out; mixed ones
	// show only the visible changes.
	b = ts.mustDo(t, ok, http.MethodGet, "/v1/repos/default/commits", web, nil)
	noHidden("log", b)
	var log wire.CommitList
	mustJSON(t, b, &log)
	revs := map[int64]bool{}
	for _, c := range log.Commits {
		revs[c.Revision] = true
		for _, ch := range c.Changes {
			if !strings.HasPrefix(ch.Key, "apps/web/") {
				t.Errorf("log shows change %+v", ch)
			}
		}
	}
	if revs[dbRev] || !revs[mixed.Revision] || !revs[webRev] {
		t.Errorf("log revisions %v: want %d and %d, not %d", revs, mixed.Revision, webRev, dbRev)
	}
	noHidden("log by key", ts.mustDo(t, ok, http.MethodGet, "/v1/repos/default/commits?key=apps/db/x", web, nil))
	ts.mustDo(t, forbidden, http.MethodGet, fmt.Sprintf("/v1/repos/default/commits/%d", dbRev), web, nil)
	noHidden("mixed commit", ts.mustDo(t, ok, http.MethodGet, fmt.Sprintf("/v1/repos/default/commits/%d", mixed.Revision), web, nil))

	// Write and revert.
	ts.mustDo(t, forbidden, http.MethodPut, "/v1/repos/default/kv/apps/db/x", web, []byte("overwrite"))
	ts.mustDo(t, forbidden, http.MethodDelete, "/v1/repos/default/kv/apps?prefix=true", web, nil)
	ts.mustDo(t, forbidden, http.MethodPost, "/v1/repos/default/commits", web, []byte(`{"ops":[{"op":"move","from":"apps/db/x","to":"apps/web/stolen"}]}`))
	ts.mustDo(t, forbidden, http.MethodPost, "/v1/repos/default/revert", web, fmt.Appendf(nil, `{"revision":%d,"force":true}`, dbRev))
	ts.mustDo(t, forbidden, http.MethodPost, "/v1/repos/default/revert", web, fmt.Appendf(nil, `{"revision":%d,"force":true}`, mixed.Revision))
	ts.mustDo(t, forbidden, http.MethodPost, "/v1/repos/default/rollback", web, []byte(`{"to":1,"prefix":"apps/db/"}`))
	ts.mustDo(t, ok, http.MethodPost, "/v1/repos/default/revert", web, fmt.Appendf(nil, `{"revision":%d}`, webRev))
	// A rollback of everything rolls back only the token's keys.
	ts.mustDo(t, ok, http.MethodPost, "/v1/repos/default/rollback", web, []byte(`{"to":0}`))
	if got := ts.mustDo(t, ok, http.MethodGet, "/v1/repos/default/kv/apps/db/x", ts.admin, nil); string(got) != hidden {
		t.Errorf("apps/db/x after the token's rollback: %q", got)
	}
	ts.mustDo(t, http.StatusNotFound, http.MethodGet, "/v1/repos/default/kv/apps/web/a", ts.admin, nil)
}

// TestCommitAuthor: commits carry the token's name and the configured
// email domain.
func TestCommitAuthor(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.CommitEmailDomain = "example.test" })
	alice := ts.createToken(t, wire.CreateTokenRequest{Name: "alice", Scopes: []string{"read", "write"}}).Secret
	rev := ts.put(t, alice, "k", "v")
	var ci wire.CommitInfo
	mustJSON(t, ts.mustDo(t, ok, http.MethodGet, fmt.Sprintf("/v1/repos/default/commits/%d", rev), alice, nil), &ci)
	if ci.Author != "alice" || ci.AuthorEmail != "alice@example.test" {
		t.Errorf("author %q <%s>, want alice <alice@example.test>", ci.Author, ci.AuthorEmail)
	}
}

func TestOpenRoutesAndMetrics(t *testing.T) {
	ts := startServer(t)
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		ts.mustDo(t, ok, http.MethodGet, p, "", nil)
	}
	ts.mustDo(t, http.StatusUnauthorized, http.MethodGet, "/v1/repos", "", nil)
	guarded := startServer(t, func(c *server.Config) { c.MetricsAuth = true })
	guarded.mustDo(t, http.StatusUnauthorized, http.MethodGet, "/metrics", "", nil)
	guarded.mustDo(t, ok, http.MethodGet, "/metrics", guarded.admin, nil)
	guarded.mustDo(t, ok, http.MethodGet, "/healthz", "", nil)
}

// TestEnvAdminToken: GITSTATE_ADMIN_TOKEN is an administrator, no token
// is bootstrapped beside it, and it cannot be revoked over the API.
func TestEnvAdminToken(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.AdminToken = "correct horse battery staple" })
	if ts.banner.String() != "" {
		t.Errorf("a banner with GITSTATE_ADMIN_TOKEN set: %s", ts.banner.String())
	}
	tok := ts.createToken(t, wire.CreateTokenRequest{Name: "x", Scopes: []string{"read"}})
	ts.mustDo(t, ok, http.MethodGet, "/v1/repos", tok.Secret, nil)
	ts.mustDo(t, http.StatusUnauthorized, http.MethodGet, "/v1/repos", "correct horse battery", nil)
	var e wire.ErrorResponse
	mustJSON(t, ts.mustDo(t, http.StatusConflict, http.MethodDelete, "/v1/tokens/env-admin", ts.admin, nil), &e)
	if e.Error.Code != "token_from_environment" {
		t.Errorf("revoking env-admin: %+v, want token_from_environment", e.Error)
	}
	var list wire.TokenList
	mustJSON(t, ts.mustDo(t, ok, http.MethodGet, "/v1/tokens", ts.admin, nil), &list)
	if len(list.Tokens) != 1 {
		t.Errorf("tokens %+v, want only x", list.Tokens)
	}
	rev := ts.put(t, ts.admin, "k", "v")
	var ci wire.CommitInfo
	mustJSON(t, ts.mustDo(t, ok, http.MethodGet, fmt.Sprintf("/v1/repos/default/commits/%d", rev), ts.admin, nil), &ci)
	if ci.Author != "admin" {
		t.Errorf("author %q, want admin", ci.Author)
	}
}

// jsonBody is a helper for bodies built from values.
func jsonBody(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
