package upstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/server"
	"github.com/gitstate/gitstate/server/upstream"
)

// node is a gitstate server on loopback, over a data directory that
// outlives restarts.
type node struct {
	t     *testing.T
	dir   string
	token string
	srv   *server.Server
	url   string
}

func startNode(t *testing.T, token string) *node {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	n := &node{t: t, dir: t.TempDir(), token: token}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *node) start() {
	n.t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = n.dir
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminToken = n.token
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	n.srv, n.url = srv, "http://"+srv.Addr()
}

func (n *node) stop() {
	if n.srv != nil {
		if err := n.srv.Shutdown(context.Background()); err != nil {
			n.t.Errorf("shutdown: %v", err)
		}
		n.srv = nil
	}
}

// call sends a JSON request and decodes the answer into out; it returns
// the status.
func (n *node) call(method, path string, body any, out any, hdr ...string) int {
	n.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, n.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+n.token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if s, ok := out.(*string); ok {
			*s = string(data)
		} else if err := json.Unmarshal(data, out); err != nil {
			n.t.Fatalf("%s %s: %q: %v", method, path, data, err)
		}
	}
	if resp.StatusCode >= 400 && out == nil {
		n.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode
}

func (n *node) put(repo, key, value string) wire.WriteResult {
	n.t.Helper()
	var res wire.WriteResult
	if st := n.call("PUT", "/v1/repos/"+repo+"/kv/"+key, value, &res); st != 200 {
		n.t.Fatalf("put %s: %d", key, st)
	}
	return res
}

func (n *node) get(repo, key string) string {
	n.t.Helper()
	var v string
	if st := n.call("GET", "/v1/repos/"+repo+"/kv/"+key, nil, &v); st != 200 {
		return fmt.Sprintf("<%d>", st)
	}
	return v
}

func (n *node) head(repo string) wire.Repo {
	n.t.Helper()
	var r wire.Repo
	if st := n.call("GET", "/v1/repos/"+repo, nil, &r); st != 200 {
		n.t.Fatalf("repo %s: %d", repo, st)
	}
	return r
}

func (n *node) upstream(repo string) wire.Upstream {
	n.t.Helper()
	var u wire.Upstream
	if st := n.call("GET", "/v1/repos/"+repo+"/upstream", nil, &u); st != 200 {
		n.t.Fatalf("upstream of %s: %d", repo, st)
	}
	return u
}

func (n *node) setUpstream(repo string, c wire.UpstreamConfig) wire.Upstream {
	n.t.Helper()
	var u wire.Upstream
	if st := n.call("PUT", "/v1/repos/"+repo+"/upstream", c, &u); st != 200 {
		n.t.Fatalf("set upstream of %s: %d", repo, st)
	}
	return u
}

func (n *node) sync(repo string) wire.Upstream {
	n.t.Helper()
	var u wire.Upstream
	if st := n.call("POST", "/v1/repos/"+repo+"/upstream/sync", nil, &u); st != 200 {
		n.t.Fatalf("sync %s: %d", repo, st)
	}
	return u
}

