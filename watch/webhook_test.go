package watch_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/watch"
)

// testSecret is the webhooks' secret in these tests; no file of the data
// directory may hold it.
const testSecret = "whsec-9f3b1c7e-plain-text-must-not-leak"

// fastRetries retries quickly, with attempts that time out after 300ms.
var fastRetries = watch.WebhookOptions{AttemptTimeout: 300 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}

// hookEnv is a store with a hub and webhooks in a temporary directory that
// can be closed and opened again (a restart).
type hookEnv struct {
	t     *testing.T
	dir   string
	opts  watch.WebhookOptions
	st    *storage.Store
	hub   *watch.Hub
	hooks *watch.Webhooks
}

func newHookEnv(t *testing.T, opts watch.WebhookOptions) *hookEnv {
	e := &hookEnv{t: t, dir: t.TempDir(), opts: opts}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *hookEnv) open() {
	e.t.Helper()
	st, err := storage.Open(context.Background(), e.dir, storage.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
	e.hub = watch.NewHub(st, watch.Options{})
	opts := e.opts
	opts.Dir = filepath.Join(e.dir, "webhooks")
	if e.hooks, err = watch.NewWebhooks(st, e.hub, opts); err != nil {
		e.t.Fatal(err)
	}
	e.hooks.Start()
}

// close stops as the server does: streams, then webhooks, then the store.
func (e *hookEnv) close() {
	if e.st == nil {
		return
	}
	e.hub.Close()
	if err := e.hooks.Close(); err != nil {
		e.t.Errorf("close webhooks: %v", err)
	}
	if err := e.st.Close(); err != nil {
		e.t.Errorf("close store: %v", err)
	}
	e.st = nil
}

func (e *hookEnv) repo() *storage.Repo {
	r, err := e.st.Repo(storage.DefaultRepo)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *hookEnv) put(key, value string) int64 {
	e.t.Helper()
	res, err := e.repo().WriteOne(context.Background(), &storage.Batch{Ops: []storage.Op{{Kind: storage.OpPut, Key: key, Value: []byte(value)}}})
	if err != nil {
		e.t.Fatalf("put %s: %v", key, err)
	}
	return res.Revision
}

func (e *hookEnv) create(url, prefix string) *watch.WebhookInfo {
	e.t.Helper()
	h, err := e.hooks.Create(context.Background(), storage.DefaultRepo, watch.WebhookConfig{URL: url, Prefix: prefix, Secret: []byte(testSecret), From: -1})
	if err != nil {
		e.t.Fatalf("create webhook: %v", err)
	}
	return h
}

// received is one request a receiver got.
type received struct {
	delivery string
	revision int64
	event    wire.WatchEvent
	body     string
}

// receiver is a webhook endpoint on loopback. It checks every request's
// headers and signature, and answers as script says for the n-th attempt
// (from 1) at a revision.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	script func(rev int64, n int) action

	mu       sync.Mutex
	all      []received // every request, in arrival order
	accepted []received // those answered 2xx
	attempts map[int64]int
	idOf     map[int64]string
	changed  chan struct{}
}

type action int

const (
	accept    action = iota
	fail             // 500
	stall            // sleep past the attempt timeout, then 200
	hangUp           // close the connection without an answer
	refuseAll        // 503, whatever the revision
)

func newReceiver(t *testing.T, script func(rev int64, n int) action) *receiver {
	rc := &receiver{t: t, script: script, attempts: map[int64]int{}, idOf: map[int64]string{}, changed: make(chan struct{}, 1)}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	mac := hmac.New(sha256.New, []byte(testSecret))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if got := r.Header.Get("X-Gitstate-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
		rc.t.Errorf("bad signature %q, want %q", got, want)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Gitstate-Event") != "revision" {
		rc.t.Errorf("request %s, Content-Type %q, event %q", r.Method, r.Header.Get("Content-Type"), r.Header.Get("X-Gitstate-Event"))
	}
	var ev wire.WatchEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		rc.t.Errorf("body %q: %v", body, err)
	}
	rev, _ := strconv.ParseInt(r.Header.Get("X-Gitstate-Revision"), 10, 64)
	id := r.Header.Get("X-Gitstate-Delivery")
	if rev != ev.Revision || id == "" {
		rc.t.Errorf("header revision %d, delivery %q; body revision %d", rev, id, ev.Revision)
	}
	rc.mu.Lock()
	rc.attempts[rev]++
	n := rc.attempts[rev]
	if prev, ok := rc.idOf[rev]; ok && prev != id {
		rc.t.Errorf("revision %d: delivery id %q, earlier %q: retries must keep the id", rev, id, prev)
	}
	rc.idOf[rev] = id
	got := received{delivery: id, revision: rev, event: ev, body: string(body)}
	rc.all = append(rc.all, got)
	act := rc.script(rev, n)
	if act == accept || act == stall {
		// A stalled delivery was received: the sender gives up on it and
		// sends it again, a duplicate with the same id.
		rc.accepted = append(rc.accepted, got)
	}
	rc.mu.Unlock()
	select {
	case rc.changed <- struct{}{}:
	default:
	}
	switch act {
	case accept:
		w.WriteHeader(http.StatusNoContent)
	case fail:
		http.Error(w, "try later", http.StatusInternalServerError)
	case stall:
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
	case hangUp:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	case refuseAll:
		http.Error(w, "down", http.StatusServiceUnavailable)
	}
}

