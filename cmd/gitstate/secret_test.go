package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gitstate/gitstate/api/wire"
)

// startSecretServer runs a server on a loopback port for the CLI, run in
// process, to talk to.
func startSecretServer(t *testing.T) string {
	t.Helper()
	url := startServer(t, "")
	t.Setenv("GITSTATE_TOKEN", testToken)
	t.Setenv("GITSTATE_TXN", "")
	return url
}

// run runs the CLI with stdin and returns its stdout and stderr.
func runSecret(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func mustRun(t *testing.T, stdin string, args ...string) (string, string) {
	t.Helper()
	out, errOut, err := runSecret(t, stdin, args...)
	if err != nil {
		t.Fatalf("gitstate %v: %v\n%s", args, err, errOut)
	}
	return out, errOut
}

func TestSecretCLI(t *testing.T) {
	srv := startSecretServer(t)
	s := "--server=" + srv

	// From stdin, byte for byte.
	out, errOut := mustRun(t, "s3cret\n", "secret", "put", s, "apps/web/db")
	if !strings.Contains(out, "wrote apps/web/db: revision 1") || errOut != "" {
		t.Fatalf("put: %q %q", out, errOut)
	}
	if out, _ := mustRun(t, "", "secret", "get", s, "apps/web/db"); out != "s3cret\n" {
		t.Errorf("get: %q", out)
	}
	// The same value again: no commit.
	if out, _ := mustRun(t, "s3cret\n", "secret", "put", s, "apps/web/db"); !strings.Contains(out, "no commit") {
		t.Errorf("re-put: %q", out)
	}
	// From a file.
	file := filepath.Join(t.TempDir(), "token")
	os.WriteFile(file, []byte("tok\x00en"), 0o600)
	mustRun(t, "", "secret", "put", s, "--from-file", file, "apps/web/token")
	if out, _ := mustRun(t, "", "secret", "get", s, "apps/web/token"); out != "tok\x00en" {
		t.Errorf("get from-file: %q", out)
	}
	// -o json: "value" for UTF-8, "value_base64" for other bytes.
	for _, tc := range []struct{ key, want string }{
		{"apps/web/db", `{"key":"apps/web/db","value":"s3cret\n"}`},
		{"apps/web/token", `{"key":"apps/web/token","value":"tok\u0000en"}`},
	} {
		if out, _ := mustRun(t, "", "secret", "get", s, "-o", "json", tc.key); strings.TrimSpace(out) != tc.want {
			t.Errorf("get -o json %s: %s, want %s", tc.key, out, tc.want)
		}
	}
	// Wrong number of arguments: a usage error.
	if _, _, err := runSecret(t, "", "secret", "get", s); exitCode(err) != exitUsage {
		t.Errorf("get without a key: %v (exit %d), want exit %d", err, exitCode(err), exitUsage)
	}

	// As an argument: taken, with a warning.
	_, errOut = mustRun(t, "", "secret", "put", s, "apps/api/key", "on-the-command-line")
	if !strings.Contains(errOut, "warning") || !strings.Contains(errOut, "history") {
		t.Errorf("no warning for a value given as an argument: %q", errOut)
	}
	// Nothing on stdin.
	if _, _, err := runSecret(t, "", "secret", "put", s, "apps/empty"); err == nil {
		t.Error("an empty value is accepted")
	}

	// ls: keys and revisions.
	out, _ = mustRun(t, "", "secret", "ls", s, "-o", "json", "apps/web/")
	var list wire.SecretList
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) != 2 || list.Items[0].Key != "apps/web/db" {
		t.Fatalf("ls: %s %v", out, err)
	}
	if strings.Contains(out, "s3cret") {
		t.Error("ls shows a value")
	}
	if out, _ := mustRun(t, "", "secret", "ls", s); !strings.Contains(out, "apps/api/key\t3") {
		t.Errorf("ls text: %q", out)
	}
	// rotate: one commit for everything under the prefix.
	out, _ = mustRun(t, "", "secret", "rotate", s, "apps/web/")
	if !strings.Contains(out, "re-encrypted 2 secret(s): revision 4") {
		t.Errorf("rotate: %q", out)
	}
	if out, _ := mustRun(t, "", "secret", "get", s, "--rev", "1", "apps/web/db"); out != "s3cret\n" {
		t.Errorf("get --rev 1: %q", out)
	}
	// Errors: the server's code, and an exit status.
	_, _, err := runSecret(t, "", "secret", "get", s, "apps/none")
	if err == nil || !strings.Contains(err.Error(), "key_not_found") || exitCode(err) != exitNotFound {
		t.Errorf("missing secret: %v (exit %d)", err, exitCode(err))
	}
	_, _, err = runSecret(t, "x", "secret", "put", s, "--create", "apps/web/db")
	if err == nil || exitCode(err) != exitPrecondition {
		t.Errorf("--create on an existing secret: %v", err)
	}

	// Binary values in JSON; rm.
	binFile := filepath.Join(t.TempDir(), "bin")
	os.WriteFile(binFile, []byte{0xff, 0xfe, 0x00, 0x01}, 0o600)
	mustRun(t, "", "secret", "put", s, "--from-file", binFile, "apps/bin/key")
	if out, _ := mustRun(t, "", "secret", "get", s, "-o", "json", "apps/bin/key"); strings.TrimSpace(out) != `{"key":"apps/bin/key","value_base64":"//4AAQ=="}` {
		t.Errorf("get -o json of binary: %s", out)
	}
	if out, _ := mustRun(t, "", "secret", "rm", s, "apps/bin/key"); !strings.Contains(out, "deleted apps/bin/key") {
		t.Errorf("rm: %q", out)
	}
	if _, _, err := runSecret(t, "", "secret", "get", s, "apps/bin/key"); exitCode(err) != exitNotFound {
		t.Errorf("get after rm: %v", err)
	}
	if _, _, err := runSecret(t, "", "secret", "rm", s, "--if-match", "*", "apps/bin/key"); exitCode(err) != exitPrecondition {
		t.Errorf("rm --if-match '*' of a deleted secret: %v (exit %d)", err, exitCode(err))
	}
}

