package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/txn"
	"github.com/gitstate/gitstate/watch"
)

// userAuth authenticates "Authorization: Bearer <name>" as a user of that
// name with every scope but admin ("root" is an administrator): a test
// double for the token store.
type userAuth struct{}

func (userAuth) Authenticate(r *http.Request) (*api.Principal, error) {
	name, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || name == "" {
		return nil, gitstate.Errorf(gitstate.KindUnauthorized, "unauthorized", "no user")
	}
	p := &api.Principal{TokenID: name, Name: name, Repos: []string{"*"},
		Scopes: []api.Scope{api.ScopeRead, api.ScopeWrite, api.ScopeTxn, api.ScopeApprove}}
	switch name {
	case "root":
		p.Scopes = []api.Scope{api.ScopeAdmin}
	case "lim": // a token limited to app/
		p.Prefixes = []string{"app/"}
	}
	return p, nil
}

type txnEnv struct {
	t     *testing.T
	dir   string
	srv   *httptest.Server
	st    *storage.Store
	txns  *txn.Manager
	hub   *watch.Hub
	hooks *watch.Webhooks
	conv  *watch.Convergence
}

func newTxnEnv(t *testing.T) *txnEnv {
	e := &txnEnv{t: t, dir: t.TempDir()}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *txnEnv) start() {
	st, err := storage.Open(context.Background(), e.dir, storage.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
	e.txns = txn.NewManager(st, txn.Options{})
	if err := e.txns.Load(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.hub = watch.NewHub(st, watch.Options{})
	e.hooks, err = watch.NewWebhooks(st, e.hub, watch.WebhookOptions{Dir: filepath.Join(e.dir, "webhooks"),
		AttemptTimeout: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	e.hooks.Start()
	if e.conv, err = watch.NewConvergence(st, watch.ConvergenceOptions{Dir: filepath.Join(e.dir, "reconcilers")}); err != nil {
		e.t.Fatal(err)
	}
	e.conv.Start()
	e.srv = httptest.NewServer(api.New(api.Options{Store: st, Auth: userAuth{}, Txns: e.txns, Watch: e.hub, WatchProgress: time.Hour,
		Webhooks: e.hooks, Convergence: e.conv}))
}

func (e *txnEnv) stop() {
	if e.srv == nil {
		return
	}
	e.hub.Close()
	e.srv.Close()
	e.hooks.Close()
	e.conv.Close()
	e.txns.Close()
	e.st.Close()
	e.srv = nil
}

// do sends a request as user and decodes a JSON answer into out (when not
// nil). It returns the status and the error code, if any.
func (e *txnEnv) do(user, method, path string, body any, out any) (int, string) {
	e.t.Helper()
	status, er := e.send(user, method, path, body, out)
	return status, er.Code
}

// send is do, giving the whole error of a refusal.
func (e *txnEnv) send(user, method, path string, body any, out any) (int, wire.Error) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		var er wire.ErrorResponse
		json.Unmarshal(data, &er)
		return resp.StatusCode, er.Error
	}
	if out != nil {
		if b, ok := out.(*string); ok {
			*b = string(data)
		} else if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, wire.Error{}
}

func (e *txnEnv) must(user, method, path string, body any, out any, want int) {
	e.t.Helper()
	if status, code := e.do(user, method, path, body, out); status != want {
		e.t.Fatalf("%s %s as %s: %d %s, want %d", method, path, user, status, code, want)
	}
}

const repoPath = "/v1/repos/default"

func TestTxnHTTPLifecycle(t *testing.T) {
	e := newTxnEnv(t)
	e.must("alice", "PUT", repoPath+"/kv/apps/web/replicas", "1", nil, 200)

	var tx wire.Txn
	e.must("alice", "POST", repoPath+"/txns", map[string]any{"message": "scale web", "ttl": "1h"}, &tx, 201)
	if tx.ID == "" || tx.Branch != "txn/"+tx.ID || tx.Status != "open" || tx.BaseRevision != 1 || time.Until(tx.ExpiresAt) < 59*time.Minute {
		t.Fatalf("begin: %+v", tx)
	}
	tp := repoPath + "/txns/" + tx.ID
	e.must("alice", "PUT", tp+"/kv/apps/web/replicas", "3", nil, 200)
	e.must("alice", "POST", tp+"/commits", wire.CommitRequest{Ops: []wire.Op{{Op: "put", Key: "apps/web/image", Value: ptr("v2")}}}, nil, 200)
	var got string
	e.must("bob", "GET", tp+"/kv/apps/web/replicas", nil, &got, 200)
	if got != "3" {
		t.Errorf("read in txn: %q", got)
	}
	e.must("bob", "GET", repoPath+"/kv/apps/web/replicas", nil, &got, 200)
	if got != "1" {
		t.Errorf("main: %q", got)
	}
	var list wire.ListResponse
	e.must("bob", "GET", tp+"/kv?prefix=apps/", nil, &list, 200)
	if len(list.Items) != 2 {
		t.Errorf("txn list: %+v", list)
	}
	// Only the author writes; others get 403.
	if status, _ := e.do("bob", "PUT", tp+"/kv/apps/web/replicas", "4", nil); status != 403 {
		t.Errorf("write by another user: %d", status)
	}
	var diff wire.TxnDiff
	e.must("bob", "GET", tp+"/diff?patch=true", nil, &diff, 200)
	if len(diff.Changes) != 2 || !strings.Contains(diff.Changes[1].Patch, "+3") {
		t.Errorf("diff: %+v", diff)
	}
	if status, code := e.do("alice", "POST", tp+"/approvals", map[string]string{"comment": "mine"}, nil); status != 403 || code != "self_approval" {
		t.Errorf("self approval: %d %s", status, code)
	}
	var view wire.Txn
	e.must("bob", "POST", tp+"/approvals", map[string]string{"comment": "lgtm"}, &view, 201)
	if len(view.Approvals) != 1 || !view.Approvals[0].Valid {
		t.Errorf("approval: %+v", view.Approvals)
	}
	e.must("alice", "PUT", tp+"/kv/apps/web/replicas", "5", nil, 200)
	e.must("bob", "GET", tp, nil, &view, 200)
	if view.Approvals[0].Valid {
		t.Error("a later write did not void the approval")
	}
	e.must("ci", "POST", tp+"/reports", map[string]any{"reporter": "ci/plan", "status": "ok", "summary": "1 change", "details": map[string]int{"changes": 1}}, &view, 201)
	if len(view.Reports) != 1 || !view.Reports[0].Current || view.Reports[0].Reporter != "ci/plan" || view.Reports[0].By != "ci" {
		t.Errorf("report: %+v", view.Reports)
	}
	var res wire.CommitResult
	e.must("alice", "POST", tp+"/commit", nil, &res, 200)
	if res.Revision != 2 || res.Commit == "" {
		t.Errorf("commit: %+v", res)
	}
	e.must("bob", "GET", repoPath+"/kv/apps/web/replicas", nil, &got, 200)
	if got != "5" {
		t.Errorf("main after commit: %q", got)
	}
	if status, code := e.do("alice", "PUT", tp+"/kv/x", "y", nil); status != 409 || code != "txn_committed" {
		t.Errorf("write after commit: %d %s", status, code)
	}
	var all wire.TxnList
	e.must("bob", "GET", repoPath+"/txns?status=committed&author=alice", nil, &all, 200)
	if len(all.Txns) != 1 || all.Txns[0].Revision != 2 {
		t.Errorf("list: %+v", all)
	}
	if status, code := e.do("bob", "GET", repoPath+"/txns/nosuchtxn", nil, nil); status != 404 || code != "txn_not_found" {
		t.Errorf("unknown txn: %d %s", status, code)
	}
}

func TestTxnHTTPPolicy(t *testing.T) {
	e := newTxnEnv(t)
	policy := "protected:\n  - prefix: prod/\n    approvals: 1\nschemas:\n  - pattern: apps/*/replicas.json\n    schema: {type: object, properties: {replicas: {type: integer, minimum: 1}}}\n"
	if status, code := e.do("root", "PUT", repoPath+"/kv/.gitstate/policy.yaml", policy, nil); status != 403 || code != "protected_prefix" {
		t.Fatalf("direct policy write: %d %s", status, code)
	}
	var tx wire.Txn
	e.must("root", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
	e.must("root", "PUT", repoPath+"/txns/"+tx.ID+"/kv/.gitstate/policy.yaml", policy, nil, 200)
	e.must("root", "POST", repoPath+"/txns/"+tx.ID+"/commit", nil, nil, 200)

	if status, code := e.do("alice", "PUT", repoPath+"/kv/prod/db", "x", nil); status != 403 || code != "protected_prefix" {
		t.Errorf("protected on main: %d %s", status, code)
	}
	e.must("alice", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
	tp := repoPath + "/txns/" + tx.ID
	// Refused on main and in transactions alike, with details locating
	// each problem: a value that is not JSON at all at the root ("").
	for _, c := range []struct {
		name, where, value, path, says string
	}{
		{"main", repoPath, `{"replicas":0}`, "/replicas", "minimum"},
		{"txn", tp, `{"replicas":-1}`, "/replicas", "minimum"},
		{"main, not JSON", repoPath, "notjson", "", "invalid character"},
		{"txn, not JSON", tp, "notjson", "", "invalid character"},
	} {
		status, er := e.send("alice", "PUT", c.where+"/kv/apps/web/replicas.json", c.value, nil)
		if status != 422 || er.Code != "schema_violation" || !slices.Equal(er.Keys, []string{"apps/web/replicas.json"}) ||
			len(er.Details) != 1 || er.Details[0].Path != c.path || er.Details[0].Key != "apps/web/replicas.json" ||
			!strings.Contains(er.Details[0].Message, c.says) {
			t.Errorf("schema (%s): %d %+v, want 422 schema_violation with details at %q saying %q", c.name, status, er, c.path, c.says)
		}
	}
	e.must("alice", "PUT", tp+"/kv/prod/db", "x", nil, 200)
	if status, code := e.do("alice", "POST", tp+"/commit", nil, nil); status != 403 || code != "approvals_required" {
		t.Errorf("commit without approval: %d %s", status, code)
	}
	e.must("bob", "POST", tp+"/approvals", map[string]string{}, nil, 201)
	e.must("alice", "POST", tp+"/commit", nil, nil, 200)

	// The merge commits show in git log --graph, and the index agrees after
	// a restart.
	e.stop()
	out, err := exec.Command("git", "-C", filepath.Join(e.dir, "repos", "default.git"), "log", "--graph", "--oneline", "main").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "*   ") {
		t.Errorf("git log --graph shows no merge:\n%s", out)
	}
	e.start()
	var got string
	e.must("bob", "GET", repoPath+"/kv/prod/db", nil, &got, 200)
	if got != "x" {
		t.Errorf("after restart: %q", got)
	}
	var list wire.TxnList
	e.must("bob", "GET", repoPath+"/txns", nil, &list, 200)
	if len(list.Txns) != 2 {
		t.Errorf("transactions after restart: %d", len(list.Txns))
	}
}

// Revision 0 is the empty state before the first commit, not the head.
func TestRevisionZeroIsEmpty(t *testing.T) {
	e := newTxnEnv(t)
	e.must("alice", "PUT", repoPath+"/kv/a", "1", nil, 200)
	if status, code := e.do("alice", "GET", repoPath+"/kv/a?rev=0", nil, nil); status != 404 || code != "key_not_found" {
		t.Errorf("GET at rev 0: %d %s", status, code)
	}
	var list wire.ListResponse
	e.must("alice", "GET", repoPath+"/kv?rev=0", nil, &list, 200)
	if list.Revision != 0 || len(list.Items) != 0 {
		t.Errorf("list at rev 0: %+v", list)
	}
	e.must("alice", "GET", repoPath+"/kv?rev=1", nil, &list, 200)
	if list.Revision != 1 || len(list.Items) != 1 {
		t.Errorf("list at rev 1: %+v", list)
	}
}

// A report names its reporter, and a token may report only under its own
// name or a sub-name of it: the author of a transaction cannot forge the
// "ok" of a reporter the policy requires, nor a token the convergence of
// another reconciler. A refused report changes nothing.
func TestReportsAreTheCallers(t *testing.T) {
	e := newTxnEnv(t)
	policy := "protected:\n  - prefix: prod/\n    approvals: 1\n    reports: [plan-bot]\n"
	var tx wire.Txn
	e.must("root", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
	e.must("root", "PUT", repoPath+"/txns/"+tx.ID+"/kv/.gitstate/policy.yaml", policy, nil, 200)
	e.must("root", "POST", repoPath+"/txns/"+tx.ID+"/commit", nil, nil, 200)

	e.must("alice", "POST", repoPath+"/txns", map[string]any{"message": "db"}, &tx, 201)
	tp := repoPath + "/txns/" + tx.ID
	e.must("alice", "PUT", tp+"/kv/prod/db", "x", nil, 200)
	e.must("bob", "POST", tp+"/approvals", map[string]string{}, nil, 201)
	e.must("plan-bot", "POST", tp+"/reports", map[string]any{"reporter": "plan-bot", "status": "failed", "summary": "drops a table"}, nil, 201)

	// The repro: alice, with her own token, posts plan-bot's "ok".
	status, ee := e.send("alice", "POST", tp+"/reports", `{"reporter":"plan-bot","status":"ok","summary":"fine"}`, nil)
	if status != 403 || ee.Code != "reporter_not_caller" || !strings.Contains(ee.Message, "alice") || !strings.Contains(ee.Message, `"plan-bot"`) {
		t.Fatalf("alice reporting as plan-bot: %d %+v, want 403 reporter_not_caller naming both", status, ee)
	}
	var view wire.Txn
	e.must("bob", "GET", tp, nil, &view, 200)
	if len(view.Reports) != 1 || view.Reports[0].Status != "failed" || view.Reports[0].By != "plan-bot" || view.Requirements.Met {
		t.Fatalf("after the forged report: %+v %+v", view.Reports, view.Requirements)
	}
	if status, code := e.do("alice", "POST", tp+"/commit", nil, nil); status != 403 || code != "reports_required" {
		t.Fatalf("commit with plan-bot's report failed: %d %s", status, code)
	}

	for name, c := range map[string]struct {
		user, reporter string
		status         int
		code, want     string // want: the reporter recorded
	}{
		"own name":               {"plan-bot", "plan-bot", 201, "", "plan-bot"},
		"omitted: the caller's":  {"carol", "", 201, "", "carol"},
		"a sub-name":             {"carol", "carol/eu", 201, "", "carol/eu"},
		"a longer name":          {"plan", "plan-bot", 403, "reporter_not_caller", ""},
		"an empty sub-name":      {"carol", "carol/", 400, "invalid_request", ""},
		"another's sub-name":     {"alice", "plan-bot/eu", 403, "reporter_not_caller", ""},
		"administrator":          {"root", "dave", 201, "", "dave"},
		"a dot-dot sub-name":     {"carol", "carol/../plan-bot", 400, "invalid_request", ""},
		"a space":                {"carol", "carol/ plan-bot", 400, "invalid_request", ""},
		"administrator, a space": {"root", "plan bot", 400, "invalid_request", ""},
	} {
		t.Run(name, func(t *testing.T) {
			var before, after wire.Txn
			e.must("bob", "GET", tp, nil, &before, 200)
			rq := map[string]any{"status": "pending"}
			if c.reporter != "" {
				rq["reporter"] = c.reporter
			}
			if status, code := e.do(c.user, "POST", tp+"/reports", rq, &after); status != c.status || code != c.code {
				t.Fatalf("%s reporting as %q: %d %s, want %d %s", c.user, c.reporter, status, code, c.status, c.code)
			}
			if c.status != 201 {
				e.must("bob", "GET", tp, nil, &after, 200)
				if len(after.Reports) != len(before.Reports) {
					t.Errorf("a refused report changed the reports: %+v", after.Reports)
				}
				return
			}
			found := false
			for _, r := range after.Reports {
				found = found || r.Reporter == c.want && r.By == c.user && r.Status == "pending"
			}
			if !found {
				t.Errorf("report of %s as %q not recorded as %q by %s: %+v", c.user, c.reporter, c.want, c.user, after.Reports)
			}
		})
	}

	e.must("plan-bot", "POST", tp+"/reports", map[string]any{"status": "ok"}, &view, 201)
	if !view.Requirements.Met {
		t.Fatalf("plan-bot's own ok: %+v", view.Requirements)
	}
	e.must("alice", "POST", tp+"/commit", nil, nil, 200)
}

// A reconciler's status is reported by the token of its name, or of the
// name it is a sub-name of ("flux/prod"), or by an administrator: a
// rollout's convergence cannot be faked by another token.
func TestReconcilerStatusIsTheCallers(t *testing.T) {
	e := newTxnEnv(t)
	e.must("alice", "PUT", repoPath+"/kv/a", "1", nil, 200)
	status := func(name string) string { return repoPath + "/reconcilers/" + url.PathEscape(name) + "/status" }
	applied := map[string]any{"revision": 1, "state": "applied"}
	for _, c := range []struct {
		user, name string
		status     int
		code       string
	}{
		{"flux", "flux", 200, ""},
		{"flux", "flux/prod", 200, ""},
		{"flux", "flux/eu/1", 200, ""},
		{"root", "argo", 200, ""},
		{"alice", "flux", 403, "reporter_not_caller"},
		{"alice", "flux/prod", 403, "reporter_not_caller"},
		{"flux", "fluxcd", 403, "reporter_not_caller"},
		{"flu", "flux", 403, "reporter_not_caller"},
		{"alice", "alice//x", 400, "invalid_request"},
	} {
		if status, code := e.do(c.user, "POST", status(c.name), applied, nil); status != c.status || code != c.code {
			t.Errorf("%s reporting for %q: %d %s, want %d %s", c.user, c.name, status, code, c.status, c.code)
		}
	}
	var list wire.ReconcilerList
	e.must("bob", "GET", repoPath+"/reconcilers", nil, &list, 200)
	var names []string
	for _, r := range list.Reconcilers {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, " "); got != "argo flux flux/eu/1 flux/prod" {
		t.Errorf("reconcilers = %s, want argo flux flux/eu/1 flux/prod (and no refused report)", got)
	}
	e.must("root", "DELETE", repoPath+"/reconcilers/"+url.PathEscape("flux/prod"), nil, nil, 204)
}

// A ttl given is checked as given: "0s" is refused as any ttl under 1s,
// not taken for the default, which only an absent ttl means.
func TestTxnTTL(t *testing.T) {
	e := newTxnEnv(t)
	for _, ttl := range []any{"0s", 0, "-1h", "500ms", "721h"} {
		if status, code := e.do("alice", "POST", repoPath+"/txns", map[string]any{"message": "x", "ttl": ttl}, nil); status != 400 || code != "invalid_request" {
			t.Errorf("ttl %v: %d %s, want 400 invalid_request", ttl, status, code)
		}
	}
	var list wire.TxnList
	e.must("bob", "GET", repoPath+"/txns", nil, &list, 200)
	if len(list.Txns) != 0 {
		t.Errorf("refused begins opened %d transaction(s)", len(list.Txns))
	}
	var tx wire.Txn
	e.must("alice", "POST", repoPath+"/txns", map[string]any{"message": "x"}, &tx, 201)
	if d := tx.ExpiresAt.Sub(tx.CreatedAt); d != 24*time.Hour {
		t.Errorf("absent ttl: lives %s, want 24h", d)
	}
	e.must("alice", "POST", repoPath+"/txns", map[string]any{"message": "x", "ttl": "1s"}, &tx, 201)
	if d := tx.ExpiresAt.Sub(tx.CreatedAt); d != time.Second {
		t.Errorf("ttl 1s: lives %s", d)
	}
}

// TestTxnExpiredBeforeSweep checks that a transaction is expired for
// every client from its expires_at, not from when the sweeper (every 30s
// here) closes it: GET and the list's filters say so, DELETE is refused
// with 409 txn_expired instead of aborting it, a watch of its branch ends,
// and its writes can still be read.
func TestTxnExpiredBeforeSweep(t *testing.T) {
	e := newTxnEnv(t)
	var tx wire.Txn
	e.must("alice", "POST", repoPath+"/txns", map[string]any{"ttl": "1s"}, &tx, 201)
	tp := repoPath + "/txns/" + tx.ID
	e.must("alice", "PUT", tp+"/kv/k", "v", nil, 200)
	s := e.watch("bob", "branch=txn/"+tx.ID, nil)
	s.next(t, 5*time.Second, "revision")
	time.Sleep(time.Until(tx.ExpiresAt) + 50*time.Millisecond)

	// The stream ends at the expiry, without waiting for the sweeper.
	ev := s.next(t, 3*time.Second, "close")
	if !strings.Contains(ev.Data, "transaction expired") {
		t.Errorf("close event: %s", ev.Data)
	}
	var got wire.Txn
	e.must("bob", "GET", tp, nil, &got, 200)
	if got.Status != "expired" || got.ClosedAt == nil || !got.ClosedAt.Equal(tx.ExpiresAt) || got.HeadCommit == "" {
		t.Errorf("GET: status %s, closed_at %v, head %q; want expired at %s", got.Status, got.ClosedAt, got.HeadCommit, tx.ExpiresAt)
	}
	for _, c := range []struct {
		query string
		want  bool
	}{{"", true}, {"?status=open", false}, {"?status=expired", true}} {
		var list wire.TxnList
		e.must("bob", "GET", repoPath+"/txns"+c.query, nil, &list, 200)
		found := slices.ContainsFunc(list.Txns, func(w wire.Txn) bool { return w.ID == tx.ID && w.Status == "expired" })
		if found != c.want || (!c.want && len(list.Txns) > 0) {
			t.Errorf("list%s: %+v, want it listed (expired): %v", c.query, list.Txns, c.want)
		}
	}
	if status, er := e.send("alice", "DELETE", tp, nil, nil); status != 409 || er.Code != "txn_expired" {
		t.Errorf("DELETE: %d %+v, want 409 txn_expired", status, er)
	}
	e.must("bob", "GET", tp, nil, &got, 200)
	if got.Status != "expired" {
		t.Errorf("after the refused DELETE: %s", got.Status)
	}
	var v string
	e.must("bob", "GET", tp+"/kv/k", nil, &v, 200)
	if v != "v" {
		t.Errorf("read in the expired transaction: %q", v)
	}
}

// TestTxnViewArrays checks that a transaction's full description (GET,
// and the answers of rebase, approvals and reports) always carries keys
// and conflicts as arrays, empty ones included, like approvals and
// reports, while the list's bare records leave them out, as openapi.yaml
// says.
func TestTxnViewArrays(t *testing.T) {
	e := newTxnEnv(t)
	var tx wire.Txn
	e.must("alice", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
	tp := repoPath + "/txns/" + tx.ID
	arrays := func(what, raw string, want bool) {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for _, f := range []string{"keys", "conflicts", "approvals", "reports"} {
			_, isArray := m[f].([]any)
			if f == "keys" || f == "conflicts" {
				if _, present := m[f]; isArray != want || (!want && present) {
					t.Errorf("%s: %s = %#v, want an array: %v", what, f, m[f], want)
				}
			} else if !isArray {
				t.Errorf("%s: %s = %#v, want an array", what, f, m[f])
			}
		}
	}
	var raw string
	e.must("bob", "GET", tp, nil, &raw, 200)
	arrays("GET of an empty transaction", raw, true)
	e.must("alice", "PUT", tp+"/kv/k", "v", nil, 200)
	for _, c := range []struct {
		user, method, path string
		body               any
		code               int
	}{
		{"bob", "GET", tp, nil, 200},
		{"alice", "POST", tp + "/rebase", nil, 200},
		{"bob", "POST", tp + "/approvals", map[string]any{}, 201},
		{"alice", "POST", tp + "/reports", map[string]any{"status": "ok"}, 201},
	} {
		e.must(c.user, c.method, c.path, c.body, &raw, c.code)
		arrays(c.method+" "+c.path, raw, true)
	}
	var list struct {
		Txns []json.RawMessage `json:"txns"`
	}
	e.must("bob", "GET", repoPath+"/txns", nil, &list, 200)
	if len(list.Txns) != 1 {
		t.Fatalf("list: %d transactions", len(list.Txns))
	}
	arrays("a listed record", string(list.Txns[0]), false)
	e.must("alice", "DELETE", tp, nil, nil, 200)
	e.must("bob", "GET", tp, nil, &raw, 200)
	arrays("GET of an aborted transaction", raw, true)
}

// A key and a directory cannot share a path: when main makes a path a
// directory where a transaction writes a value, or a value where it
// writes keys under it, the transaction's view lists the conflict, and
// commit and rebase fail with it, saying what main did. Where the
// transaction itself removes what is in the way, there is none.
func TestTxnKeyDirectoryConflicts(t *testing.T) {
	e := newTxnEnv(t)
	e.must("alice", "PUT", repoPath+"/kv/base", "0", nil, 200)
	e.must("alice", "PUT", repoPath+"/kv/gg/old", "0", nil, 200)
	e.must("alice", "PUT", repoPath+"/kv/hh", "0", nil, 200)
	begin := func(puts map[string]string, dels ...string) string {
		t.Helper()
		var tx wire.Txn
		e.must("alice", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
		for _, k := range dels {
			e.must("alice", "DELETE", repoPath+"/txns/"+tx.ID+"/kv/"+k, nil, nil, 200)
		}
		for k, v := range puts {
			e.must("alice", "PUT", repoPath+"/txns/"+tx.ID+"/kv/"+k, v, nil, 200)
		}
		return tx.ID
	}
	// A: the transaction writes dd, then main writes dd/x.
	a := begin(map[string]string{"dd": "1"})
	// B: the transaction writes ee/x, then main writes ee.
	b := begin(map[string]string{"ee/x": "1"})
	// C: the transaction replaces directory gg with a value, and D puts
	// keys under hh where it deletes the value: main changed neither.
	c := begin(map[string]string{"gg": "1"}, "gg/old")
	d := begin(map[string]string{"hh/x": "1"}, "hh")
	e.must("bob", "PUT", repoPath+"/kv/dd/x", "2", nil, 200)
	e.must("bob", "PUT", repoPath+"/kv/ee", "2", nil, 200)

	for _, tc := range []struct {
		name, id, key, says string
	}{
		{"value where main made a directory", a, "dd", `main made "dd" a directory`},
		{"keys under a value main made", b, "ee/x", `main made "ee" a key with a value`},
		{"a directory replaced by a value", c, "", ""},
		{"a value replaced by a directory", d, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := repoPath + "/txns/" + tc.id
			var view wire.Txn
			if status, code := e.do("bob", "GET", tp, nil, &view); status != 200 {
				t.Fatalf("GET: %d %s", status, code)
			}
			if got := strings.Join(view.Conflicts, ","); got != tc.key {
				t.Fatalf("conflicts = %q, want %q", got, tc.key)
			}
			if tc.key == "" {
				if status, code := e.do("alice", "POST", tp+"/commit", nil, nil); status != 200 {
					t.Fatalf("commit: %d %s", status, code)
				}
				return
			}
			rp, _ := e.st.Repo(storage.DefaultRepo)
			head := rp.Head()
			for _, verb := range []string{"rebase", "commit"} {
				status, ee := e.send("alice", "POST", tp+"/"+verb, nil, nil)
				if status != 409 || ee.Code != "merge_conflict" || strings.Join(ee.Keys, ",") != tc.key ||
					!strings.Contains(ee.Message, tc.says) || strings.Contains(ee.Message, "both sides") {
					t.Errorf("%s: %d %+v, want 409 merge_conflict on %s saying %s", verb, status, ee, tc.key, tc.says)
				}
			}
			if rp.Head() != head {
				t.Error("a refused commit moved main")
			}
			e.do("bob", "GET", tp, nil, &view)
			if view.Status != "open" || strings.Join(view.Conflicts, ",") != tc.key {
				t.Errorf("after the refusals: %s, conflicts %v", view.Status, view.Conflicts)
			}
		})
	}
	var got string
	e.must("bob", "GET", repoPath+"/kv/gg", nil, &got, 200)
	e.must("bob", "GET", repoPath+"/kv/hh/x", nil, &got, 200)
}

// TestTxnValueConflictMessages checks that a merge_conflict on values says,
// key by key, what main did: changed the value, deleted the key, or
// created it with another value (two transactions creating one key, the
// second committed last), on commit and on rebase alike.
func TestTxnValueConflictMessages(t *testing.T) {
	e := newTxnEnv(t)
	for _, k := range []string{"ch/k", "del/k", "drop/k"} {
		e.must("alice", "PUT", repoPath+"/kv/"+k, "0", nil, 200)
	}
	begin := func() string {
		t.Helper()
		var tx wire.Txn
		e.must("alice", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
		return repoPath + "/txns/" + tx.ID
	}
	changed, deleted, created, first, dropped := begin(), begin(), begin(), begin(), begin()
	e.must("alice", "PUT", changed+"/kv/ch/k", "1", nil, 200)
	e.must("alice", "PUT", deleted+"/kv/del/k", "1", nil, 200)
	e.must("alice", "PUT", first+"/kv/c/k", "1", nil, 200)
	e.must("alice", "PUT", created+"/kv/c/k", "2", nil, 200)
	e.must("alice", "DELETE", dropped+"/kv/drop/k", nil, nil, 200)
	e.must("bob", "PUT", repoPath+"/kv/ch/k", "2", nil, 200)
	e.must("bob", "DELETE", repoPath+"/kv/del/k", nil, nil, 200)
	e.must("alice", "POST", first+"/commit", nil, nil, 200)
	e.must("bob", "PUT", repoPath+"/kv/drop/k", "2", nil, 200)

	for _, c := range []struct {
		name, tp, key, says string
	}{
		{"main changed the value", changed, "ch/k", `main changed "ch/k" to another value`},
		{"main deleted the key", deleted, "del/k", `main deleted "del/k"`},
		{"main created the key", created, "c/k", `main created "c/k" with another value`},
		{"main changed what the transaction deletes", dropped, "drop/k", `main changed "drop/k" to another value`},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, verb := range []string{"commit", "rebase"} {
				status, er := e.send("alice", "POST", c.tp+"/"+verb, nil, nil)
				if status != 409 || er.Code != "merge_conflict" || !slices.Equal(er.Keys, []string{c.key}) ||
					er.Message != "1 key(s) conflict with main: "+c.says {
					t.Errorf("%s: %d %+v, want 409 merge_conflict on %s saying %s", verb, status, er, c.key, c.says)
				}
			}
		})
	}
}

// TestTxnConflictPrefixLimited checks that a merge_conflict answered to a
// token limited to prefixes names neither in its keys nor in its message
// a key outside them (the transaction's, or one main put a value at above
// it), while an administrator is told every one.
func TestTxnConflictPrefixLimited(t *testing.T) {
	e := newTxnEnv(t)
	var tx, under wire.Txn
	e.must("lim", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
	e.must("lim", "POST", repoPath+"/txns", map[string]any{}, &under, 201)
	tp, up := repoPath+"/txns/"+tx.ID, repoPath+"/txns/"+under.ID
	e.must("lim", "PUT", tp+"/kv/app/x", "1", nil, 200)
	// An administrator may write in anyone's transaction.
	e.must("root", "PUT", tp+"/kv/secret/y", "1", nil, 200)
	e.must("lim", "PUT", up+"/kv/app/n", "1", nil, 200)
	e.must("root", "PUT", repoPath+"/kv/app/x", "main", nil, 200)
	e.must("root", "PUT", repoPath+"/kv/secret/y", "main", nil, 200)

	status, er := e.send("lim", "POST", tp+"/commit", nil, nil)
	if status != 409 || er.Code != "merge_conflict" || !slices.Equal(er.Keys, []string{"app/x"}) ||
		er.Message != `1 key(s) conflict with main: main created "app/x" with another value; and keys outside your token's prefixes conflict with main` {
		t.Errorf("the limited token's commit: %d %+v", status, er)
	}
	status, er = e.send("root", "POST", tp+"/commit", nil, nil)
	if status != 409 || !slices.Equal(er.Keys, []string{"app/x", "secret/y"}) || !strings.Contains(er.Message, `main created "secret/y"`) {
		t.Errorf("the administrator's commit: %d %+v", status, er)
	}

	// main makes "app" a value: app/n cannot go under it, and "app" is
	// not a key the limited token may read.
	e.must("root", "DELETE", repoPath+"/kv/app/x", nil, nil, 200)
	e.must("root", "PUT", repoPath+"/kv/app", "v", nil, 200)
	status, er = e.send("lim", "POST", up+"/commit", nil, nil)
	if status != 409 || !slices.Equal(er.Keys, []string{"app/n"}) ||
		er.Message != `1 key(s) conflict with main: main made a directory of "app/n" a key with a value, so "app/n" cannot be written under it` {
		t.Errorf("the limited token's commit under a value: %d %+v", status, er)
	}
	status, er = e.send("root", "POST", up+"/commit", nil, nil)
	if status != 409 || !strings.Contains(er.Message, `main made "app" a key with a value`) {
		t.Errorf("the administrator's commit under a value: %d %+v", status, er)
	}
}

// TestTxnViewPrefixLimited checks that a token limited to prefixes is not
// told, by a transaction's description (GET, and the answer to a report),
// the names of its keys outside them: not in keys, not in conflicts, not in
// the protected keys; and that it may not approve such a transaction.
func TestTxnViewPrefixLimited(t *testing.T) {
	e := newTxnEnv(t)
	var tx wire.Txn
	e.must("root", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
	e.must("root", "PUT", repoPath+"/txns/"+tx.ID+"/kv/.gitstate/policy.yaml", "protected:\n  - prefix: secret/\n  - prefix: app/\n", nil, 200)
	e.must("root", "POST", repoPath+"/txns/"+tx.ID+"/commit", nil, nil, 200)

	e.must("root", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
	tp := repoPath + "/txns/" + tx.ID
	e.must("root", "POST", tp+"/commits", map[string]any{"ops": []map[string]string{
		{"op": "put", "key": "app/x", "value": "1"}, {"op": "put", "key": "secret/db-hint", "value": "2"}}}, nil, 200)
	// Both keys change on main too (through a transaction: they are
	// protected): both are conflicts.
	var other wire.Txn
	e.must("root", "POST", repoPath+"/txns", map[string]any{}, &other, 201)
	e.must("root", "POST", repoPath+"/txns/"+other.ID+"/commits", map[string]any{"ops": []map[string]string{
		{"op": "put", "key": "app/x", "value": "main"}, {"op": "put", "key": "secret/db-hint", "value": "main"}}}, nil, 200)
	e.must("root", "POST", repoPath+"/txns/"+other.ID+"/commit", nil, nil, 200)

	var full wire.Txn
	e.must("root", "GET", tp, nil, &full, 200)
	if !slices.Equal(full.Keys, []string{"app/x", "secret/db-hint"}) || !slices.Equal(full.Conflicts, full.Keys) ||
		full.Requirements == nil || !slices.Equal(full.Requirements.ProtectedKeys, full.Keys) {
		t.Fatalf("the administrator's view: keys %q, conflicts %q, requirements %+v", full.Keys, full.Conflicts, full.Requirements)
	}
	for _, c := range []struct {
		method, path string
		body         any
		code         int
	}{
		{"GET", tp, nil, 200},
		{"POST", tp + "/reports", map[string]string{"status": "ok"}, 201},
	} {
		var raw string
		e.must("lim", c.method, c.path, c.body, &raw, c.code)
		var got wire.Txn
		if err := json.Unmarshal([]byte(raw), &got); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(raw, "secret/") {
			t.Errorf("%s %s names a key outside app/: %s", c.method, c.path, raw)
		}
		want := []string{"app/x"}
		if !slices.Equal(got.Keys, want) || !slices.Equal(got.Conflicts, want) || got.Requirements == nil || !slices.Equal(got.Requirements.ProtectedKeys, want) {
			t.Errorf("%s %s: keys %q, conflicts %q, requirements %+v; want %q in each", c.method, c.path, got.Keys, got.Conflicts, got.Requirements, want)
		}
	}
	// An approval vouches for every change: lim cannot give one for
	// changes it cannot read, and the refusal names none of them.
	var raw string
	if status, code := e.do("lim", "POST", tp+"/approvals", map[string]string{}, &raw); status != 403 || code != "approver_cannot_see" {
		t.Errorf("approval by lim: %d %s, want 403 approver_cannot_see", status, code)
	}
	e.must("root", "GET", tp, nil, &full, 200)
	if len(full.Approvals) != 0 {
		t.Errorf("approvals after the refusal: %+v", full.Approvals)
	}
	// On a transaction within its prefixes, it may.
	var mine wire.Txn
	e.must("root", "POST", repoPath+"/txns", map[string]any{}, &mine, 201)
	e.must("root", "PUT", repoPath+"/txns/"+mine.ID+"/kv/app/y", "1", nil, 200)
	e.must("lim", "POST", repoPath+"/txns/"+mine.ID+"/approvals", map[string]string{}, nil, 201)
}
