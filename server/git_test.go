package server_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
	"github.com/gitstate/gitstate/server"
)

// TestGitWithTokens clones and pushes with the git CLI and real tokens
// (scoped, as the basic password), under the failed-authentication limit:
// the git client's first, credential-less request of each command is not
// a failed attempt.
func TestGitWithTokens(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	ts := startServer(t, func(c *server.Config) {
		c.Limits.FailRate = 0.001
		c.Limits.FailBurst = 3
	})
	ts.put(t, ts.admin, "apps/web/replicas", "1")
	writer := ts.createToken(t, wire.CreateTokenRequest{Name: "ci", Scopes: []string{"read", "write"}}).Secret
	reader := ts.createToken(t, wire.CreateTokenRequest{Name: "viewer", Scopes: []string{"read"}}).Secret
	home := t.TempDir()
	git := func(dir string, args ...string) (string, error) {
		full := append([]string{"-c", "user.name=CI", "-c", "user.email=ci@example.com"}, args...)
		if dir != "" {
			full = append([]string{"-C", dir}, full...)
		}
		cmd := exec.Command("git", full...)
		cmd.Env = append(os.Environ(), "HOME="+home, "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	remote := func(tok string) string {
		return strings.Replace(ts.URL(), "://", "://ci:"+tok+"@", 1) + "/git/default.git"
	}
	// More git commands than the failed-authentication burst allows.
	for range 5 {
		if out, err := git("", "ls-remote", remote(reader)); err != nil || !strings.Contains(out, "refs/heads/main") {
			t.Fatalf("ls-remote: %v\n%s", err, out)
		}
	}
	dir := filepath.Join(t.TempDir(), "clone")
	if out, err := git("", "clone", "-q", remote(writer), dir); err != nil {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "apps/web/replicas"), []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := git(dir, "commit", "-qam", "scale"); err != nil {
		t.Fatalf("commit: %v\n%s", err, out)
	}
	if out, err := git(dir, "push", remote(reader), "main"); err == nil || !strings.Contains(out, "scope") {
		t.Errorf("push with a read token: %v\n%s", err, out)
	}
	// A second commit: the push brings two revisions, and a watcher sees
	// both.
	if err := os.WriteFile(filepath.Join(dir, "apps/web/image"), []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := git(dir, "add", "."); err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	if out, err := git(dir, "commit", "-qm", "image"); err != nil {
		t.Fatalf("commit: %v\n%s", err, out)
	}
	c, err := client.New(ts.URL(), client.WithToken(reader))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watcher, err := c.Repo("default").Watch(ctx, &client.WatchOptions{From: "1"})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	if out, err := git(dir, "push", "-q", "origin", "main"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	var seen []string
	for len(seen) < 2 {
		ev, err := watcher.Next()
		if err != nil {
			t.Fatalf("watch: %v (seen %v)", err, seen)
		}
		if ev.Revision != nil {
			seen = append(seen, fmt.Sprintf("%d:%s", ev.Revision.Revision, ev.Revision.Message))
		}
	}
	if seen[0] != "2:scale\n" || seen[1] != "3:image\n" {
		t.Errorf("watch events: %q", seen)
	}
	_, b := ts.do(t, http.MethodGet, "/v1/repos/default/kv/apps/web/replicas", ts.admin, nil)
	if string(b) != "2" {
		t.Errorf("after the push: %q", b)
	}
	// The push is in the audit log as ci's, with its revision.
	_, b = ts.do(t, http.MethodGet, "/v1/audit?action=git.push&limit=10", ts.admin, nil)
	if !strings.Contains(string(b), `"revision":3`) || !strings.Contains(string(b), "ci") {
		t.Errorf("audit: %s", b)
	}
	// A wrong token is still a failed attempt.
	for range 4 {
		git("", "ls-remote", remote("gst_AAAAAAAAAAAA_"+strings.Repeat("x", 43)))
	}
	if out, err := git("", "ls-remote", remote(reader)); err == nil || !strings.Contains(out, "429") {
		t.Errorf("after failed attempts: %v\n%s", err, out)
	}
}
