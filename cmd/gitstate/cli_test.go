package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
)

// TestCLIText checks the text output of every client command, through the
// built binary against the real server.
func TestCLIText(t *testing.T) {
	url := startServer(t, "")
	run := func(stdin string, args ...string) string {
		t.Helper()
		res := runCLI(t, url, []byte(stdin), nil, args...)
		if res.exit != 0 {
			t.Fatalf("gitstate %q: exit %d: %s", args, res.exit, res.stderr)
		}
		return res.stdout
	}
	commitLine := regexp.MustCompile(`^revision (\d+) commit [0-9a-f]{40}( etag [0-9a-f]{40})?\n$`)
	checkLine := func(out string, rev string) {
		t.Helper()
		m := commitLine.FindStringSubmatch(out)
		if m == nil || m[1] != rev {
			t.Errorf("output %q, want a commit line for revision %s", out, rev)
		}
	}

	checkLine(run("", "put", "apps/web/replicas", "3", "-m", "scale web"), "1")
	checkLine(run("kind: Deployment\nreplicas: 3\n", "put", "apps/web/deploy.yaml", "-"), "2")
	checkLine(run("", "put", "apps/db/replicas", "--", "-1"), "3")
	if out := run("", "put", "apps/web/replicas", "3"); out != "unchanged at revision 3\n" {
		t.Errorf("put of the same value: %q", out)
	}
	if out := run("", "get", "apps/web/deploy.yaml"); out != "kind: Deployment\nreplicas: 3\n" {
		t.Errorf("get prints %q, want the raw value", out)
	}
	if out := run("", "get", "apps/db/replicas"); out != "-1" {
		t.Errorf("get of a value given after --: %q", out)
	}
	if out := run("", "ls"); out != "apps/db/replicas\napps/web/deploy.yaml\napps/web/replicas\n" {
		t.Errorf("ls: %q", out)
	}
	if out := run("", "ls", "apps/web/", "--values", "--page-size", "1"); out != "apps/web/deploy.yaml\t\"kind: Deployment\\nreplicas: 3\\n\"\napps/web/replicas\t3\n" {
		t.Errorf("ls --values: %q", out)
	}
	if out := run("", "ls", "--limit", "1"); out != "apps/db/replicas\n" {
		t.Errorf("ls --limit 1: %q", out)
	}
	log := runCLI(t, url, nil, nil, "log", "--limit", "2")
	if !regexp.MustCompile(`^r3 [0-9a-f]{12} \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ admin: .*\n    put apps/db/replicas\nr2 `).MatchString(log.stdout) ||
		log.stderr != "(more: --after 2)\n" {
		t.Errorf("log --limit 2:\n%s\nstderr %q", log.stdout, log.stderr)
	}
	if out := run("", "log", "--key", "apps/web/replicas"); !strings.Contains(out, ": scale web\n    put apps/web/replicas\n") {
		t.Errorf("log --key: %q", out)
	}
	if out := run("", "diff", "1"); out != "A\tapps/db/replicas\nA\tapps/web/deploy.yaml\n" {
		t.Errorf("diff 1: %q", out)
	}
	if out := run("", "diff", "0", "1", "--patch"); !strings.Contains(out, "+++ b/apps/web/replicas\n") || !strings.Contains(out, "+3\n") {
		t.Errorf("diff --patch: %q", out)
	}
	checkLine(run("", "revert", "3"), "4")
	checkLine(run("", "rollback", "1", "--prefix", "apps/web/"), "5")
	checkLine(run("", "del", "apps/web", "--prefix"), "6")
	if out := run("", "ls"); out != "" {
		t.Errorf("ls after deleting everything: %q", out)
	}
	if out := run("", "repo", "create", "team-a"); out != "team-a\trevision 0\n" {
		t.Errorf("repo create: %q", out)
	}
	if out := run("", "repo", "ls"); out != "default\trevision 6\nteam-a\trevision 0\n" {
		t.Errorf("repo ls: %q", out)
	}
}

