package main

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestCLITxnEnv drives a transaction through the binary the way the
// README shows: its id from "txn begin" in $GITSTATE_TXN, the key-value
// commands inside it, the commands that work on main only refused.
func TestCLITxnEnv(t *testing.T) {
	url := startServer(t, "")
	run := func(env []string, stdin string, args ...string) cliResult {
		t.Helper()
		return runCLI(t, url, []byte(stdin), env, args...)
	}
	ok := func(env []string, args ...string) string {
		t.Helper()
		res := run(env, "", args...)
		if res.exit != 0 {
			t.Fatalf("gitstate %q: exit %d: %s", args, res.exit, res.stderr)
		}
		return res.stdout
	}
	ok(nil, "put", "apps/web/replicas", "3")

	begin := run(nil, "", "txn", "begin", "-m", "scale web")
	id := strings.TrimSuffix(begin.stdout, "\n")
	if begin.exit != 0 || !regexp.MustCompile(`^[a-z0-9]{6,}$`).MatchString(id) {
		t.Fatalf("txn begin: %+v, want the id alone on stdout", begin)
	}
	if !strings.Contains(begin.stderr, "export GITSTATE_TXN="+id) {
		t.Errorf("txn begin's note: %q", begin.stderr)
	}
	env := []string{"GITSTATE_TXN=" + id}

	// Inside the transaction.
	if out := ok(env, "put", "apps/web/replicas", "5"); !regexp.MustCompile(`^txn ` + id + ` commit [0-9a-f]{40} etag [0-9a-f]{40}\n$`).MatchString(out) {
		t.Errorf("put in the transaction: %q", out)
	}
	if out := ok(env, "put", "apps/web/replicas", "5"); out != "unchanged in txn "+id+"\n" {
		t.Errorf("put of the same value in the transaction: %q", out)
	}
	ok(env, "put", "apps/web/max", "10")
	if out := ok(env, "get", "apps/web/replicas"); out != "5" {
		t.Errorf("get in the transaction: %q", out)
	}
	if out := ok(env, "ls", "apps/"); out != "apps/web/max\napps/web/replicas\n" {
		t.Errorf("ls in the transaction: %q", out)
	}
	// --txn= is main.
	if out := ok(env, "get", "apps/web/replicas", "--txn="); out != "3" {
		t.Errorf("get --txn= : %q", out)
	}
	if res := run(env, "", "get", "apps/web/max", "--txn="); res.exit != exitNotFound {
		t.Errorf("a key of the transaction on main: %+v", res)
	}

	// Commands that work on main only refuse it, flag or variable; the
	// others ignore it.
	for _, args := range [][]string{
		{"log"}, {"diff", "1"}, {"revert", "1"}, {"rollback", "0"}, {"watch"}, {"rollout", "1"},
		{"get", "apps/web/replicas", "--rev", "1"}, {"ls", "--rev", "1"},
	} {
		res := run(env, "", args...)
		if res.exit != exitUsage || res.stdout != "" || !strings.Contains(res.stderr, id) {
			t.Errorf("gitstate %q with $GITSTATE_TXN: %+v, want a usage error naming the transaction", args, res)
		}
	}
	if res := run(nil, "", "log", "--txn", id); res.exit != exitUsage || !strings.Contains(res.stderr, "--txn names transaction "+id) {
		t.Errorf("log --txn: %+v", res)
	}
	if out := ok(env, "log", "--txn="); !strings.HasPrefix(out, "r1 ") {
		t.Errorf("log --txn= : %q", out)
	}
	if out := ok(env, "repo", "ls"); out != "default\trevision 1\n" {
		t.Errorf("repo ls ignores the transaction: %q", out)
	}

	// The txn commands default to it.
	if out := ok(env, "txn", "diff"); out != "A\tapps/web/max\nM\tapps/web/replicas\n" {
		t.Errorf("txn diff: %q", out)
	}
	if out := ok(env, "txn", "diff", "--patch"); !strings.Contains(out, "-3\n\\ No newline at end of file\n+5\n") {
		t.Errorf("txn diff --patch: %q", out)
	}
	show := ok(env, "txn", "show")
	for _, want := range []string{
		`(?m)^transaction:\s+` + id + `$`, `(?m)^status:\s+open$`, `(?m)^author:\s+admin$`, `(?m)^message:\s+scale web$`,
		`(?m)^base:\s+revision 1 \([0-9a-f]{12}\)$`, `(?m)^keys \(2\):\n  apps/web/max\n  apps/web/replicas\n`,
		`(?m)^conflicts: none$`, `(?m)^approvals: none$`, `(?m)^requirements: none$`,
	} {
		if !regexp.MustCompile(want).MatchString(show) {
			t.Errorf("txn show lacks %s:\n%s", want, show)
		}
	}
	if out := ok(env, "txn", "ls", "--status", "open"); !regexp.MustCompile(`(?m)^` + id + `\s+open\s+admin\s+1\s+\S+\s+scale web$`).MatchString(out) {
		t.Errorf("txn ls:\n%s", out)
	}
	if res := run(env, "", "txn", "approve"); res.exit != exitError || !strings.HasPrefix(res.stderr, "gitstate: self_approval: ") {
		t.Errorf("self-approval: %+v", res)
	}
	// With no --reporter, the report is under the token's own name.
	if out := ok(env, "txn", "report", "--status", "pending"); !regexp.MustCompile(`^reported pending on transaction ` + id + ` at [0-9a-f]+ as admin\n$`).MatchString(out) {
		t.Errorf("txn report without --reporter: %q", out)
	}
	// The administrator may report for another reporter; show names who did.
	if out := ok(env, "txn", "report", "--reporter", "plan-bot", "--status", "ok", "--details", `{"n":1}`); !strings.HasPrefix(out, "reported ok on transaction "+id+" at ") {
		t.Errorf("txn report: %q", out)
	}
	if out := ok(env, "txn", "commit"); !regexp.MustCompile(`^revision 2 commit [0-9a-f]{40}\n$`).MatchString(out) {
		t.Errorf("txn commit: %q", out)
	}
	if res := run(env, "", "put", "k", "v"); res.exit != exitPrecondition || !strings.HasPrefix(res.stderr, "gitstate: txn_committed: ") {
		t.Errorf("put in a committed transaction: %+v", res)
	}
	if out := ok(nil, "get", "apps/web/replicas"); out != "5" {
		t.Errorf("get on main after the commit: %q", out)
	}
	if out := ok(nil, "txn", "show", id); !regexp.MustCompile(`(?m)^status:\s+committed$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^committed:\s+revision 2 `).MatchString(out) || !regexp.MustCompile(`(?m)^  plan-bot \(by admin\)\s+ok\s+current\s`).MatchString(out) {
		t.Errorf("txn show of the committed transaction:\n%s", out)
	}

	// Without a transaction the txn commands need an id.
	if res := run(nil, "", "txn", "diff"); res.exit != exitUsage || !strings.Contains(res.stderr, "which transaction?") {
		t.Errorf("txn diff without an id: %+v", res)
	}
	// --txn instead of the variable; abort.
	other := strings.TrimSpace(ok(nil, "txn", "begin"))
	ok(nil, "put", "x", "1", "--txn", other)
	if out := ok(nil, "txn", "abort", other); out != "aborted transaction "+other+"\n" {
		t.Errorf("txn abort: %q", out)
	}
	if res := run(nil, "", "txn", "show", "nosuchtxn000"); res.exit != exitNotFound {
		t.Errorf("txn show of a missing transaction: %+v", res)
	}
	for _, args := range [][]string{
		{"txn", "diff", id, "--against", "tail"}, {"txn", "ls", "--status", "done"},
		{"txn", "report", id, "--reporter", "x", "--status", "great"}, {"txn", "report", id, "--reporter", "x"},
		{"txn", "report", id, "--reporter", "x", "--status", "ok", "--details", "{"}, {"txn", "begin", "--ttl", "-1h"},
		{"txn", "begin", "--ttl", "0s"}, {"txn", "show", "a", "b"},
	} {
		if res := run(nil, "", args...); res.exit != exitUsage {
			t.Errorf("gitstate %q: %+v, want a usage error", args, res)
		}
	}
}

