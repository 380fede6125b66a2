package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/server"
	"github.com/gitstate/gitstate/watch"
)

const (
	restartSecret = "restart-secret-5e0d2c4a-do-not-store-me"
	restartAdmin  = "restart-test-admin-token"
)

// call sends a JSON request to a running server and decodes the answer.
func call(t *testing.T, srv *server.Server, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = strings.NewReader(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, srv.URL()+path, rd)
	req.Header.Set("Authorization", "Bearer "+restartAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(b), restartSecret) {
		t.Errorf("%s %s answered the webhook secret: %s", method, path, b)
	}
	if out != nil {
		if s, ok := out.(*string); ok {
			*s = string(b)
		} else if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

// delivery is a request the receiver accepted.
type delivery struct{ id, body string }

// TestWebhooksAcrossServerRestart stops and starts the whole server on one
// data directory while a webhook's receiver fails, stalls and recovers:
// every revision arrives, in order, signed, and duplicates are the same
// delivery.
func TestWebhooksAcrossServerRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.ShutdownTimeout = dir, "127.0.0.1:0", 5*time.Second
	cfg.AdminToken, cfg.Banner = restartAdmin, io.Discard
	cfg.Webhooks = watch.WebhookOptions{AttemptTimeout: 300 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	start := func() *server.Server {
		srv, err := server.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}

	var mu sync.Mutex
	down := false
	attempts := map[string]int{}
	var accepted []delivery
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(restartSecret))
		m.Write(body)
		if r.Header.Get("X-Gitstate-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			t.Errorf("bad signature on %s", body)
		}
		id := r.Header.Get("X-Gitstate-Delivery")
		mu.Lock()
		attempts[id]++
		n, isDown := attempts[id], down
		// A stalled attempt was received (the sender gives up on it and
		// sends a duplicate); a failed one was not.
		if !isDown && !(n == 1 && strings.HasSuffix(id, "-3")) {
			accepted = append(accepted, delivery{id, string(body)})
		}
		mu.Unlock()
		switch {
		case isDown:
			http.Error(w, "down", http.StatusServiceUnavailable)
		case n == 1 && strings.HasSuffix(id, "-3"):
			http.Error(w, "first attempt fails", http.StatusInternalServerError)
		case n == 1 && strings.HasSuffix(id, "-8"):
			// Stall past the attempt timeout.
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}
	}))
	defer recv.Close()
	// revs returns the revisions accepted, checking that duplicates are
	// the same delivery.
	revs := func() []int {
		mu.Lock()
		defer mu.Unlock()
		var out []int
		seen := map[string]string{}
		for _, d := range accepted {
			if body, ok := seen[d.id]; ok {
				if body != d.body {
					t.Errorf("delivery %s sent twice with different bodies", d.id)
				}
				continue
			}
			seen[d.id] = d.body
			var ev wire.WatchEvent
			json.Unmarshal([]byte(d.body), &ev)
			out = append(out, int(ev.Revision))
		}
		return out
	}
	waitRevs := func(n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for len(revs()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("received %v, want %d revisions", revs(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	srv := start()
	var h wire.Webhook
	if st := call(t, srv, "POST", "/v1/repos/default/webhooks", map[string]any{"url": recv.URL, "secret": restartSecret}, &h); st != 201 {
		t.Fatalf("create webhook: %d", st)
	}
	put := func(srv *server.Server, i int) {
		if st := call(t, srv, "PUT", fmt.Sprintf("/v1/repos/default/kv/k%02d", i), "v", nil); st != 200 {
			t.Fatalf("put %d: %d", i, st)
		}
	}
	for i := 1; i <= 4; i++ {
		put(srv, i)
	}
	waitRevs(4)
	mu.Lock()
	down = true
	mu.Unlock()
	put(srv, 5)
	put(srv, 6)
	// Revision 5 is being retried when the server stops.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := attempts[h.ID+"-5"]
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revision 5 not retried")
		}
	}
	// A reconciler reports before the restart; its record must survive it.
	if st := call(t, srv, "POST", "/v1/repos/default/reconcilers/eu/status", map[string]any{"revision": 4, "state": "applied", "interval": "1h"}, nil); st != 200 {
		t.Fatalf("report: %d", st)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	srv = start()
	defer srv.Shutdown(context.Background())
	put(srv, 7)
	mu.Lock()
	down = false
	mu.Unlock()
	for i := 8; i <= 10; i++ {
		put(srv, i)
	}
	waitRevs(10)
	if got := fmt.Sprint(revs()); got != "[1 2 3 4 5 6 7 8 9 10]" {
		t.Fatalf("received %s across a restart, want 1..10 in order", got)
	}
	mu.Lock()
	if attempts[h.ID+"-3"] != 2 || attempts[h.ID+"-8"] != 2 || attempts[h.ID+"-5"] < 3 {
		t.Errorf("attempts: %v", attempts)
	}
	mu.Unlock()

	// Convergence survived the restart, and its metrics are served.
	var list wire.ReconcilerList
	call(t, srv, "GET", "/v1/repos/default/reconcilers", nil, &list)
	if len(list.Reconcilers) != 1 || list.Reconcilers[0].AppliedRevision != 4 || list.Reconcilers[0].LagRevisions != 6 || list.Reconcilers[0].Stale {
		t.Errorf("reconcilers after a restart: %+v", list)
	}
	var metrics string
	call(t, srv, "GET", "/metrics", nil, &metrics)
	for _, want := range []string{
		`gitstate_reconciler_lag_revisions{reconciler="eu",repo="default"} 6`,
		`gitstate_reconciler_stale{reconciler="eu",repo="default"} 0`,
		`gitstate_reconciler_lag_seconds{reconciler="eu",repo="default"}`,
		`gitstate_webhook_deliveries_total{outcome="ok",repo="default"}`,
		`gitstate_webhook_delivery_duration_seconds_count{repo="default"}`,
		`gitstate_webhook_pending_revisions{repo="default",webhook="` + h.ID + `"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	var ds wire.WebhookDeliveryList
	call(t, srv, "GET", "/v1/repos/default/webhooks/"+h.ID+"/deliveries", nil, &ds)
	if len(ds.Deliveries) == 0 || !ds.Deliveries[0].OK || ds.Deliveries[0].Revision != 10 {
		t.Errorf("deliveries: %+v", ds.Deliveries)
	}

	// No file under the data directory holds the secret in plaintext.
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(restartSecret)) {
			t.Errorf("%s holds the webhook secret in plaintext", path)
		}
		return nil
	})
}