// TestCLIExitCodes checks the exit statuses "gitstate help exit-codes"
// documents, and the error line on stderr.
func TestCLIExitCodes(t *testing.T) {
	url := startServer(t, "")
	for _, kv := range [][]string{{"k", "v1"}, {"svc/a", "1"}} {
		if res := runCLI(t, url, nil, nil, "put", kv[0], kv[1]); res.exit != 0 {
			t.Fatalf("put: %+v", res)
		}
	}
	tests := []struct {
		args   []string
		exit   int
		stderr string // prefix of the first line
	}{
		{[]string{"frob"}, exitUsage, `gitstate: unknown command "frob" for "gitstate"`},
		{[]string{"--bogus"}, exitUsage, "gitstate: unknown flag: --bogus"},
		{[]string{"secret", "frob"}, exitUsage, `gitstate: unknown command "frob" for "gitstate secret"`},
		{[]string{"completion", "frob"}, exitUsage, `gitstate: unknown command "frob" for "gitstate completion"`},
		{[]string{"help", "frob"}, exitUsage, `gitstate: unknown help topic "frob"`},
		{[]string{"help", "repo", "frob"}, exitUsage, `gitstate: unknown help topic "repo frob"`},
		{[]string{"serve", "--bogus"}, exitUsage, "gitstate: unknown flag: --bogus"},
		{[]string{"serve", "extra"}, exitUsage, `gitstate: unknown command "extra"`},
		{[]string{"repo", "import", "x"}, exitUsage, "gitstate: accepts 2 arg(s), received 1"},
		{[]string{"del", "svc"}, exitNotFound, "gitstate: key_not_found: "},
		{[]string{"get"}, exitUsage, "gitstate: accepts 1 arg(s), received 0"},
		{[]string{"get", "a", "b"}, exitUsage, "gitstate: accepts 1 arg(s)"},
		{[]string{"get", "k", "--bogus"}, exitUsage, "gitstate: unknown flag: --bogus"},
		{[]string{"ls", "--limit", "x"}, exitUsage, `gitstate: invalid argument "x"`},
		{[]string{"ls", "-o", "yaml"}, exitUsage, "gitstate: -o/--output must be text or json"},
		{[]string{"put", "k", "v", "--create", "--if-match", "abc"}, exitUsage, "gitstate: --create and --if-match"},
		{[]string{"repo", "frob"}, exitUsage, `gitstate: unknown command "frob"`},
		{[]string{"get", "k", "--server", "ftp://x"}, exitUsage, "gitstate: --server:"},
		{[]string{"get", "nope"}, exitNotFound, "gitstate: key_not_found: "},
		{[]string{"get", "k", "--repo", "nope"}, exitNotFound, "gitstate: repo_not_found: "},
		{[]string{"get", "k", "--rev", "9"}, exitNotFound, "gitstate: revision_not_found: "},
		{[]string{"put", "k", "v2", "--create"}, exitPrecondition, "gitstate: precondition_failed: "},
		{[]string{"repo", "create", "default"}, exitPrecondition, "gitstate: repo_exists: "},
		{[]string{"get", "a//b"}, exitError, "gitstate: invalid_key: "},
		{[]string{"get", "k", "--rev", "HEAD"}, exitError, "gitstate: invalid_revision: "},
		{[]string{"get", "k", "--server", "http://127.0.0.1:1"}, exitError, "gitstate: Get "},
	}
	for _, tt := range tests {
		res := runCLI(t, url, nil, nil, tt.args...)
		if res.exit != tt.exit || !strings.HasPrefix(res.stderr, tt.stderr) {
			t.Errorf("gitstate %q: exit %d, stderr %q; want exit %d, stderr %q...", tt.args, res.exit, res.stderr, tt.exit, tt.stderr)
		}
		if res.stdout != "" {
			t.Errorf("gitstate %q failed but printed %q", tt.args, res.stdout)
		}
	}
}

