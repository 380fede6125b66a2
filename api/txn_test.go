package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
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
	if name == "root" {
		p.Scopes = []api.Scope{api.ScopeAdmin}
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
		return resp.StatusCode, er.Error.Code
	}
	if out != nil {
		if b, ok := out.(*string); ok {
			*b = string(data)
		} else if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, ""
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
	e.must("ci", "POST", tp+"/reports", map[string]any{"reporter": "plan", "status": "ok", "summary": "1 change", "details": map[string]int{"changes": 1}}, &view, 201)
	if len(view.Reports) != 1 || !view.Reports[0].Current {
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
	if status, code := e.do("alice", "PUT", repoPath+"/kv/apps/web/replicas.json", `{"replicas":0}`, nil); status != 422 || code != "schema_violation" {
		t.Errorf("schema on main: %d %s", status, code)
	}
	e.must("alice", "POST", repoPath+"/txns", map[string]any{}, &tx, 201)
	tp := repoPath + "/txns/" + tx.ID
	if status, code := e.do("alice", "PUT", tp+"/kv/apps/web/replicas.json", `{"replicas":-1}`, nil); status != 422 || code != "schema_violation" {
		t.Errorf("schema in txn: %d %s", status, code)
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
