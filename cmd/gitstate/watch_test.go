package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
	"github.com/gitstate/gitstate/server"
)

// TestCLIWatch runs "gitstate watch" and reads the events it prints as the
// revisions come.
func TestCLIWatch(t *testing.T) {
	url := startServer(t, "")
	d := newClientDriver(t, url)
	for _, k := range []string{"apps/web/a", "apps/api/b"} {
		if _, err := d.Put("default", k, []byte("1"), client.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gitstateBinary(t), "watch", "apps/web/", "--from", "0", "-o", "json")
	cmd.Env = cliEnv(url)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cancel()
	next := watchEvents(t, out)
	if ev := next(); ev.Type != "revision" || ev.ID != "1" || ev.Revision.Changes[0].Key != "apps/web/a" {
		t.Fatalf("first event: %+v", ev)
	}
	// Revision 2 touches nothing under the prefix: a progress event.
	if ev := next(); ev.Type != "progress" || ev.ID != "2" {
		t.Fatalf("second event: %+v", ev)
	}
	if _, err := d.Put("default", "apps/web/c", []byte("2"), client.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Type != "revision" || ev.ID != "3" || ev.Revision.Changes[0].Key != "apps/web/c" {
		t.Fatalf("live event: %+v", ev)
	}
}

// TestCLIWatchAcrossRestart shuts the server down under a running "gitstate
// watch" and starts it again on the same address and data: the watch
// reconnects from the close event's resume id, says so on stderr, and
// prints the next revision once, without replaying the ones it printed.
func TestCLIWatchAcrossRestart(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminToken = testToken
	cfg.Banner = io.Discard
	cfg.ShutdownTimeout = 10 * time.Second
	start := func() *server.Server {
		t.Helper()
		srv, err := server.Start(context.Background(), cfg)
		if err != nil {
			t.Fatalf("start server: %v", err)
		}
		return srv
	}
	srv := start()
	cfg.Listen = srv.Addr() // the restart listens where the watch reconnects
	url := "http://" + srv.Addr()
	d := newClientDriver(t, url)
	if _, err := d.Put("default", "apps/web/a", []byte("1"), client.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gitstateBinary(t), "watch", "apps/web/", "--from", "0", "-o", "json")
	cmd.Env = cliEnv(url)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stderr := make(chan string, 16)
	go func() {
		s := bufio.NewScanner(errPipe)
		for s.Scan() {
			stderr <- s.Text()
		}
		close(stderr)
	}()
	next := watchEvents(t, out)
	if ev := next(); ev.Type != "revision" || ev.ID != "1" {
		t.Fatalf("first event: %+v", ev)
	}

	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Type != "close" || ev.Close.Resume != "1" {
		t.Fatalf("on shutdown: %+v, want a close event resuming from 1", ev)
	}
	select {
	case line := <-stderr:
		if !strings.Contains(line, "server shutting down") || !strings.Contains(line, "reconnecting from 1") {
			t.Errorf("stderr: %q, want a line saying it reconnects from 1", line)
		}
	case <-ctx.Done():
		t.Fatal("watch said nothing on stderr after the shutdown")
	}

	srv = start()
	defer srv.Shutdown(context.Background())
	if _, err := d.Put("default", "apps/web/b", []byte("2"), client.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Type != "revision" || ev.ID != "2" || ev.Revision.Changes[0].Key != "apps/web/b" {
		t.Fatalf("after the restart: %+v, want revision 2", ev)
	}
	cancel()
	cmd.Wait()
}

// TestCLIWatchClose serves close events to "gitstate watch" and checks what
// each does: the server's own reasons are reconnected from the resume id;
// any other (a revoked token) ends the command with exit status 1, the
// reason, and the command that resumes.
func TestCLIWatchClose(t *testing.T) {
	var froms []string
	closes := []string{
		`{"reason":"server shutting down; resume from the last id","resume":"5"}`,
		`{"reason":"token revoked","resume":"21"}`,
	}
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/repos/default/watch" || len(froms) == len(closes) {
			http.NotFound(w, r)
			return
		}
		froms = append(froms, r.URL.Query().Get("from"))
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: close\ndata: %s\n\n", closes[len(froms)-1])
	}))
	defer fake.Close()
	t.Setenv("GITSTATE_TOKEN", testToken)
	t.Setenv("GITSTATE_TXN", "")

	out, errOut, err := runSecret(t, "", "watch", "--server="+fake.URL, "apps/", "--from", "0")
	if exitCode(err) != exitError || err == nil || !strings.Contains(err.Error(), "token revoked") ||
		!strings.Contains(err.Error(), "resume with: gitstate watch apps/ --from 21") {
		t.Errorf("after a token revoked: %v (exit %d), want exit 1, the reason and the resume command", err, exitCode(err))
	}
	if want := []string{"0", "5"}; !slices.Equal(froms, want) {
		t.Errorf("watched from %q, want %q: reconnected from the resume id once, not after the token's close", froms, want)
	}
	if strings.Count(errOut, "reconnecting from 5") != 1 {
		t.Errorf("stderr: %q, want one reconnect line", errOut)
	}
	if !strings.Contains(out, "# closed: token revoked") {
		t.Errorf("stdout: %q", out)
	}
}