// auditRevision returns the revision of the audit line of a request
// (failing the test unless the log has exactly one).
func (n *node) auditRevision(requestID string) int64 {
	n.t.Helper()
	b, err := os.ReadFile(filepath.Join(n.dir, "audit", "audit.log"))
	if err != nil {
		n.t.Fatal(err)
	}
	var found []wire.AuditEntry
	for line := range bytes.Lines(b) {
		var e wire.AuditEntry
		if err := json.Unmarshal(line, &e); err != nil {
			n.t.Fatalf("audit line %q: %v", line, err)
		}
		if e.RequestID == requestID {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		n.t.Fatalf("%d audit lines for request %s", len(found), requestID)
	}
	return found[0].Revision
}

func (n *node) metrics() string {
	var m string
	n.call("GET", "/metrics", nil, &m)
	return m
}

// gitOut runs git and returns its trimmed output.
func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	full := append([]string{"-c", "user.name=Up Stream", "-c", "user.email=up@example.com", "-c", "init.defaultBranch=main"}, args...)
	if dir != "" {
		full = append([]string{"-C", dir}, full...)
	}
	cmd := exec.Command("git", full...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// eventually polls cond for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bareRepo makes an empty bare repository and a work clone of it.
func bareRepo(t *testing.T) (bare, work string) {
	t.Helper()
	root := t.TempDir()
	bare = filepath.Join(root, "up.git")
	gitOut(t, "", "init", "-q", "--bare", bare)
	work = filepath.Join(root, "work")
	gitOut(t, "", "clone", "-q", bare, work)
	return bare, work
}

func commitFile(t *testing.T, work, path, content, msg string) string {
	t.Helper()
	full := filepath.Join(work, filepath.FromSlash(path))
	os.MkdirAll(filepath.Dir(full), 0o755)
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	gitOut(t, work, "add", path)
	gitOut(t, work, "commit", "-qm", msg)
	return gitOut(t, work, "rev-parse", "HEAD")
}

func TestMirrorToBareRepo(t *testing.T) {
	a := startNode(t, "admin-a")
	bare, work := bareRepo(t)
	a.put("default", "apps/web/replicas", "1")
	u := a.setUpstream("default", wire.UpstreamConfig{URL: "file://" + bare, Mode: "mirror", Username: "bot", Password: "hunter2"})
	if !u.Credentials || u.Mode != "mirror" || u.Branch != "main" {
		t.Errorf("upstream %+v", u)
	}
	// Each commit is pushed without being asked.
	a.put("default", "apps/web/replicas", "2")
	res := a.put("default", "apps/api/replicas", "3")
	eventually(t, "the mirror to catch up", func() bool {
		out, _ := exec.Command("git", "-C", bare, "rev-parse", "main").Output()
		return strings.TrimSpace(string(out)) == res.Commit
	})
	eventually(t, "in_sync", func() bool { return a.upstream("default").Status.State == "in_sync" })
	st := a.upstream("default").Status
	if st.LagRevisions != 0 || st.Revision != 3 || st.Diverged {
		t.Errorf("status %+v", st)
	}
	if n := gitOut(t, bare, "rev-list", "--count", "main"); n != "3" {
		t.Errorf("upstream has %s commits", n)
	}
	// The credentials rest sealed, and are never shown.
	b, err := os.ReadFile(filepath.Join(a.dir, "upstreams", "default.json"))
	if err != nil || bytes.Contains(b, []byte("hunter2")) || !bytes.Contains(b, []byte(`"sealed"`)) {
		t.Errorf("config at rest: %s %v", b, err)
	}
	for _, f := range []string{"upstreams/default.json", upstream.KeyFile} {
		if fi, err := os.Stat(filepath.Join(a.dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	var raw string
	a.call("GET", "/v1/repos/default/upstream", nil, &raw)
	if strings.Contains(raw, "hunter2") {
		t.Errorf("GET shows the password: %s", raw)
	}
	// Someone pushes to the upstream directly, then main moves: both
	// moved, and neither side is overwritten.
	gitOut(t, work, "pull", "-q")
	theirs := commitFile(t, work, "elsewhere", "x", "pushed upstream")
	gitOut(t, work, "push", "-q", "origin", "main")
	a.put("default", "apps/web/replicas", "4")
	eventually(t, "divergence", func() bool { return a.upstream("default").Status.Diverged })
	st = a.upstream("default").Status
	if st.State != "diverged" || st.Theirs != theirs || st.LagRevisions != 1 || !strings.Contains(st.Message, "reconcile") {
		t.Errorf("diverged status %+v", st)
	}
	if got := gitOut(t, bare, "rev-parse", "main"); got != theirs {
		t.Errorf("upstream overwritten: %s", got)
	}
	if m := a.metrics(); !strings.Contains(m, `gitstate_upstream_diverged{mode="mirror",repo="default"} 1`) ||
		!strings.Contains(m, `gitstate_upstream_lag_revisions{mode="mirror",repo="default"} 1`) {
		t.Errorf("metrics:\n%s", grep(m, "gitstate_upstream"))
	}
	// Resolved by hand (the upstream reset to main's line), the mirror
	// goes on.
	gitOut(t, work, "push", "-q", "-f", "origin", res.Commit+":main")
	if u := a.sync("default"); u.Status.State != "in_sync" || u.Status.LagRevisions != 0 {
		t.Errorf("after reconciling: %+v", u.Status)
	}
	// An upstream that cannot be reached is retried with backoff.
	a.setUpstream("default", wire.UpstreamConfig{URL: "file://" + filepath.Join(t.TempDir(), "nowhere.git"), Mode: "mirror"})
	a.put("default", "apps/web/replicas", "5")
	eventually(t, "retrying", func() bool { return a.upstream("default").Status.State == "retrying" })
	if st := a.upstream("default").Status; st.Failures < 1 || st.NextAttempt == nil || st.LagRevisions < 1 {
		t.Errorf("retrying status %+v", st)
	}
	if st := a.call("DELETE", "/v1/repos/default/upstream", nil, nil); st != http.StatusNoContent {
		t.Errorf("delete: %d", st)
	}
	if st := a.call("GET", "/v1/repos/default/upstream", nil, nil); st != http.StatusNotFound {
		t.Errorf("after delete: %d", st)
	}
}

func grep(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}

func TestFollowBareRepo(t *testing.T) {
	a := startNode(t, "admin-a")
	bare, work := bareRepo(t)
	commitFile(t, work, "apps/web/replicas", "1", "first")
	commitFile(t, work, "apps/web/image", "v1", "second")
	gitOut(t, work, "push", "-q", "origin", "main")
	if st := a.call("POST", "/v1/repos", wire.CreateRepoRequest{Name: "f"}, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	a.setUpstream("f", wire.UpstreamConfig{URL: bare, Mode: "follow", Interval: wire.Duration(time.Hour), WebhookSecret: "s3cret"})
	var u wire.Upstream
	if st := a.call("POST", "/v1/repos/f/upstream/sync", nil, &u, "X-Request-Id", "sync-first"); st != http.StatusOK {
		t.Fatalf("sync: %d", st)
	}
	want := gitOut(t, bare, "rev-parse", "main")
	if u.Status.State != "in_sync" || a.head("f").Commit != want || a.head("f").Revision != 2 {
		t.Fatalf("after the first sync: %+v, head %+v", u.Status, a.head("f"))
	}
	if rev := a.auditRevision("sync-first"); rev != 2 {
		t.Errorf("the first sync's audit line has revision %d, want 2 (the one it made)", rev)
	}
	// A pull request merged upstream: its merge becomes one revision.
	gitOut(t, work, "checkout", "-q", "-b", "pr")
	commitFile(t, work, "apps/web/replicas", "3", "scale web")
	gitOut(t, work, "checkout", "-q", "main")
	gitOut(t, work, "merge", "-q", "--no-ff", "-m", "Merge pull request #1", "pr")
	merge := gitOut(t, work, "rev-parse", "HEAD")
	gitOut(t, work, "push", "-q", "origin", "main")
	body := []byte(`{"ref":"refs/heads/main"}`)
	if st := a.call("POST", "/v1/repos/f/upstream/webhook", body, nil, "X-Hub-Signature-256", "sha256=00"); st != http.StatusUnauthorized {
		t.Errorf("bad signature: %d", st)
	}
	if st := a.call("POST", "/v1/repos/f/upstream/webhook", body, nil); st != http.StatusUnauthorized {
		t.Errorf("no signature: %d", st)
	}
	sig := upstream.Sign("s3cret", body)
	if st := a.call("POST", "/v1/repos/f/upstream/webhook", body, nil, "X-Hub-Signature-256", sig); st != http.StatusAccepted {
		t.Fatalf("webhook: %d", st)
	}
	eventually(t, "the merge to arrive", func() bool { return a.head("f").Commit == merge })
	if h := a.head("f"); h.Revision != 3 || a.get("f", "apps/web/replicas") != "3" {
		t.Errorf("after the merge: %+v, %q", h, a.get("f", "apps/web/replicas"))
	}
	var ci wire.CommitInfo
	a.call("GET", "/v1/repos/f/commits/3", nil, &ci)
	if ci.Commit != merge || len(ci.Changes) != 1 || ci.Changes[0].Key != "apps/web/replicas" {
		t.Errorf("revision 3: %+v", ci)
	}
	// A write here: main is ahead, not diverged.
	a.put("f", "local", "1")
	a.call("POST", "/v1/repos/f/upstream/sync", nil, &u, "X-Request-Id", "sync-ahead")
	if u.Status.State != "ahead" || u.Status.Diverged {
		t.Errorf("ahead: %+v", u.Status)
	}
	if rev := a.auditRevision("sync-ahead"); rev != 0 {
		t.Errorf("a sync that brought nothing has revision %d on its audit line", rev)
	}
	// The upstream moves too: diverged, and nothing is overwritten.
	ours := a.head("f").Commit
	commitFile(t, work, "apps/web/replicas", "4", "upstream again")
	gitOut(t, work, "push", "-q", "origin", "main")
	u = a.sync("f")
	if u.Status.State != "diverged" || !u.Status.Diverged || a.head("f").Commit != ours {
		t.Errorf("diverged: %+v", u.Status)
	}
	if m := a.metrics(); !strings.Contains(m, `gitstate_upstream_diverged{mode="follow",repo="f"} 1`) ||
		!strings.Contains(m, `gitstate_upstream_syncs_total{mode="follow",repo="f",result="diverged"} 1`) {
		t.Errorf("metrics:\n%s", grep(m, "gitstate_upstream"))
	}
}

func TestFollowChecksSchemas(t *testing.T) {
	a := startNode(t, "admin-a")
	bare, work := bareRepo(t)
	commitFile(t, work, "apps/web/config.json", `{"port": 80}`, "first")
	gitOut(t, work, "push", "-q", "origin", "main")
	// A schema for the follower, through a transaction.
	var tx wire.Txn
	a.call("POST", "/v1/repos/default/txns", map[string]any{}, &tx)
	policy := "schemas:\n  - pattern: apps/*/config.json\n    schema: {type: object, required: [port]}\n"
	if st := a.call("PUT", "/v1/repos/default/txns/"+tx.ID+"/kv/.gitstate/policy.yaml", policy, nil); st != 200 {
		t.Fatalf("policy: %d", st)
	}
	if st := a.call("POST", "/v1/repos/default/txns/"+tx.ID+"/commit", nil, nil); st != 200 {
		t.Fatalf("commit policy: %d", st)
	}
	// main here and upstream differ from the start: make the upstream
	// continue main instead.
	gitOut(t, work, "fetch", "-q", a.url[:7]+"x:admin-a@"+a.url[7:]+"/git/default.git", "main")
	gitOut(t, work, "reset", "-q", "--hard", "FETCH_HEAD")
	commitFile(t, work, "apps/web/config.json", `{"host": "x"}`, "break the schema")
	gitOut(t, work, "push", "-q", "-f", "origin", "main")
	a.setUpstream("default", wire.UpstreamConfig{URL: "file://" + bare, Mode: "follow", Interval: wire.Duration(time.Hour)})
	before := a.head("default")
	u := a.sync("default")
	if u.Status.State != "refused" || !strings.Contains(u.Status.Message, "schema_violation") {
		t.Errorf("refused: %+v", u.Status)
	}
	if a.head("default") != before {
		t.Error("main moved")
	}
}

// TestMirrorAndFollowBetweenServers runs two gitstate servers: a mirrors
// its main to b over HTTP (b's push path, with b's checks), a's second repo
// follows b, and a write on b makes a's mirror diverge.
func TestMirrorAndFollowBetweenServers(t *testing.T) {
	a := startNode(t, "admin-a")
	b := startNode(t, "admin-b")
	a.put("default", "apps/web/replicas", "1")
	a.setUpstream("default", wire.UpstreamConfig{URL: b.url + "/git/default.git", Mode: "mirror", Token: "admin-b"})
	a.put("default", "apps/web/replicas", "2")
	last := a.put("default", "apps/api/replicas", "5")
	eventually(t, "b to hold a's main", func() bool { return b.head("default").Commit == last.Commit })
	if h := b.head("default"); h.Revision != last.Revision || b.get("default", "apps/api/replicas") != "5" {
		t.Errorf("b: %+v", h)
	}
	// a's second repo follows b, with basic credentials in the URL.
	if st := a.call("POST", "/v1/repos", wire.CreateRepoRequest{Name: "copy"}, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	u := a.setUpstream("copy", wire.UpstreamConfig{URL: strings.Replace(b.url, "http://", "http://bot:admin-b@", 1) + "/git/default.git",
		Mode: "follow", Interval: wire.Duration(time.Hour)})
	if strings.Contains(u.URL, "admin-b") || !u.Credentials || u.Username != "bot" {
		t.Errorf("follow upstream %+v", u)
	}
	if u := a.sync("copy"); u.Status.State != "in_sync" || a.head("copy").Commit != last.Commit {
		t.Fatalf("copy: %+v", u.Status)
	}
	// A write on b: the follower takes it; the mirror diverges.
	onB := b.put("default", "apps/db/replicas", "1")
	if u := a.sync("copy"); u.Status.State != "in_sync" || a.head("copy").Commit != onB.Commit || a.head("copy").Revision != onB.Revision {
		t.Errorf("copy after a write on b: %+v %+v", u.Status, a.head("copy"))
	}
	a.put("default", "apps/web/replicas", "3")
	eventually(t, "the mirror to diverge", func() bool { return a.upstream("default").Status.Diverged })
	if b.head("default").Commit != onB.Commit {
		t.Error("b overwritten")
	}
	// A restart keeps the upstreams and their sealed credentials.
	a.stop()
	a.start()
	onB2 := b.put("default", "apps/db/replicas", "2")
	if u := a.sync("copy"); u.Status.State != "in_sync" || a.head("copy").Commit != onB2.Commit {
		t.Errorf("after a restart: %+v", u.Status)
	}
}

func TestMirrorTxnBranches(t *testing.T) {
	a := startNode(t, "admin-a")
	bare, _ := bareRepo(t)
	a.put("default", "k", "1")
	a.setUpstream("default", wire.UpstreamConfig{URL: "file://" + bare, Mode: "mirror", PushTxns: true, Interval: wire.Duration(time.Hour)})
	var tx wire.Txn
	if st := a.call("POST", "/v1/repos/default/txns", map[string]any{"message": "try"}, &tx); st != 201 {
		t.Fatalf("begin: %d", st)
	}
	var res wire.WriteResult
	a.call("PUT", "/v1/repos/default/txns/"+tx.ID+"/kv/k", "2", &res)
	branch := "refs/heads/txn/" + tx.ID
	eventually(t, "the transaction's branch upstream", func() bool {
		out, _ := exec.Command("git", "-C", bare, "rev-parse", branch).Output()
		return strings.TrimSpace(string(out)) == res.Commit
	})
	if st := a.call("DELETE", "/v1/repos/default/txns/"+tx.ID, nil, nil); st != 200 {
		t.Fatalf("abort: %d", st)
	}
	a.sync("default")
	if out, err := exec.Command("git", "-C", bare, "rev-parse", "--verify", "-q", branch).Output(); err == nil {
		t.Errorf("aborted transaction's branch still upstream: %s", out)
	}
	if u := a.upstream("default"); u.Status.State != "in_sync" {
		t.Errorf("status %+v", u.Status)
	}
}

// TestFollowRefusesPlaintextSecrets: an upstream commit that puts plaintext
// in a secret's file is refused, like any write of it.
func TestFollowRefusesPlaintextSecrets(t *testing.T) {
	a := startNode(t, "admin-a")
	bare, work := bareRepo(t)
	commitFile(t, work, "db/password.sops.json", `{"password": "hunter2"}`, "oops")
	gitOut(t, work, "push", "-q", "origin", "main")
	if st := a.call("POST", "/v1/repos", wire.CreateRepoRequest{Name: "s"}, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	a.setUpstream("s", wire.UpstreamConfig{URL: bare, Mode: "follow", Interval: wire.Duration(time.Hour)})
	u := a.sync("s")
	if u.Status.State != "refused" || !strings.Contains(u.Status.Message, "not_encrypted") || a.head("s").Revision != 0 {
		t.Errorf("status %+v, head %+v", u.Status, a.head("s"))
	}
}

// TestUpstreamRefusesQueryString checks that an http(s) upstream URL with
// a query string (where GitLab-style ?private_token=... credentials go) is
// refused, without quoting it back, and that nothing is stored: the URL is
// kept in the clear and shown by the API and in the logs.
func TestUpstreamRefusesQueryString(t *testing.T) {
	a := startNode(t, "admin-a")
	for _, u := range []string{
		"http://host.example/tgt.git?tok=abc",
		"https://gitlab.example/g/r.git?private_token=glpat-secret",
		"https://host.example/r.git?",
		"https://host.example/r.git#frag",
	} {
		if st := a.call("PUT", "/v1/repos/default/upstream", wire.UpstreamConfig{URL: u, Mode: "mirror"}, nil); st != http.StatusBadRequest {
			t.Errorf("PUT upstream %q: %d, want 400", u, st)
		}
		if st := a.call("GET", "/v1/repos/default/upstream", nil, nil); st != http.StatusNotFound {
			t.Errorf("after PUT %q: GET upstream %d, want 404 (nothing stored)", u, st)
		}
	}
	// The error does not carry the credential on.
	resp := a.rawCall("PUT", "/v1/repos/default/upstream", wire.UpstreamConfig{URL: "https://h.example/r.git?private_token=glpat-secret", Mode: "mirror"})
	if !strings.Contains(resp, "query string") || strings.Contains(resp, "glpat-secret") {
		t.Errorf("error: %s, want it to name the query string and not quote it", resp)
	}
}

// rawCall sends a JSON request and returns the answer's body, whatever its
// status.
func (n *node) rawCall(method, path string, body any) string {
	n.t.Helper()
	j, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, n.url+path, bytes.NewReader(j))
	req.Header.Set("Authorization", "Bearer "+n.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

// TestMirrorLagCountsFromConfiguration checks that a mirror configured (or
// restarted) on a repo that already has revisions its upstream lacks
// reports how long it has lacked them, without waiting for a new commit.
func TestMirrorLagCountsFromConfiguration(t *testing.T) {
	a := startNode(t, "admin-a")
	a.put("default", "k1", "1")
	a.put("default", "k2", "2")
	a.setUpstream("default", wire.UpstreamConfig{URL: "file://" + filepath.Join(t.TempDir(), "nowhere.git"), Mode: "mirror"})
	lagging := func(when string) {
		t.Helper()
		eventually(t, when+": retrying", func() bool { return a.upstream("default").Status.Failures >= 1 })
		time.Sleep(50 * time.Millisecond)
		if st := a.upstream("default").Status; st.LagRevisions != 2 || st.LagSeconds <= 0 {
			t.Errorf("%s: status %+v, want 2 revisions lacking for some time", when, st)
		}
		m := grep(a.metrics(), `gitstate_upstream_lag_seconds{mode="mirror",repo="default"}`)
		if m == "" || strings.HasSuffix(m, " 0") {
			t.Errorf("%s: metric %q, want a lag above 0", when, m)
		}
	}
	lagging("configured")
	a.stop()
	a.start()
	lagging("restarted")
}