// TestTxnModes checks that every command about a repo's keys or history
// says what it does with a transaction, and that main-only ones say so in
// their help.
func TestTxnModes(t *testing.T) {
	root := newRootCmd()
	for _, c := range root.Commands() {
		mode := c.Annotations[txnAnnotation]
		switch c.GroupID {
		case groupKeys:
			if mode != txnInside {
				t.Errorf("%s: txn mode %q, want %q", c.Name(), mode, txnInside)
			}
		case groupHistory:
			if mode != txnMainOnly {
				t.Errorf("%s: txn mode %q, want %q", c.Name(), mode, txnMainOnly)
			}
		}
		if mode == txnMainOnly && !strings.Contains(c.Long, "works on main only") {
			t.Errorf("%s's help does not say it works on main only:\n%s", c.Name(), c.Long)
		}
	}
}

// TestCLITxnExpired checks that the CLI shows a transaction past its ttl
// as expired, before the server's sweeper closes it, and that aborting it
// is refused as the transaction's state, not done.
func TestCLITxnExpired(t *testing.T) {
	url := startServer(t, "")
	run := func(args ...string) cliResult {
		t.Helper()
		return runCLI(t, url, nil, nil, args...)
	}
	begin := run("txn", "begin", "--ttl", "1s")
	id := strings.TrimSpace(begin.stdout)
	if begin.exit != 0 || id == "" {
		t.Fatalf("txn begin: %+v", begin)
	}
	time.Sleep(1100 * time.Millisecond)
	if res := run("txn", "show", id); res.exit != 0 || !regexp.MustCompile(`(?m)^status:\s+expired$`).MatchString(res.stdout) ||
		!regexp.MustCompile(`(?m)^closed:\s+.* by gitstate$`).MatchString(res.stdout) {
		t.Errorf("txn show: %+v", res)
	}
	if res := run("txn", "ls", "--status", "open"); res.exit != 0 || strings.Contains(res.stdout, id) {
		t.Errorf("txn ls --status open: %+v", res)
	}
	if res := run("txn", "ls", "--status", "expired"); res.exit != 0 || !regexp.MustCompile(`(?m)^`+id+`\s+expired\s`).MatchString(res.stdout) {
		t.Errorf("txn ls --status expired: %+v", res)
	}
	if res := run("txn", "abort", id); res.exit != exitPrecondition || !strings.HasPrefix(res.stderr, "gitstate: txn_expired: ") {
		t.Errorf("txn abort: %+v, want txn_expired", res)
	}
}