// TestCLIWatchFromNowResumesAtItsStart: a watch started from now whose
// stream drops before its first event reconnects from the revision the
// server said the stream started after (X-Gitstate-Watch-From), not from
// a later now that would skip the revisions committed in between.
func TestCLIWatchFromNowResumesAtItsStart(t *testing.T) {
	var froms []string
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/repos/default/watch" || len(froms) == 2 {
			http.NotFound(w, r)
			return
		}
		froms = append(froms, r.URL.Query().Get("from"))
		w.Header().Set("Content-Type", "text/event-stream")
		if len(froms) == 1 {
			// The stream starts after 7 and drops with no event.
			w.Header().Set("X-Gitstate-Watch-From", "7")
			w.WriteHeader(http.StatusOK)
			return
		}
		fmt.Fprint(w, "event: close\ndata: {\"reason\":\"token revoked\",\"resume\":\"7\"}\n\n")
	}))
	defer fake.Close()
	t.Setenv("GITSTATE_TOKEN", testToken)
	t.Setenv("GITSTATE_TXN", "")

	_, errOut, err := runSecret(t, "", "watch", "--server="+fake.URL)
	if exitCode(err) != exitError {
		t.Fatalf("watch: %v (exit %d), want the token's close to end it with exit 1", err, exitCode(err))
	}
	if want := []string{"", "7"}; !slices.Equal(froms, want) {
		t.Errorf("watched from %q, want %q", froms, want)
	}
	if !strings.Contains(errOut, "reconnecting from 7") {
		t.Errorf("stderr: %q, want it to say it reconnects from 7", errOut)
	}
}

func TestCloseAction(t *testing.T) {
	for _, tc := range []struct {
		reason   string
		onBranch bool
		want     int
		retry    bool
	}{
		{"server shutting down; resume from the last id", false, closeReconnect, true},
		{"server error; resume from the last id", true, closeReconnect, true},
		{"server shutting down; resume from the last id", false, closeReconnect, false}, // a server without retry
		{"going away", false, closeReconnect, true},                                     // retry is what counts
		{"going away", false, closeFail, false},
		{"token revoked", false, closeFail, false},
		{"token expired", true, closeFail, false},
		{"token no longer valid", false, closeFail, false},
		{"no such transaction", true, closeFail, false},
		{"transaction committed", true, closeEnd, false},
		{"transaction aborted", true, closeEnd, false},
		{"transaction committed", false, closeFail, false},
		{"something new", false, closeFail, false},
	} {
		if got := closeAction(&wire.WatchClose{Reason: tc.reason, Retry: tc.retry}, tc.onBranch); got != tc.want {
			t.Errorf("closeAction(%q, retry %v, %v) = %d, want %d", tc.reason, tc.retry, tc.onBranch, got, tc.want)
		}
	}
}

// watchEvents returns a function giving the next event that `gitstate
// watch -o json` printed on out; it fails the test when the output ends
// or a line is not an event.
func watchEvents(t *testing.T, out io.Reader) func() watchEventOutput {
	lines := bufio.NewScanner(out)
	return func() watchEventOutput {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("watch ended: %v", lines.Err())
		}
		var ev watchEventOutput
		if err := json.Unmarshal(lines.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", lines.Text(), err)
		}
		return ev
	}
}
