package client_test

import (
	"context"
	"io"
	"testing"
	"time"

	client "github.com/gitstate/gitstate/clients/go"
	"github.com/gitstate/gitstate/server"
)

// testToken is the administrator token of test servers started without
// one of their own.
const testToken = "gitstate-test-admin-token"

// startServer starts the real gitstate server on a loopback port over a
// fresh data directory, stopped when the test ends, and returns its URL.
func startServer(t testing.TB, adminToken string) string {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	if adminToken == "" {
		adminToken = testToken
	}
	cfg.AdminToken = adminToken
	cfg.Banner = io.Discard
	cfg.ShutdownTimeout = 10 * time.Second
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return "http://" + srv.Addr()
}

// newClient starts a server and returns a client of it.
func newClient(t testing.TB, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(startServer(t, ""), append([]client.Option{client.WithToken(testToken)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