// TestSecretCLIInTxn checks that the secret commands name the transaction
// and the branch's commit, as put does, instead of the revision 0 a
// transaction's write answers.
func TestSecretCLIInTxn(t *testing.T) {
	srv := startSecretServer(t)
	s := "--server=" + srv
	id := strings.TrimSpace(func() string { out, _ := mustRun(t, "", "txn", "begin", s, "-m", "rotate db"); return out }())
	tx := "--txn=" + id
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"put", "s3cret", []string{"secret", "put", s, tx, "apps/web/db"}, `^wrote apps/web/db: txn ` + id + ` commit [0-9a-f]{40}, etag [0-9a-f]{40}\n$`},
		{"put again", "s3cret", []string{"secret", "put", s, tx, "apps/web/db"}, `^apps/web/db already has this value: no commit \(in txn ` + id + `\)\n$`},
		{"rm", "", []string{"secret", "rm", s, tx, "apps/web/db"}, `^deleted apps/web/db: txn ` + id + ` commit [0-9a-f]{40}\n$`},
		{"put on main", "s3cret", []string{"secret", "put", s, "apps/web/db"}, `^wrote apps/web/db: revision 1, etag [0-9a-f]{40}\n$`},
	} {
		out, _ := mustRun(t, tc.stdin, tc.args...)
		if !regexp.MustCompile(tc.want).MatchString(out) {
			t.Errorf("%s: %q, want %s", tc.name, out, tc.want)
		}
	}
}

// TestLogSecretByName checks that "log --key NAME" lists a secret's
// history by the name "secret put" took, and that a key of that name, when
// there is one, keeps its own history.
func TestLogSecretByName(t *testing.T) {
	srv := startSecretServer(t)
	s := "--server=" + srv
	mustRun(t, "one", "secret", "put", s, "apps/web/db")
	mustRun(t, "", "put", s, "apps/web/other", "x")
	mustRun(t, "two", "secret", "put", s, "apps/web/db")

	revisions := func(args ...string) ([]int64, string) {
		t.Helper()
		out, errOut := mustRun(t, "", append([]string{"log", s, "-o", "json"}, args...)...)
		var l wire.CommitList
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("log %v: %q: %v", args, out, err)
		}
		var revs []int64
		for _, c := range l.Commits {
			revs = append(revs, c.Revision)
		}
		return revs, errOut
	}
	if revs, errOut := revisions("--key", "apps/web/db"); !slices.Equal(revs, []int64{3, 1}) || !strings.Contains(errOut, "apps/web/db.sops.json") {
		t.Errorf("log --key of a secret's name: %v %q, want revisions [3 1] and a note naming its document", revs, errOut)
	}
	if revs, _ := revisions("--key", "apps/web/db.sops.json"); !slices.Equal(revs, []int64{3, 1}) {
		t.Errorf("log --key of the document: %v", revs)
	}
	if revs, errOut := revisions("--key", "apps/web/none"); len(revs) != 0 || errOut != "" {
		t.Errorf("log --key of nothing: %v %q", revs, errOut)
	}
	// A key named as the secret: its own history, not the secret's.
	mustRun(t, "", "put", s, "apps/web/db", "plain")
	if revs, errOut := revisions("--key", "apps/web/db"); !slices.Equal(revs, []int64{4}) || errOut != "" {
		t.Errorf("log --key of a key that is also a secret's name: %v %q, want [4]", revs, errOut)
	}
}
