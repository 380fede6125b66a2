package api_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/watch"
)

const hookSecret = "api-test-secret-0123456789abcdef"

// hookSink is a webhook receiver that keeps the revisions it accepts.
type hookSink struct {
	srv *httptest.Server

	mu   sync.Mutex
	revs []string
	bad  []string
}

func newHookSink(t *testing.T) *hookSink {
	k := &hookSink{}
	k.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(hookSecret))
		m.Write(body)
		k.mu.Lock()
		defer k.mu.Unlock()
		if r.Header.Get(wire.HeaderSignature) != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			k.bad = append(k.bad, string(body))
		}
		k.revs = append(k.revs, r.Header.Get(wire.HeaderRevision))
	}))
	t.Cleanup(k.srv.Close)
	return k
}

func (k *hookSink) received() ([]string, []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.revs...), append([]string(nil), k.bad...)
}

func TestWebhooksHTTP(t *testing.T) {
	e := newTxnEnv(t)
	sink := newHookSink(t)
	hooks := repoPath + "/webhooks"
	create := map[string]any{"url": sink.srv.URL, "secret": hookSecret, "prefix": "apps/"}

	if status, code := e.do("alice", "POST", hooks, create, nil); status != 403 || code != "forbidden" {
		t.Errorf("create without scope admin: %d %s", status, code)
	}
	if status, _ := e.do("alice", "GET", hooks, nil, nil); status != 403 {
		t.Errorf("list without scope admin: %d", status)
	}
	var raw string
	e.must("root", "POST", hooks, create, &raw, 201)
	if strings.Contains(raw, hookSecret) || strings.Contains(raw, "secret") {
		t.Errorf("the create answer shows the secret: %s", raw)
	}
	var h wire.Webhook
	e.must("root", "GET", hooks+"/"+idOf(t, raw), nil, &h, 200)
	if !watch.ValidWebhookID(h.ID) || h.URL != sink.srv.URL || h.Prefix != "apps/" || fmt.Sprint(h.Events) != "[revision]" || h.Position != 0 || h.CreatedAt.IsZero() {
		t.Fatalf("webhook: %+v", h)
	}

	e.must("alice", "PUT", repoPath+"/kv/apps/a", "1", nil, 200)
	e.must("alice", "PUT", repoPath+"/kv/other", "1", nil, 200)
	e.must("alice", "PUT", repoPath+"/kv/apps/b", "1", nil, 200)
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.must("root", "GET", hooks+"/"+h.ID, nil, &h, 200)
		if h.Position == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook did not catch up: %+v", h)
		}
		time.Sleep(10 * time.Millisecond)
	}
	revs, bad := sink.received()
	if fmt.Sprint(revs) != "[1 3]" || len(bad) > 0 {
		t.Errorf("received revisions %v (badly signed: %v)", revs, bad)
	}
	if h.Pending != 0 || h.Failures != 0 || h.LastDelivery == nil || !h.LastDelivery.OK || h.LastDelivery.Revision != 3 || h.LastDelivery.ID != h.ID+"-3" {
		t.Errorf("after catching up: %+v %+v", h, h.LastDelivery)
	}
	var ds wire.WebhookDeliveryList
	e.must("root", "GET", hooks+"/"+h.ID+"/deliveries", nil, &ds, 200)
	if len(ds.Deliveries) != 2 || ds.Deliveries[0].Revision != 3 || ds.Deliveries[0].StatusCode != 200 || ds.Deliveries[1].Attempt != 1 {
		t.Errorf("deliveries: %+v", ds)
	}
	var list wire.WebhookList
	e.must("root", "GET", hooks, nil, &raw, 200)
	e.must("root", "GET", hooks, nil, &list, 200)
	if len(list.Webhooks) != 1 || list.Webhooks[0].ID != h.ID || strings.Contains(raw, hookSecret) {
		t.Errorf("list: %s", raw)
	}

	for name, c := range map[string]struct {
		body   any
		status int
		code   string
	}{
		"ftp":           {map[string]any{"url": "ftp://example.com/", "secret": hookSecret}, 400, "invalid_request"},
		"credentials":   {map[string]any{"url": "https://u:p@example.com/", "secret": hookSecret}, 400, "invalid_request"},
		"short secret":  {map[string]any{"url": "https://example.com/", "secret": "x"}, 400, "invalid_request"},
		"no secret":     {map[string]any{"url": "https://example.com/"}, 400, "invalid_request"},
		"event":         {map[string]any{"url": "https://example.com/", "secret": hookSecret, "events": []string{"push"}}, 400, "invalid_request"},
		"unknown field": {map[string]any{"url": "https://example.com/", "secret": hookSecret, "filter": "x"}, 400, "invalid_request"},
		"prefix":        {map[string]any{"url": "https://example.com/", "secret": hookSecret, "prefix": "a//b"}, 400, "invalid_key"},
		"from negative": {map[string]any{"url": "https://example.com/", "secret": hookSecret, "from": -1}, 400, "invalid_revision"},
		"from future":   {map[string]any{"url": "https://example.com/", "secret": hookSecret, "from": 99}, 404, "revision_not_found"},
	} {
		if status, code := e.do("root", "POST", hooks, c.body, nil); status != c.status || code != c.code {
			t.Errorf("%s: %d %s, want %d %s", name, status, code, c.status, c.code)
		}
	}
	if status, code := e.do("root", "POST", "/v1/repos/nope/webhooks", create, nil); status != 404 || code != "repo_not_found" {
		t.Errorf("unknown repo: %d %s", status, code)
	}
	for _, id := range []string{"aaaaaaaaaaaa", "NOT-AN-ID"} {
		if status, code := e.do("root", "GET", hooks+"/"+id, nil, nil); status != 404 || code != "webhook_not_found" {
			t.Errorf("webhook %s: %d %s", id, status, code)
		}
	}
	if status, _ := e.do("alice", "DELETE", hooks+"/"+h.ID, nil, nil); status != 403 {
		t.Errorf("delete without scope admin: %d", status)
	}
	e.must("root", "DELETE", hooks+"/"+h.ID, nil, nil, 200)
	if status, code := e.do("root", "GET", hooks+"/"+h.ID+"/deliveries", nil, nil); status != 404 || code != "webhook_not_found" {
		t.Errorf("after delete: %d %s", status, code)
	}
}