// TestCLIJSONErrors checks that with -o json a failure is the API's JSON
// error body on stderr, hints included, with the exit status of its kind.
func TestCLIJSONErrors(t *testing.T) {
	url := startServer(t, "")
	for _, kv := range [][]string{{"k", "v1"}, {"svc/a", "1"}, {"svc/b", "2"}} {
		if res := runCLI(t, url, nil, nil, "put", kv[0], kv[1]); res.exit != 0 {
			t.Fatalf("put: %+v", res)
		}
	}
	tests := []struct {
		args []string
		exit int
		want string // the JSON on stderr, "*" standing for the message
	}{
		{[]string{"get", "nope", "-o", "json"}, exitNotFound, `{"error":{"code":"key_not_found","message":*,"keys":["nope"]}}`},
		{[]string{"put", "k", "v2", "--create", "-o", "json"}, exitPrecondition,
			`{"error":{"code":"precondition_failed","message":*,"keys":["k"]}}`},
		{[]string{"del", "svc", "-o", "json"}, exitNotFound,
			`{"error":{"code":"key_not_found","message":*,"keys":["svc"],"hint":"svc is a directory; use --prefix to delete the keys under it"}}`},
		{[]string{"-o", "json", "frob"}, exitUsage, `{"error":{"code":"usage","message":*,"hint":"run \"gitstate --help\" for the commands"}}`},
		// The flag that stops the parse comes before -o json.
		{[]string{"get", "k", "--bogus", "-o", "json"}, exitUsage, `{"error":{"code":"usage","message":*}}`},
		{[]string{"get", "k", "--output=json", "--server", "http://127.0.0.1:1"}, exitError, `{"error":{"code":"client_error","message":*}}`},
	}
	for _, tt := range tests {
		res := runCLI(t, url, nil, nil, tt.args...)
		var e errorOutput
		if err := json.Unmarshal([]byte(res.stderr), &e); err != nil || e.Error.Message == "" {
			t.Errorf("gitstate %q: stderr %q is not a JSON error: %v", tt.args, res.stderr, err)
			continue
		}
		msg, _ := json.Marshal(e.Error.Message)
		want := strings.Replace(tt.want, "*", string(msg), 1)
		if got := strings.TrimSuffix(res.stderr, "\n"); res.exit != tt.exit || got != want {
			t.Errorf("gitstate %q: exit %d, stderr\n%s\nwant exit %d, stderr\n%s", tt.args, res.exit, got, tt.exit, want)
		}
		if res.stdout != "" {
			t.Errorf("gitstate %q failed but printed %q", tt.args, res.stdout)
		}
	}
	// Without -o json, the hint is the error's second line.
	if res := runCLI(t, url, nil, nil, "del", "svc"); res.exit != exitNotFound ||
		!strings.HasSuffix(res.stderr, "\nsvc is a directory; use --prefix to delete the keys under it\n") {
		t.Errorf("del of a directory: %+v", res)
	}
	// A key that is missing, with nothing under it, has no hint.
	if res := runCLI(t, url, nil, nil, "del", "sv"); res.exit != exitNotFound || strings.Count(res.stderr, "\n") != 1 {
		t.Errorf("del of a missing key: %+v", res)
	}
}

// TestCLIEnv checks GITSTATE_SERVER (every run sets it), GITSTATE_REPO,
// GITSTATE_TOKEN and --token, against a server with an admin token.
func TestCLIEnv(t *testing.T) {
	url := startServer(t, "s3cret")
	if res := runCLI(t, url, nil, nil, "repo", "ls"); res.exit != exitError || !strings.HasPrefix(res.stderr, "gitstate: unauthorized: ") {
		t.Errorf("no token: %+v", res)
	}
	tok := []string{"GITSTATE_TOKEN=s3cret"}
	if res := runCLI(t, url, nil, tok, "repo", "create", "team-a"); res.exit != 0 {
		t.Fatalf("GITSTATE_TOKEN: %+v", res)
	}
	if res := runCLI(t, url, nil, append(tok, "GITSTATE_REPO=team-a"), "put", "k", "in team-a"); res.exit != 0 {
		t.Fatalf("GITSTATE_REPO: %+v", res)
	}
	if res := runCLI(t, url, nil, nil, "get", "k", "--repo", "team-a", "--token", "s3cret"); res.stdout != "in team-a" {
		t.Errorf("--token and --repo: %+v", res)
	}
	if res := runCLI(t, url, nil, []string{"GITSTATE_TOKEN=s3cret"}, "get", "k"); res.exit != exitNotFound {
		t.Errorf("k in the default repo: %+v", res)
	}
	// Help must not print the token.
	if res := runCLI(t, url, nil, tok, "get", "--help"); strings.Contains(res.stdout, "s3cret") {
		t.Errorf("help prints the token:\n%s", res.stdout)
	}
	// The server address may omit the scheme.
	host := strings.TrimPrefix(url, "http://")
	if res := runCLI(t, url, nil, tok, "get", "k", "--repo", "team-a", "--server", host); res.stdout != "in team-a" {
		t.Errorf("--server without a scheme: %+v", res)
	}
}

