package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitstate/gitstate/server"
)

func TestRepoImportCommand(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	src := filepath.Join(t.TempDir(), "src")
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=T", "-c", "user.email=t@x"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if out, err := exec.Command("git", "init", "-q", "-b", "trunk", src).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for i, f := range []string{"a", "b", "c"} {
		run(src, "commit", "-q", "--allow-empty", "-m", f)
		_ = i
	}
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminToken = "tok"
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	var stdout, stderr bytes.Buffer
	root := newRootCmd()
	root.SetArgs([]string{"repo", "import", "imported", src, "--server", "http://" + srv.Addr(), "--token", "tok"})
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("import: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "imported imported from "+src+" (branch trunk): 3 revisions") {
		t.Errorf("output:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	root = newRootCmd()
	root.SetArgs([]string{"repo", "import", "again", filepath.Join(t.TempDir(), "none"), "--server", "http://" + srv.Addr(), "--token", "tok"})
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "import_failed: ") {
		t.Errorf("import of nothing: %v", err)
	}
}
