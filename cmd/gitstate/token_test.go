package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/server"
)

// run executes the CLI in-process and returns its stdout.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestTokenCommandsFindTheLocalToken: on the server's machine the token
// commands need no token: they find admin.token through --data,
// $GITSTATE_DATA, or ./gitstate-data.
func TestTokenCommandsFindTheLocalToken(t *testing.T) {
	t.Setenv("GITSTATE_TOKEN", "")
	t.Setenv("GITSTATE_DATA", "")
	wd := t.TempDir()
	t.Chdir(wd)
	cfg := server.DefaultConfig()
	cfg.DataDir = filepath.Join(wd, "gitstate-data")
	cfg.Listen = "127.0.0.1:0"
	cfg.Banner = io.Discard
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	url := srv.URL()

	// In the directory the server was started in.
	out, err := run(t, "token", "create", "ci", "--scope", "read,write", "--prefix", "apps/", "--server", url)
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	ciToken := strings.TrimSpace(out)
	if !strings.HasPrefix(ciToken, "gst_") || strings.Contains(ciToken, "\n") {
		t.Fatalf("token create printed %q, want the token alone", out)
	}

	// Elsewhere, with --data or $GITSTATE_DATA.
	t.Chdir(t.TempDir())
	if _, err := run(t, "token", "ls", "--server", url); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Errorf("ls without a token from another directory: %v", err)
	}
	out, err = run(t, "token", "ls", "-o", "json", "--server", url, "--data", cfg.DataDir)
	if err != nil {
		t.Fatalf("token ls --data: %v", err)
	}
	var list wire.TokenList
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Tokens) != 2 {
		t.Fatalf("token ls: %q %v", out, err)
	}
	var ci wire.Token
	for _, tk := range list.Tokens {
		if tk.Name == "ci" {
			ci = tk
		}
	}
	if ci.ID == "" || strings.Join(ci.Scopes, ",") != "read,write" || ci.Prefixes[0] != "apps/" || strings.Contains(out, ciToken) {
		t.Errorf("token ls shows %+v", list)
	}

	t.Setenv("GITSTATE_DATA", cfg.DataDir)
	if out, err := run(t, "token", "revoke", ci.ID, "--server", url); err != nil || !strings.Contains(out, ci.ID) {
		t.Fatalf("token revoke: %q %v", out, err)
	}
	out, _ = run(t, "token", "ls", "--server", url)
	if !strings.Contains(out, "revoked") {
		t.Errorf("ls after revoke: %s", out)
	}

	// A token without the admin scope is told what it lacks.
	t.Setenv("GITSTATE_DATA", "")
	t.Setenv("GITSTATE_TOKEN", ciToken)
	if _, err := run(t, "token", "ls", "--server", url); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("ls with a revoked token: %v", err)
	}
}

func TestClientTokenOrder(t *testing.T) {
	data := t.TempDir()
	os.WriteFile(filepath.Join(data, "admin.token"), []byte("local-token\n"), 0o600)
	t.Setenv("GITSTATE_DATA", "")
	t.Setenv("GITSTATE_TOKEN", "")
	t.Chdir(t.TempDir())
	o := &rootOptions{data: data}
	cmd := newRootCmd()
	for _, c := range []struct {
		server, flag, env, want string
	}{
		{"http://127.0.0.1:7070", "flag", "env", "flag"},
		{"http://127.0.0.1:7070", "", "env", "env"},
		{"http://127.0.0.1:7070", "", "", "local-token"},
		{"https://localhost:7070", "", "", "local-token"},
		{"http://[::1]:7070", "", "", "local-token"},
		// The local administrator token never goes to another machine
		// unless the data directory was named.
		{"https://gitstate.example.com", "", "", ""},
		{"http://10.1.2.3:7070", "", "", ""},
	} {
		t.Setenv("GITSTATE_TOKEN", c.env)
		got, err := o.clientToken(cmd, c.server, c.flag)
		if err != nil || got != c.want {
			t.Errorf("clientToken(%s, flag %q, env %q) = %q, %v; want %q", c.server, c.flag, c.env, got, err, c.want)
		}
	}
	t.Setenv("GITSTATE_TOKEN", "")
	t.Setenv("GITSTATE_DATA", data)
	if got, _ := o.clientToken(cmd, "https://gitstate.example.com", ""); got != "local-token" {
		t.Errorf("with $GITSTATE_DATA named: %q", got)
	}
}

// TestTokenCreateRefusesShortLifetimes: a lifetime under 1s would print a
// token that is already expired; the server refuses it with 400 and the CLI
// says so, printing no token.
func TestTokenCreateRefusesShortLifetimes(t *testing.T) {
	url := startSecretServer(t)
	for _, d := range []string{"1ms", "999ms"} {
		out, errOut, err := runSecret(t, "", "token", "create", "--server="+url, "brief", "--expires-in", d)
		if err == nil || exitCode(err) != exitError || !strings.Contains(err.Error(), "expires_in must be a Go duration from 1s") || strings.Contains(out, "gst_") {
			t.Errorf("--expires-in %s: %v (exit %d), stdout %q %q: want the server's 400 and no token", d, err, exitCode(err), out, errOut)
		}
	}
	if out, _ := mustRun(t, "", "token", "create", "--server="+url, "ok", "--expires-in", "1s"); !strings.Contains(out, "gst_") {
		t.Errorf("--expires-in 1s: %q, want a token", out)
	}
}
