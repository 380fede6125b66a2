package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/server"
	"github.com/gitstate/gitstate/server/auth"
)

// testServer is a real server on a loopback port over a temporary data
// directory, with the administrator token it made at first start.
type testServer struct {
	*server.Server
	cfg    server.Config
	admin  string
	client *http.Client
	banner *syncBuffer
	logs   *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startServer starts a server with the default configuration, changed by
// mods, on 127.0.0.1:0 and a fresh data directory (unless a mod sets one).
// It is shut down at cleanup.
func startServer(t *testing.T, mods ...func(*server.Config)) *testServer {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	ts := &testServer{banner: &syncBuffer{}, logs: &syncBuffer{}, client: &http.Client{Timeout: 30 * time.Second}}
	cfg.Banner = ts.banner
	cfg.Logger = slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, m := range mods {
		m(&cfg)
	}
	ts.cfg = cfg
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	ts.Server = srv
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	if cfg.AdminToken != "" {
		ts.admin = cfg.AdminToken
	} else if tok, err := auth.FindLocalToken(cfg.DataDir); err == nil {
		ts.admin = tok
	}
	return ts
}

// do sends a request and returns the response with its body read.
// Headers come in pairs: name, value.
func (ts *testServer) do(t *testing.T, method, path, token string, body []byte, headers ...string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL()+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}

// mustDo is do that fails the test unless the status is want.
func (ts *testServer) mustDo(t *testing.T, want int, method, path, token string, body []byte, headers ...string) []byte {
	t.Helper()
	resp, b := ts.do(t, method, path, token, body, headers...)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	return b
}

// createToken makes a token with the administrator's token.
func (ts *testServer) createToken(t *testing.T, req wire.CreateTokenRequest) wire.CreatedToken {
	t.Helper()
	b, _ := json.Marshal(req)
	var tok wire.CreatedToken
	mustJSON(t, ts.mustDo(t, http.StatusCreated, http.MethodPost, "/v1/tokens", ts.admin, b), &tok)
	if !strings.HasPrefix(tok.Secret, "gst_"+tok.ID+"_") {
		t.Fatalf("token %q does not read gst_<id>_<secret> for id %s", tok.Secret, tok.ID)
	}
	return tok
}

// put writes a key of the default repo and returns its revision.
func (ts *testServer) put(t *testing.T, token, key, value string) int64 {
	t.Helper()
	var res wire.WriteResult
	mustJSON(t, ts.mustDo(t, http.StatusOK, http.MethodPut, "/v1/repos/default/kv/"+key, token, []byte(value)), &res)
	return res.Revision
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// errorOf decodes an error body.
func errorOf(t *testing.T, b []byte) wire.Error {
	t.Helper()
	var e wire.ErrorResponse
	mustJSON(t, b, &e)
	return e.Error
}