// idOf returns the id of a webhook's JSON.
func idOf(t *testing.T, body string) string {
	t.Helper()
	_, rest, ok := strings.Cut(body, `"id":"`)
	id, _, ok2 := strings.Cut(rest, `"`)
	if !ok || !ok2 {
		t.Fatalf("no id in %s", body)
	}
	return id
}

func TestReconcilersHTTP(t *testing.T) {
	e := newTxnEnv(t)
	var commits []string
	for _, k := range []string{"a", "b", "c"} {
		var wr wire.WriteResult
		e.must("alice", "PUT", repoPath+"/kv/"+k, "1", &wr, 200)
		commits = append(commits, wr.Commit)
	}
	status := func(name string) string { return repoPath + "/reconcilers/" + url.PathEscape(name) + "/status" }
	var rc wire.Reconciler
	e.must("eu-west", "POST", status("eu-west"), map[string]any{"revision": 3, "state": "applied", "interval": "30s", "message": "ok"}, &rc, 200)
	if rc.Name != "eu-west" || rc.AppliedRevision != 3 || rc.State != "applied" || rc.LagRevisions != 0 || rc.LagSeconds != 0 || rc.Stale || rc.Interval != wire.Duration(30*time.Second) {
		t.Errorf("report: %+v", rc)
	}
	// A revision may be given as a commit id.
	e.must("us-east", "POST", status("us-east"), map[string]any{"revision": commits[0], "state": "applied"}, &rc, 200)
	if rc.AppliedRevision != 1 || rc.LagRevisions != 2 || rc.LagSeconds < 0 {
		t.Errorf("report by commit id: %+v", rc)
	}
	e.must("us-east", "POST", status("us-east"), map[string]any{"revision": 2, "state": "failed", "message": "boom"}, &rc, 200)
	// An older applied report moves nothing back.
	e.must("eu-west", "POST", status("eu-west"), map[string]any{"revision": 1, "state": "applied"}, &rc, 200)
	if rc.AppliedRevision != 3 || rc.Revision != 3 || rc.Message != "ok" {
		t.Errorf("superseded report: %+v", rc)
	}

	var list wire.ReconcilerList
	e.must("bob", "GET", repoPath+"/reconcilers", nil, &list, 200)
	if list.Revision != 3 || len(list.Reconcilers) != 2 || list.Reconcilers[0].Name != "eu-west" || list.Reconcilers[1].State != "failed" || list.Reconcilers[1].Message != "boom" || list.Reconcilers[1].AppliedRevision != 1 {
		t.Errorf("list: %+v", list)
	}
	var ro wire.Rollout
	e.must("bob", "GET", repoPath+"/commits/2/rollout", nil, &ro, 200)
	if ro.Revision != 2 || ro.Commit != commits[1] || ro.Head != 3 || len(ro.Applied) != 1 || ro.Applied[0].Name != "eu-west" || len(ro.Pending) != 1 || ro.Pending[0].AppliedRevision != 1 || ro.Converged {
		t.Errorf("rollout of 2: %+v", ro)
	}
	e.must("bob", "GET", repoPath+"/commits/"+commits[0][:10]+"/rollout", nil, &ro, 200)
	if ro.Revision != 1 || !ro.Converged || len(ro.Pending) != 0 || len(ro.Applied) != 2 {
		t.Errorf("rollout of 1: %+v", ro)
	}
	var ro0 wire.Rollout
	e.must("bob", "GET", repoPath+"/commits/0/rollout", nil, &ro0, 200)
	if ro0.Revision != 0 || ro0.Commit != "" || !ro0.Converged {
		t.Errorf("rollout of 0: %+v", ro0)
	}

	for name, c := range map[string]struct {
		path   string
		body   any
		status int
		code   string
	}{
		"unknown state":    {status("ci"), map[string]any{"revision": 1, "state": "done"}, 400, "invalid_request"},
		"no revision":      {status("ci"), map[string]any{"state": "applied"}, 400, "invalid_request"},
		"negative":         {status("ci"), map[string]any{"revision": -1, "state": "applied"}, 400, "invalid_revision"},
		"after the head":   {status("ci"), map[string]any{"revision": 4, "state": "applied"}, 404, "revision_not_found"},
		"unknown commit":   {status("ci"), map[string]any{"revision": "abcdef1234", "state": "applied"}, 404, "revision_not_found"},
		"bad interval":     {status("ci"), map[string]any{"revision": 1, "state": "applied", "interval": "soon"}, 400, "invalid_request"},
		"bad name":         {status("-x"), map[string]any{"revision": 1, "state": "applied"}, 400, "invalid_request"},
		"unknown field":    {status("ci"), map[string]any{"revision": 1, "state": "applied", "lag": 1}, 400, "invalid_request"},
		"unknown repo":     {"/v1/repos/nope/reconcilers/ci/status", map[string]any{"revision": 1, "state": "applied"}, 404, "repo_not_found"},
		"rollout future":   {repoPath + "/commits/4/rollout", nil, 404, "revision_not_found"},
		"rollout negative": {repoPath + "/commits/-1/rollout", nil, 400, "invalid_revision"},
	} {
		method := "POST"
		if c.body == nil {
			method = "GET"
		}
		if status, code := e.do("ci", method, c.path, c.body, nil); status != c.status || code != c.code {
			t.Errorf("%s: %d %s, want %d %s", name, status, code, c.status, c.code)
		}
	}

	if status, _ := e.do("ci", "DELETE", repoPath+"/reconcilers/us-east", nil, nil); status != 403 {
		t.Errorf("delete without scope admin: %d", status)
	}
	e.must("root", "DELETE", repoPath+"/reconcilers/us-east", nil, nil, 204)
	if status, code := e.do("root", "DELETE", repoPath+"/reconcilers/us-east", nil, nil); status != 404 || code != "reconciler_not_found" {
		t.Errorf("delete twice: %d %s", status, code)
	}
	e.must("bob", "GET", repoPath+"/commits/3/rollout", nil, &ro, 200)
	if !ro.Converged || len(ro.Applied) != 1 {
		t.Errorf("rollout after forgetting us-east: %+v", ro)
	}
}