// waitFor waits until cond holds of the accepted deliveries.
func (rc *receiver) waitFor(what string, cond func(accepted []received) bool) []received {
	rc.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		rc.mu.Lock()
		acc := append([]received(nil), rc.accepted...)
		rc.mu.Unlock()
		if cond(acc) {
			return acc
		}
		select {
		case <-rc.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			rc.t.Fatalf("timed out waiting for %s; accepted %v", what, revisions(acc))
		}
	}
}

func revisions(rs []received) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.revision
	}
	return out
}

// distinct returns the revisions accepted, duplicates dropped, checking
// that a duplicate is the same delivery (id and body) and that, once a
// revision is accepted, nothing older arrives after the next one.
func distinct(t *testing.T, rs []received) []int64 {
	t.Helper()
	var out []int64
	seen := map[string]received{}
	for _, r := range rs {
		if prev, ok := seen[r.delivery]; ok {
			if prev.body != r.body {
				t.Errorf("delivery %s delivered twice with different bodies", r.delivery)
			}
			if out[len(out)-1] != r.revision {
				t.Errorf("duplicate of revision %d after revision %d: out of order", r.revision, out[len(out)-1])
			}
			continue
		}
		seen[r.delivery] = r
		out = append(out, r.revision)
	}
	return out
}

func upTo(from, to int64) []int64 {
	var out []int64
	for r := from; r <= to; r++ {
		out = append(out, r)
	}
	return out
}

