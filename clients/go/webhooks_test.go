package client_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// TestWebhooks creates a webhook to a receiver on loopback, sees a signed
// delivery arrive and be recorded, and deletes the webhook.
func TestWebhooks(t *testing.T) {
	ctx := context.Background()
	kv := newClient(t).Repo("default")
	const secret = "a-secret-of-at-least-16-bytes"
	got := make(chan wire.WatchEvent, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if r.Header.Get(wire.HeaderSignature) != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("bad signature %q", r.Header.Get(wire.HeaderSignature))
		}
		var ev wire.WatchEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("delivery body %q: %v", body, err)
		}
		got <- ev
	}))
	defer recv.Close()

	h, err := kv.CreateWebhook(ctx, &wire.CreateWebhookRequest{URL: recv.URL + "/hook", Prefix: "apps/", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	if h.ID == "" || h.URL != recv.URL+"/hook" || h.Prefix != "apps/" || len(h.Events) != 1 || h.Events[0] != "revision" {
		t.Errorf("CreateWebhook = %+v", h)
	}
	if _, err := kv.CreateWebhook(ctx, &wire.CreateWebhookRequest{URL: recv.URL, Secret: "short"}); !errors.Is(err, gitstate.ErrInvalidRequest) {
		t.Errorf("short secret: %v", err)
	}
	if _, err := kv.Put(ctx, "apps/web", []byte("1"), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.Revision != 1 || len(ev.Changes) != 1 || ev.Changes[0].Key != "apps/web" {
			t.Errorf("delivered %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}

	// The delivery is recorded once the receiver answered.
	var ds *wire.WebhookDeliveryList
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ds, err = kv.WebhookDeliveries(ctx, h.ID); err != nil {
			t.Fatal(err)
		}
		if len(ds.Deliveries) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(ds.Deliveries) != 1 || !ds.Deliveries[0].OK || ds.Deliveries[0].StatusCode != 200 || ds.Deliveries[0].Revision != 1 {
		t.Errorf("deliveries = %+v", ds.Deliveries)
	}
	list, err := kv.ListWebhooks(ctx)
	if err != nil || len(list.Webhooks) != 1 || list.Webhooks[0].ID != h.ID {
		t.Errorf("ListWebhooks = %+v, %v", list, err)
	}
	one, err := kv.GetWebhook(ctx, h.ID)
	if err != nil || one.Position != 1 || one.Pending != 0 || one.LastDelivery == nil {
		t.Errorf("GetWebhook = %+v, %v", one, err)
	}
	if del, err := kv.DeleteWebhook(ctx, h.ID); err != nil || del.ID != h.ID {
		t.Errorf("DeleteWebhook = %+v, %v", del, err)
	}
	if _, err := kv.GetWebhook(ctx, h.ID); !errors.Is(err, &gitstate.Error{Code: "webhook_not_found"}) {
		t.Errorf("GetWebhook after delete: %v", err)
	}
	if _, err := kv.GetWebhook(ctx, ""); !errors.Is(err, gitstate.ErrInvalidRequest) {
		t.Errorf("GetWebhook(\"\"): %v", err)
	}
}

// TestReconcilers reports status for two reconcilers and reads their lag
// and a revision's rollout back.
func TestReconcilers(t *testing.T) {
	ctx := context.Background()
	kv := newClient(t).Repo("default")
	for _, k := range []string{"a", "b", "c"} {
		if _, err := kv.Put(ctx, k, []byte("1"), nil); err != nil {
			t.Fatal(err)
		}
	}
	report := func(name, rev, state string) {
		t.Helper()
		if err := kv.ReportStatus(ctx, name, wire.ReconcilerStatusRequest{Revision: wire.Rev(rev), State: state, Interval: wire.Duration(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	report("eu", "3", client.StateApplied)
	report("us", "1", client.StateApplied)
	report("us", "2", client.StateFailed)

	list, err := kv.Reconcilers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]wire.Reconciler{}
	for _, r := range list.Reconcilers {
		byName[r.Name] = r
	}
	if list.Revision != 3 || len(byName) != 2 {
		t.Fatalf("Reconcilers = %+v", list)
	}
	if eu := byName["eu"]; eu.AppliedRevision != 3 || eu.LagRevisions != 0 || eu.State != client.StateApplied || eu.Stale {
		t.Errorf("eu = %+v", eu)
	}
	if us := byName["us"]; us.AppliedRevision != 1 || us.LagRevisions != 2 || us.State != client.StateFailed || us.Revision != 2 {
		t.Errorf("us = %+v", us)
	}

	ro, err := kv.Rollout(ctx, "2")
	if err != nil {
		t.Fatal(err)
	}
	if ro.Revision != 2 || ro.Head != 3 || ro.Converged || len(ro.Applied) != 1 || ro.Applied[0].Name != "eu" || len(ro.Pending) != 1 || ro.Pending[0].Name != "us" {
		t.Errorf("Rollout(2) = %+v", ro)
	}
	if _, err := kv.Rollout(ctx, "9"); !errors.Is(err, gitstate.ErrRevisionNotFound) {
		t.Errorf("Rollout(9): %v", err)
	}
	if _, err := kv.Rollout(ctx, ""); !errors.Is(err, gitstate.ErrInvalidRevision) {
		t.Errorf("Rollout(\"\"): %v", err)
	}

	// A retired reconciler no longer holds a rollout back.
	if err := kv.DeleteReconciler(ctx, "us"); err != nil {
		t.Fatal(err)
	}
	if ro, err := kv.Rollout(ctx, "2"); err != nil || !ro.Converged || len(ro.Pending) != 0 {
		t.Errorf("Rollout(2) after deleting us = %+v, %v", ro, err)
	}
	if err := kv.DeleteReconciler(ctx, ""); !errors.Is(err, gitstate.ErrInvalidRequest) {
		t.Errorf("DeleteReconciler(\"\"): %v", err)
	}
}