// TestCLIConvergence checks the text of reconcilers, rollout and webhook,
// through the binary against the real server.
func TestCLIConvergence(t *testing.T) {
	url := startServer(t, "")
	d := newClientDriver(t, url)
	run := func(stdin string, args ...string) string {
		t.Helper()
		res := runCLI(t, url, []byte(stdin), nil, args...)
		if res.exit != 0 {
			t.Fatalf("gitstate %q: exit %d: %s", args, res.exit, res.stderr)
		}
		return res.stdout
	}
	for _, k := range []string{"a", "b", "c"} {
		run("", "put", k, "1")
	}
	repo := d.c.Repo("default")
	for _, r := range []struct {
		name, rev, state string
	}{{"eu", "3", "applied"}, {"us", "1", "applied"}, {"us", "2", "failed"}} {
		if err := repo.ReportStatus(context.Background(), r.name, wire.ReconcilerStatusRequest{Revision: wire.Rev(r.rev), State: r.state}); err != nil {
			t.Fatal(err)
		}
	}
	out := run("", "reconcilers")
	for _, want := range []string{`(?m)^head: revision 3$`, `(?m)^NAME\s+STATE\s+REVISION\s+APPLIED\s+LAG\s+LAST REPORT\s+STALE$`,
		`(?m)^eu\s+applied\s+3\s+3\s+0\s+\S+Z\s+no$`, `(?m)^us\s+failed\s+2\s+1\s+2 \(\d+s\)\s+\S+Z\s+no$`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("reconcilers lacks %s:\n%s", want, out)
		}
	}
	out = run("", "rollout", "2")
	if !regexp.MustCompile(`^revision 2 \([0-9a-f]{12}\), head 3: not converged: 1 of 2 reconcilers pending\n.*\nus\s+pending\s+failed\s+1\s.*\neu\s+applied\s+applied\s+3\s`).MatchString(out) {
		t.Errorf("rollout 2:\n%s", out)
	}
	if out := run("", "reconcilers", "rm", "us"); out != "deleted reconciler us\n" {
		t.Errorf("reconcilers rm: %q", out)
	}
	if out := run("", "rollout", "2"); !strings.HasPrefix(out, "revision 2 (") || !strings.Contains(out, "head 3: converged\n") {
		t.Errorf("rollout 2 after rm:\n%s", out)
	}
	if res := runCLI(t, url, nil, nil, "rollout", "9"); res.exit != exitNotFound {
		t.Errorf("rollout 9: %+v", res)
	}

	// A webhook to a closed port: its deliveries fail and say why.
	out = run("a-secret-of-at-least-16-bytes\n", "webhook", "create", "http://127.0.0.1:1/hook", "--prefix", "a", "--secret-file", "-", "--from", "0")
	m := regexp.MustCompile(`^created webhook (\S+): revisions after 0 under a go to http://127.0.0.1:1/hook\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("webhook create: %q", out)
	}
	id := m[1]
	if out := run("", "webhook", "create", "http://127.0.0.1:1/other"); !regexp.MustCompile(`\nsecret: [0-9a-f]{64} \(it will not be shown again\)\n$`).MatchString(out) {
		t.Errorf("webhook create with a secret made up: %q", out)
	}
	if out := run("", "webhook", "ls"); !regexp.MustCompile(`(?m)^` + id + `\s+http://127.0.0.1:1/hook\s+a\s+0\s+`).MatchString(out) {
		t.Errorf("webhook ls:\n%s", out)
	}
	var deliveries string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if deliveries = run("", "webhook", "deliveries", id); strings.Count(deliveries, "\n") > 1 {
			break
		}
	}
	if !regexp.MustCompile(`(?m)^` + id + `-1\s+1\s+1\s+\S+Z\s+-\s+\S+\s+.*connection refused`).MatchString(deliveries) {
		t.Errorf("webhook deliveries:\n%s", deliveries)
	}
	if out := run("", "webhook", "rm", id); out != "deleted webhook "+id+" (http://127.0.0.1:1/hook)\n" {
		t.Errorf("webhook rm: %q", out)
	}
	if res := runCLI(t, url, nil, nil, "webhook", "rm", id); res.exit != exitNotFound {
		t.Errorf("webhook rm of a removed webhook: %+v", res)
	}
	if res := runCLI(t, url, []byte("short"), nil, "webhook", "create", "http://127.0.0.1:1/x", "--secret-file", "-"); res.exit != exitError ||
		!strings.HasPrefix(res.stderr, "gitstate: invalid_request: secret must be") {
		t.Errorf("webhook create with a short secret: %+v", res)
	}
}