func equal(a, b []int64) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func TestWebhookFailsTimesOutAndRecovers(t *testing.T) {
	e := newHookEnv(t, fastRetries)
	rc := newReceiver(t, func(rev int64, n int) action {
		switch {
		case rev == 2 && n <= 3:
			return fail
		case rev == 3 && n == 1:
			return stall
		case rev == 5 && n <= 2:
			return hangUp
		}
		return accept
	})
	h := e.create(rc.srv.URL+"/hook?team=web", "")
	if h.Position != 0 || h.Pending != 0 {
		t.Fatalf("new webhook at an empty repo: %+v", h)
	}
	const n = 8
	for i := 1; i <= n; i++ {
		e.put(fmt.Sprintf("k%d", i), "v")
	}
	acc := rc.waitFor("8 revisions", func(acc []received) bool { return len(distinct(t, acc)) == n })
	if got := distinct(t, acc); !equal(got, upTo(1, n)) {
		t.Fatalf("accepted %v, want 1..%d in order", got, n)
	}
	for _, r := range acc {
		if len(r.event.Changes) != 1 || r.event.Changes[0].Key != fmt.Sprintf("k%d", r.revision) || r.event.Commit == "" {
			t.Errorf("event of revision %d: %+v", r.revision, r.event)
		}
	}
	rc.mu.Lock()
	if rc.attempts[2] != 4 || rc.attempts[3] != 2 || rc.attempts[5] != 3 || rc.attempts[4] != 1 {
		t.Errorf("attempts per revision: %v", rc.attempts)
	}
	rc.mu.Unlock()

	// The deliveries say what happened, newest first.
	waitPosition(t, e, h.ID, n)
	ds, err := e.hooks.Deliveries(storage.DefaultRepo, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	byRev := map[int64][]watch.Delivery{}
	for i := len(ds) - 1; i >= 0; i-- {
		byRev[ds[i].Revision] = append(byRev[ds[i].Revision], ds[i])
	}
	if d := byRev[2]; len(d) != 4 || d[0].StatusCode != 500 || d[0].OK() || !d[3].OK() || d[3].Attempt != 4 || d[0].ID != d[3].ID || d[0].ID != h.ID+"-2" {
		t.Errorf("deliveries of revision 2: %+v", d)
	}
	if d := byRev[3]; len(d) != 2 || d[0].StatusCode != 0 || !strings.Contains(d[0].Err, "no answer within 300ms") || d[0].Duration < 250*time.Millisecond {
		t.Errorf("deliveries of revision 3 (a timeout): %+v", d)
	}
	if d := byRev[5]; len(d) != 3 || d[0].StatusCode != 0 || d[0].Err == "" || strings.Contains(d[0].Err, "team=web") {
		t.Errorf("deliveries of revision 5 (hung up; the error must not carry the URL): %+v", d)
	}
	info, _ := e.hooks.Get(storage.DefaultRepo, h.ID)
	if info.Position != n || info.Pending != 0 || info.Failures != 0 || info.LastDelivery == nil || info.LastDelivery.Revision != n {
		t.Errorf("webhook after catching up: %+v", info)
	}
}

func waitPosition(t *testing.T, e *hookEnv, id string, pos int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := e.hooks.Get(storage.DefaultRepo, id)
		if err != nil {
			t.Fatal(err)
		}
		if info.Position == pos {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook position %d, want %d", info.Position, pos)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWebhookRestartSkipsNothing(t *testing.T) {
	e := newHookEnv(t, fastRetries)
	var down sync.Mutex
	isDown := false
	rc := newReceiver(t, func(rev int64, n int) action {
		down.Lock()
		defer down.Unlock()
		if isDown {
			return refuseAll
		}
		return accept
	})
	h := e.create(rc.srv.URL, "")
	for i := 1; i <= 3; i++ {
		e.put(fmt.Sprintf("a%d", i), "v")
	}
	rc.waitFor("3 revisions", func(acc []received) bool { return len(acc) == 3 })
	waitPosition(t, e, h.ID, 3)
	down.Lock()
	isDown = true
	down.Unlock()
	for i := 4; i <= 6; i++ {
		e.put(fmt.Sprintf("b%d", i), "v")
	}
	// Revision 4 is being retried when the process stops.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rc.mu.Lock()
		n := rc.attempts[4]
		rc.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revision 4 not retried")
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.close()
	e.open()
	// Revisions committed while no delivery runs are delivered too.
	e.put("c7", "v")
	e.put("c8", "v")
	down.Lock()
	isDown = false
	down.Unlock()
	acc := rc.waitFor("8 revisions", func(acc []received) bool { return len(distinct(t, acc)) == 8 })
	if got := distinct(t, acc); !equal(got, upTo(1, 8)) {
		t.Fatalf("accepted %v across a restart, want 1..8", got)
	}
	rc.mu.Lock()
	for rev := int64(1); rev <= 8; rev++ {
		if id := rc.idOf[rev]; id != h.ID+"-"+strconv.FormatInt(rev, 10) {
			t.Errorf("revision %d: delivery id %q", rev, id)
		}
	}
	rc.mu.Unlock()
	waitPosition(t, e, h.ID, 8)
}

func TestWebhookPrefixAndFrom(t *testing.T) {
	e := newHookEnv(t, fastRetries)
	rc := newReceiver(t, func(int64, int) action { return accept })
	e.put("apps/web/old", "1") // revision 1, before the webhook
	h := e.create(rc.srv.URL, "apps/web/")
	if h.Position != 1 {
		t.Fatalf("a new webhook starts at the head: %+v", h)
	}
	e.put("apps/api/x", "1") // 2: nothing under the prefix
	if _, err := e.repo().WriteOne(context.Background(), &storage.Batch{Ops: []storage.Op{
		{Kind: storage.OpPut, Key: "apps/web/a", Value: []byte("1")},
		{Kind: storage.OpPut, Key: "apps/api/y", Value: []byte("2")},
	}}); err != nil { // 3: one change under it
		t.Fatal(err)
	}
	e.put("other", "1") // 4: nothing
	acc := rc.waitFor("revision 3", func(acc []received) bool { return len(acc) >= 1 })
	waitPosition(t, e, h.ID, 4)
	rc.mu.Lock()
	all := append([]received(nil), rc.all...)
	rc.mu.Unlock()
	if len(all) != 1 || acc[0].revision != 3 || len(acc[0].event.Changes) != 1 || acc[0].event.Changes[0].Key != "apps/web/a" {
		t.Fatalf("prefix apps/web/: received %+v", all)
	}

	// "from" replays older revisions.
	rc2 := newReceiver(t, func(int64, int) action { return accept })
	h2, err := e.hooks.Create(context.Background(), storage.DefaultRepo, watch.WebhookConfig{URL: rc2.srv.URL, Secret: []byte(testSecret), From: 2})
	if err != nil {
		t.Fatal(err)
	}
	acc = rc2.waitFor("revisions 3 and 4", func(acc []received) bool { return len(acc) == 2 })
	if !equal(revisions(acc), []int64{3, 4}) || h2.Position != 2 || h2.Pending != 2 {
		t.Errorf("from 2: received %v; created %+v", revisions(acc), h2)
	}
}

func TestWebhookSecretAtRest(t *testing.T) {
	e := newHookEnv(t, fastRetries)
	rc := newReceiver(t, func(int64, int) action { return accept })
	h := e.create(rc.srv.URL, "")
	e.put("k", "v")
	rc.waitFor("revision 1", func(acc []received) bool { return len(acc) == 1 })
	waitPosition(t, e, h.ID, 1)
	e.close()
	// Nothing under the data directory (repos, index, webhook files) holds
	// the secret in plaintext.
	var files int
	err := filepath.WalkDir(e.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(b, []byte(testSecret)) {
			t.Errorf("%s holds the webhook secret in plaintext", path)
		}
		return nil
	})
	if err != nil || files < 5 {
		t.Fatalf("walked %d files: %v", files, err)
	}
	key := filepath.Join(e.dir, "webhooks", "key")
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Errorf("key file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(filepath.Join(e.dir, "webhooks", "default.json"))
	if !bytes.Contains(b, []byte(`"sealed_secret": "gcm1:`)) || !bytes.Contains(b, []byte(`"position": 1`)) {
		t.Errorf("webhook file:\n%s", b)
	}
	// The secret opens again after a restart (deliveries stay signed).
	e.open()
	e.put("k2", "v")
	rc.waitFor("revision 2", func(acc []received) bool { return len(acc) == 2 })
	e.close()

	// Without its key, sealed secrets are not replaced by a new key's.
	os.Remove(key)
	st, err := storage.Open(context.Background(), e.dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hub := watch.NewHub(st, watch.Options{})
	defer hub.Close()
	if _, err := watch.NewWebhooks(st, hub, watch.WebhookOptions{Dir: filepath.Join(e.dir, "webhooks")}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("open without the key: %v", err)
	}
	if _, err := os.Stat(key); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a new key was made: %v", err)
	}
}

func TestWebhookValidation(t *testing.T) {
	e := newHookEnv(t, fastRetries)
	e.put("k", "v")
	secret := []byte(testSecret)
	for name, cfg := range map[string]watch.WebhookConfig{
		"no url":       {Secret: secret, From: -1},
		"ftp":          {URL: "ftp://example.com/x", Secret: secret, From: -1},
		"relative":     {URL: "/hook", Secret: secret, From: -1},
		"no host":      {URL: "http:///hook", Secret: secret, From: -1},
		"credentials":  {URL: "https://user:pw@example.com/", Secret: secret, From: -1},
		"short secret": {URL: "https://example.com/", Secret: []byte("short"), From: -1},
		"event":        {URL: "https://example.com/", Secret: secret, Events: []string{"push"}, From: -1},
		"prefix":       {URL: "https://example.com/", Secret: secret, Prefix: "../x", From: -1},
	} {
		if _, err := e.hooks.Create(context.Background(), storage.DefaultRepo, cfg); gitstate.KindOf(err) != gitstate.KindInvalid {
			t.Errorf("%s: %v, want an invalid-request error", name, err)
		}
	}
	_, err := e.hooks.Create(context.Background(), storage.DefaultRepo, watch.WebhookConfig{URL: "https://example.com/", Secret: secret, From: 5})
	if !errors.Is(err, gitstate.ErrRevisionNotFound) {
		t.Errorf("from after the head: %v", err)
	}
	_, err = e.hooks.Create(context.Background(), "nope", watch.WebhookConfig{URL: "https://example.com/", Secret: secret, From: -1})
	if !errors.Is(err, gitstate.ErrRepoNotFound) {
		t.Errorf("unknown repo: %v", err)
	}
	h, err := e.hooks.Create(context.Background(), storage.DefaultRepo, watch.WebhookConfig{URL: "https://example.com/", Secret: secret, From: -1})
	if err != nil || len(h.Events) != 1 || h.Events[0] != watch.EventRevision {
		t.Fatalf("defaults: %+v %v", h, err)
	}
	if _, err := e.hooks.Delete(storage.DefaultRepo, h.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.hooks.Get(storage.DefaultRepo, h.ID); !errors.Is(err, watch.ErrWebhookNotFound) {
		t.Errorf("after delete: %v", err)
	}
	// A deleted webhook stays deleted after a restart.
	e.close()
	e.open()
	if hs := e.hooks.List(storage.DefaultRepo); len(hs) != 0 {
		t.Errorf("after a restart: %+v", hs)
	}
}
