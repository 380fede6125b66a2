package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gitstate/gitstate/server"
)

// TestShutdownWaitsForRequestsInFlight: a shutdown lets a slow request in
// flight finish within --shutdown-timeout and then returns nil; past the
// timeout it cuts it, logs how many it cut and says so in its error.
func TestShutdownWaitsForRequestsInFlight(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		finish  bool // the client sends the rest of its body
		wantErr string
	}{
		{name: "finishes", timeout: 10 * time.Second, finish: true},
		{name: "cut", timeout: 300 * time.Millisecond, wantErr: "shutdown timed out after 300ms with 1 request in flight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, func(c *server.Config) { c.ShutdownTimeout = tt.timeout })
			// An idle kept-alive connection and a closed one are not
			// requests in flight.
			ts.mustDo(t, http.StatusOK, http.MethodGet, "/healthz", "", nil)
			if c, err := net.Dial("tcp", ts.Addr()); err == nil {
				c.Close()
			}
			conn, err := net.Dial("tcp", ts.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// A PUT whose body comes slowly: the handler waits for it.
			fmt.Fprintf(conn, "PUT /v1/repos/default/kv/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 6\r\n\r\nabc", ts.admin)
			time.Sleep(100 * time.Millisecond) // the request is read and in the handler
			done := make(chan error, 1)
			go func() { done <- ts.Shutdown(context.Background()) }()
			time.Sleep(100 * time.Millisecond) // the shutdown has begun
			if tt.finish {
				fmt.Fprint(conn, "def")
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatalf("the request in flight was cut: %v", err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("the request in flight: status %d", resp.StatusCode)
				}
			}
			var serr error
			select {
			case serr = <-done:
			case <-time.After(tt.timeout + 10*time.Second):
				t.Fatal("the shutdown did not return")
			}
			if tt.wantErr == "" {
				if serr != nil {
					t.Errorf("shutdown: %v, want nil", serr)
				}
				return
			}
			if serr == nil || serr.Error() != tt.wantErr {
				t.Errorf("shutdown: %v, want %q", serr, tt.wantErr)
			}
			if logs := ts.logs.String(); !strings.Contains(logs, "shutdown timed out") || !strings.Contains(logs, "connections=1") {
				t.Errorf("the logs do not say what was cut:\n%s", logs)
			}
			// The connection was cut, not left open.
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
				t.Errorf("read after the cut: %v, want the connection closed", err)
			}
		})
	}
}
