package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/txn"
)

// gitAuth authenticates a token, given as a bearer token or as the
// password of HTTP basic authentication, the way the git client sends it.
type gitAuth map[string]*api.Principal

func (a gitAuth) Authenticate(r *http.Request) (*api.Principal, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		_, tok, ok = r.BasicAuth()
	}
	if p := a[tok]; ok && p != nil {
		return p, nil
	}
	return nil, gitstate.Errorf(gitstate.KindUnauthorized, "unauthorized", "unknown token")
}

var gitTokens = gitAuth{
	"alice-token":  {Name: "alice", Email: "alice@example.com", Scopes: []api.Scope{api.ScopeRead, api.ScopeWrite, api.ScopeTxn}, Repos: []string{"*"}},
	"bob-token":    {Name: "bob", Scopes: []api.Scope{api.ScopeRead, api.ScopeWrite, api.ScopeTxn}, Repos: []string{"*"}},
	"root-token":   {Name: "root", Scopes: []api.Scope{api.ScopeAdmin}, Repos: []string{"*"}},
	"reader-token": {Name: "reader", Scopes: []api.Scope{api.ScopeRead}, Repos: []string{"*"}},
	"prefix-token": {Name: "team", Scopes: []api.Scope{api.ScopeRead, api.ScopeWrite}, Repos: []string{"*"}, Prefixes: []string{"team/"}},
}

// auditLog keeps the audit events of a test server.
type auditLog struct {
	mu  sync.Mutex
	evs []api.AuditEvent
}

func (a *auditLog) Record(_ context.Context, ev api.AuditEvent) error {
	a.mu.Lock()
	a.evs = append(a.evs, ev)
	a.mu.Unlock()
	return nil
}

func (a *auditLog) actions(action string) []api.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []api.AuditEvent
	for _, ev := range a.evs {
		if ev.Action == action {
			out = append(out, ev)
		}
	}
	return out
}

// gitServer is a server with transactions, tokens for git and an audit
// log, over a store in a temporary directory.
type gitServer struct {
	t     *testing.T
	url   string
	st    *storage.Store
	txns  *txn.Manager
	audit *auditLog
	home  string
}

func newGitServer(t *testing.T) *gitServer {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir := t.TempDir()
	st, err := storage.Open(context.Background(), dir, storage.Options{MaxValueSize: testMaxValue})
	if err != nil {
		t.Fatal(err)
	}
	txns := txn.NewManager(st, txn.Options{})
	if err := txns.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	al := &auditLog{}
	hs := httptest.NewServer(api.New(api.Options{Store: st, Auth: gitTokens, Txns: txns, Auditor: al, MaxValueSize: testMaxValue}))
	gs := &gitServer{t: t, url: hs.URL, st: st, txns: txns, audit: al, home: t.TempDir()}
	t.Cleanup(func() {
		hs.Close()
		txns.Close()
		names := st.Repos()
		if err := st.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		for _, n := range names {
			gitDir := filepath.Join(dir, "repos", n+".git")
			out, err := exec.Command("git", "-C", gitDir, "fsck", "--strict", "--no-progress").CombinedOutput()
			if err != nil || len(fsckProblems(out)) > 0 {
				t.Errorf("git fsck --strict %s: %v\n%s", gitDir, err, out)
			}
		}
	})
	return gs
}

// remote returns the Git URL of a repo with token as the basic password.
func (gs *gitServer) remote(repo, token string) string {
	u, _ := url.Parse(gs.url)
	u.User = url.UserPassword("x", token)
	u.Path = "/git/" + repo + ".git"
	return u.String()
}

// git runs the git CLI in dir (empty: none) and returns its combined
// output and error.
func (gs *gitServer) git(dir string, args ...string) (string, error) {
	gs.t.Helper()
	full := append([]string{"-c", "user.name=Pat", "-c", "user.email=pat@example.com", "-c", "init.defaultBranch=main"}, args...)
	if dir != "" {
		full = append([]string{"-C", dir}, full...)
	}
	cmd := exec.Command("git", full...)
	cmd.Env = append(os.Environ(), "HOME="+gs.home, "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_ASKPASS=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (gs *gitServer) mustGit(dir string, args ...string) string {
	gs.t.Helper()
	out, err := gs.git(dir, args...)
	if err != nil {
		gs.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// clone clones repo as token into a new directory.
func (gs *gitServer) clone(repo, token string, extra ...string) string {
	gs.t.Helper()
	dir := filepath.Join(gs.t.TempDir(), "clone")
	gs.mustGit("", append(append([]string{"clone", "-q"}, extra...), gs.remote(repo, token), dir)...)
	return dir
}

// api sends a JSON request as token and decodes the answer into out.
func (gs *gitServer) api(token, method, path string, body, out any) int {
	gs.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, gs.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		gs.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if s, ok := out.(*string); ok {
			*s = string(data)
		} else if err := json.Unmarshal(data, out); err != nil {
			gs.t.Fatalf("%s %s: %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

func (gs *gitServer) put(key, value string) wire.WriteResult {
	gs.t.Helper()
	var res wire.WriteResult
	if st := gs.api("alice-token", "PUT", "/v1/repos/default/kv/"+key, value, &res); st != 200 {
		gs.t.Fatalf("put %s: %d", key, st)
	}
	return res
}

func (gs *gitServer) value(key string) (string, int) {
	gs.t.Helper()
	var v string
	st := gs.api("alice-token", "GET", "/v1/repos/default/kv/"+key, nil, &v)
	return v, st
}

func writeFile(t *testing.T, dir, p, content string) {
	t.Helper()
	full := filepath.Join(dir, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, dir, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGitFetch(t *testing.T) {
	gs := newGitServer(t)
	gs.put("apps/web/replicas", "2")
	gs.put("apps/api/replicas", "3")
	gs.put("apps/web/replicas", "4")
	var tx wire.Txn
	if st := gs.api("alice-token", "POST", "/v1/repos/default/txns", map[string]any{"message": "try"}, &tx); st != 201 {
		t.Fatalf("begin: %d", st)
	}
	for _, proto := range []string{"0", "2"} {
		t.Run("protocol v"+proto, func(t *testing.T) {
			dir := gs.clone("default", "alice-token", "-c", "protocol.version="+proto)
			if got := readFile(t, dir, "apps/web/replicas"); got != "4" {
				t.Errorf("cloned value %q", got)
			}
			repo, _ := gs.st.Repo("default")
			if n := strings.TrimSpace(gs.mustGit(dir, "rev-list", "--count", "HEAD")); n != fmt.Sprint(repo.Head().Revision) {
				t.Errorf("%s commits", n)
			}
			gs.put("apps/db/replicas", "1")
			gs.mustGit(dir, "-c", "protocol.version="+proto, "pull", "-q", "--ff-only")
			if got := readFile(t, dir, "apps/db/replicas"); got != "1" {
				t.Errorf("pulled value %q", got)
			}
			ls := gs.mustGit("", "-c", "protocol.version="+proto, "ls-remote", gs.remote("default", "reader-token"))
			if !strings.Contains(ls, "refs/heads/main") || !strings.Contains(ls, "refs/heads/txn/"+tx.ID) || !strings.Contains(ls, "HEAD") {
				t.Errorf("ls-remote:\n%s", ls)
			}
			if strings.Contains(ls, "refs/gitstate/") {
				t.Errorf("ls-remote shows the server's records:\n%s", ls)
			}
		})
	}
	t.Run("shallow", func(t *testing.T) {
		dir := gs.clone("default", "reader-token", "--depth", "1")
		if n := strings.TrimSpace(gs.mustGit(dir, "rev-list", "--count", "HEAD")); n != "1" {
			t.Errorf("shallow clone has %s commits", n)
		}
		gs.put("apps/web/replicas", "5")
		gs.mustGit(dir, "fetch", "-q", "--depth", "1")
		gs.mustGit(dir, "reset", "-q", "--hard", "origin/main")
		if got := readFile(t, dir, "apps/web/replicas"); got != "5" {
			t.Errorf("after a shallow fetch %q", got)
		}
		gs.mustGit(dir, "fetch", "-q", "--unshallow")
	})
	t.Run("partial", func(t *testing.T) {
		dir := gs.clone("default", "reader-token", "--filter=blob:none", "--no-checkout")
		// No blob was sent; checking out fetches those it needs, by id.
		if out := gs.mustGit(dir, "rev-list", "--objects", "--missing=print", "HEAD"); !strings.Contains(out, "?") {
			t.Errorf("blobs were sent:\n%s", out)
		}
		gs.mustGit(dir, "checkout", "-q", "main")
		if got := readFile(t, dir, "apps/web/replicas"); got != "5" {
			t.Errorf("partial clone value %q", got)
		}
		old := strings.TrimSpace(gs.mustGit(dir, "rev-parse", "HEAD~3"))
		if out := gs.mustGit(dir, "show", old+":apps/web/replicas"); out != "2" {
			t.Errorf("old blob fetched lazily: %q", out)
		}
	})
	t.Run("bearer", func(t *testing.T) {
		u := gs.url + "/git/default.git"
		dir := filepath.Join(t.TempDir(), "c")
		gs.mustGit("", "-c", "http.extraHeader=Authorization: Bearer reader-token", "clone", "-q", u, dir)
	})
	t.Run("refused", func(t *testing.T) {
		for name, c := range map[string]struct {
			remote string
			want   string
		}{
			"no token":     {gs.url + "/git/default.git", "terminal prompts disabled"},
			"bad token":    {gs.remote("default", "nope"), "Authentication failed"},
			"prefix token": {gs.remote("default", "prefix-token"), "cannot use Git"},
			"no repo":      {gs.remote("nope", "reader-token"), "not found"},
		} {
			out, err := gs.git("", "ls-remote", c.remote)
			if err == nil || !strings.Contains(out, c.want) {
				t.Errorf("%s: %v\n%s", name, err, out)
			}
		}
	})
	if evs := gs.audit.actions("git.fetch"); len(evs) > 0 {
		t.Errorf("fetches audited as writes: %+v", evs[0])
	}
}

func TestGitPush(t *testing.T) {
	gs := newGitServer(t)
	gs.put("apps/web/replicas", "1")
	dir := gs.clone("default", "alice-token")
	writeFile(t, dir, "apps/web/replicas", "2")
	gs.mustGit(dir, "commit", "-qam", "scale web")
	writeFile(t, dir, "apps/api/config.json", `{"port": 80}`)
	gs.mustGit(dir, "add", ".")
	gs.mustGit(dir, "commit", "-qm", "add api")
	head := strings.TrimSpace(gs.mustGit(dir, "rev-parse", "HEAD"))
	repo, _ := gs.st.Repo("default")
	changed := repo.Changed()
	out := gs.mustGit(dir, "push", "origin", "main")
	if !strings.Contains(out, "main is at revision 3") {
		t.Errorf("push output:\n%s", out)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Error("watchers not woken")
	}
	// The pushed commits are revisions 2 and 3, with their ids.
	var ci wire.CommitInfo
	gs.api("alice-token", "GET", "/v1/repos/default/commits/3", nil, &ci)
	if ci.Commit != head || ci.Author != "Pat" || len(ci.Changes) != 1 || ci.Changes[0].Key != "apps/api/config.json" {
		t.Errorf("revision 3: %+v", ci)
	}
	if v, _ := gs.value("apps/web/replicas"); v != "2" {
		t.Errorf("apps/web/replicas = %q", v)
	}
	// The push is in the audit log, with its keys and revision.
	evs := gs.audit.actions("git.push")
	if len(evs) != 1 || evs[0].Status != 200 || evs[0].Revision != 3 || evs[0].Principal.Name != "alice" ||
		!slices.Contains(evs[0].Keys, "apps/api/config.json") || evs[0].Repo != "default" {
		t.Errorf("audit: %+v", evs)
	}
	// An API write, then the clone pulls it and pushes again on top.
	gs.put("apps/web/replicas", "3")
	gs.mustGit(dir, "pull", "-q", "--rebase")
	writeFile(t, dir, "apps/db/replicas", "1")
	gs.mustGit(dir, "add", ".")
	gs.mustGit(dir, "commit", "-qm", "db")
	gs.mustGit(dir, "push", "-q", "origin", "main")
	if h := repo.Head(); h.Revision != 5 {
		t.Errorf("head at %d", h.Revision)
	}
	// A token with neither write nor txn cannot push, and is told which
	// scope would do.
	out, err := gs.git(dir, "push", gs.remote("default", "reader-token"), "main")
	if err == nil || !strings.Contains(out, `"write" to push to main`) || !strings.Contains(out, `"txn" to push to a transaction's branch`) {
		t.Errorf("reader push: %v\n%s", err, out)
	}
}

func TestGitPushRefusals(t *testing.T) {
	gs := newGitServer(t)
	gs.put("apps/web/replicas", "1")
	// An administrator sets the policy through a transaction.
	var tx wire.Txn
	gs.api("root-token", "POST", "/v1/repos/default/txns", map[string]any{"message": "policy"}, &tx)
	policy := "protected:\n  - prefix: prod/\nschemas:\n  - pattern: apps/*/config.json\n    schema: {type: object, required: [port]}\n"
	if st := gs.api("root-token", "PUT", "/v1/repos/default/txns/"+tx.ID+"/kv/.gitstate/policy.yaml", policy, nil); st != 200 {
		t.Fatalf("policy put: %d", st)
	}
	if st := gs.api("root-token", "POST", "/v1/repos/default/txns/"+tx.ID+"/commit", nil, nil); st != 200 {
		t.Fatalf("policy commit: %d", st)
	}
	repo, _ := gs.st.Repo("default")
	dir := gs.clone("default", "alice-token")
	base := strings.TrimSpace(gs.mustGit(dir, "rev-parse", "HEAD"))
	for name, c := range map[string]struct {
		files map[string]string
		want  []string
	}{
		"protected prefix": {map[string]string{"prod/db": "x"}, []string{"protected prefix", "prod/db"}},
		"reserved key":     {map[string]string{".gitstate/policy.yaml": "protected: []\n"}, []string{"remote rejected", ".gitstate/policy.yaml"}},
		"schema":           {map[string]string{"apps/api/config.json": `{"host": "x"}`}, []string{"schema_violation", "apps/api/config.json", "port"}},
		"too large":        {map[string]string{"big": strings.Repeat("x", testMaxValue+1)}, []string{"value_too_large"}},
		"bad key":          {map[string]string{`a\b`: "x"}, []string{"invalid_key", "backslash"}},
		"secret scope":     {map[string]string{"db/password.sops.json": `{"password": "hunter2"}`}, []string{"secrets:write"}},
	} {
		t.Run(name, func(t *testing.T) {
			gs.mustGit(dir, "reset", "-q", "--hard", base)
			for p, v := range c.files {
				writeFile(t, dir, p, v)
			}
			gs.mustGit(dir, "add", "-A")
			gs.mustGit(dir, "commit", "-qm", name)
			before := repo.Head()
			out, err := gs.git(dir, "push", "origin", "HEAD:main")
			if err == nil {
				t.Fatalf("push accepted:\n%s", out)
			}
			t.Logf("git push says:\n%s", out)
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if repo.Head() != before {
				t.Errorf("head moved")
			}
		})
	}
	// Even with every scope, a secret's file must hold an encrypted
	// document: no plaintext where a secret is expected.
	gs.mustGit(dir, "reset", "-q", "--hard", base)
	writeFile(t, dir, "db/password.sops.json", `{"password": "hunter2"}`)
	gs.mustGit(dir, "add", "-A")
	gs.mustGit(dir, "commit", "-qm", "plaintext secret")
	out, err := gs.git(dir, "push", gs.remote("default", "root-token"), "HEAD:main")
	if err == nil || !strings.Contains(out, "not_encrypted") {
		t.Errorf("plaintext secret: %v\n%s", err, out)
	}
	// A forced push that rewrites main is refused by the server.
	gs.mustGit(dir, "reset", "-q", "--hard", base)
	gs.mustGit(dir, "commit", "-q", "--amend", "-m", "rewritten")
	out, err = gs.git(dir, "push", "-f", "origin", "HEAD:main")
	if err == nil || !strings.Contains(out, "non-fast-forward") {
		t.Errorf("forced push: %v\n%s", err, out)
	}
	// Other branches, and deletions, are refused.
	out, err = gs.git(dir, "push", "origin", "HEAD:refs/heads/feature")
	if err == nil || !strings.Contains(out, "remote rejected") {
		t.Errorf("feature branch: %v\n%s", err, out)
	}
	out, err = gs.git(dir, "push", "origin", ":main")
	if err == nil {
		t.Errorf("delete main accepted:\n%s", out)
	}
	// Refusals are audited with the refusal's status.
	evs := gs.audit.actions("git.push")
	if len(evs) != 9 { // the client itself refuses to delete main
		t.Errorf("%d pushes audited, want 9", len(evs))
	}
	for _, ev := range evs {
		if ev.Status < 400 || ev.Revision != 0 {
			t.Errorf("refused push audited as %d at revision %d", ev.Status, ev.Revision)
		}
		if ev.Status == http.StatusForbidden && len(ev.Keys) == 1 && ev.Keys[0] == "prod/db" {
			evs = nil
		}
	}
	if evs != nil {
		t.Errorf("no audit event names prod/db: %+v", evs)
	}
	if refs := repo.Backend().Refs("refs/heads/"); len(refs) != 1 {
		t.Errorf("refs: %v", refs)
	}
}

func TestGitPushTxn(t *testing.T) {
	gs := newGitServer(t)
	gs.put("apps/web/replicas", "1")
	var tx wire.Txn
	if st := gs.api("alice-token", "POST", "/v1/repos/default/txns", map[string]any{"message": "scale"}, &tx); st != 201 {
		t.Fatalf("begin: %d", st)
	}
	dir := gs.clone("default", "alice-token")
	gs.mustGit(dir, "checkout", "-q", "txn/"+tx.ID)
	writeFile(t, dir, "apps/web/replicas", "9")
	gs.mustGit(dir, "commit", "-qam", "scale in txn")
	gs.mustGit(dir, "push", "-q", "origin", "txn/"+tx.ID)
	var v string
	gs.api("alice-token", "GET", "/v1/repos/default/txns/"+tx.ID+"/kv/apps/web/replicas", nil, &v)
	if v != "9" {
		t.Errorf("in the transaction: %q", v)
	}
	if v, _ := gs.value("apps/web/replicas"); v != "1" {
		t.Errorf("main changed: %q", v)
	}
	// Someone else cannot push into alice's transaction.
	writeFile(t, dir, "apps/web/replicas", "10")
	gs.mustGit(dir, "commit", "-qam", "more")
	out, err := gs.git(dir, "push", gs.remote("default", "bob-token"), "txn/"+tx.ID)
	if err == nil || !strings.Contains(out, "belongs to alice") {
		t.Errorf("bob's push: %v\n%s", err, out)
	}
	// Nor push to a transaction that does not exist.
	out, err = gs.git(dir, "push", "origin", "HEAD:refs/heads/txn/zzzzzzzzzzzz")
	if err == nil || !strings.Contains(out, "does not open a transaction") {
		t.Errorf("new txn branch: %v\n%s", err, out)
	}
	// Committed through the API, the pushed change reaches main.
	gs.mustGit(dir, "push", "-q", "origin", "txn/"+tx.ID)
	var res wire.CommitResult
	if st := gs.api("alice-token", "POST", "/v1/repos/default/txns/"+tx.ID+"/commit", nil, &res); st != 200 {
		t.Fatalf("commit: %d", st)
	}
	if v, _ := gs.value("apps/web/replicas"); v != "10" {
		t.Errorf("after commit: %q", v)
	}
	// A closed transaction takes no more pushes.
	out, err = gs.git(dir, "push", "origin", "HEAD:refs/heads/txn/"+tx.ID)
	if err == nil {
		t.Errorf("push to a committed transaction accepted:\n%s", out)
	}
}

// TestGitPushRacesAPI pushes from several clones while API writes land on
// main: every push either goes in or is refused (the client pulls with
// --rebase and tries again), and every acknowledged write survives.
func TestGitPushRacesAPI(t *testing.T) {
	gs := newGitServer(t)
	gs.put("seed", "0")
	const pushers, pushes, apiWrites = 3, 4, 40
	clones := make([]string, pushers)
	for i := range clones {
		clones[i] = gs.clone("default", "alice-token")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	refusals := 0
	acked := map[string]string{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range apiWrites {
			key := fmt.Sprintf("api/%02d", i)
			var res wire.WriteResult
			if st := gs.api("bob-token", "PUT", "/v1/repos/default/kv/"+key, fmt.Sprint(i), &res); st == 200 {
				mu.Lock()
				acked[key] = fmt.Sprint(i)
				mu.Unlock()
			}
		}
	}()
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := clones[p]
			for n := range pushes {
				key := fmt.Sprintf("git/%d/%d", p, n)
				writeFile(t, dir, key, fmt.Sprint(p*100+n))
				if out, err := gs.git(dir, "add", "."); err != nil {
					t.Errorf("add: %s", out)
					return
				}
				if out, err := gs.git(dir, "commit", "-qm", key); err != nil {
					t.Errorf("commit: %s", out)
					return
				}
				for attempt := 0; ; attempt++ {
					out, err := gs.git(dir, "push", "origin", "main")
					if err == nil {
						break
					}
					if !strings.Contains(out, "non-fast-forward") && !strings.Contains(out, "fetch first") {
						t.Errorf("push refused for another reason:\n%s", out)
						return
					}
					mu.Lock()
					refusals++
					mu.Unlock()
					if attempt > 50 {
						t.Errorf("push never went in")
						return
					}
					if out, err := gs.git(dir, "pull", "-q", "--rebase", "origin", "main"); err != nil {
						t.Errorf("pull: %s", out)
						return
					}
				}
				mu.Lock()
				acked[key] = fmt.Sprint(p*100 + n)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	repo, _ := gs.st.Repo("default")
	for k, v := range acked {
		if got, st := gs.value(k); st != 200 || got != v {
			t.Errorf("%s = %q (%d), want %q", k, got, st, v)
		}
	}
	// One revision per API write and per pushed commit (linear history).
	if want := int64(1 + apiWrites + pushers*pushes); repo.Head().Revision != want {
		t.Errorf("head at revision %d, want %d", repo.Head().Revision, want)
	}
	t.Logf("%d pushes refused and retried", refusals)
}

// TestGitPushStale sends a push whose old value went stale between the
// advertisement and the push (an API write in between): the server refuses
// it with non-fast-forward and changes nothing.
func TestGitPushStale(t *testing.T) {
	gs := newGitServer(t)
	gs.put("k", "1")
	dir := gs.clone("default", "alice-token")
	old := strings.TrimSpace(gs.mustGit(dir, "rev-parse", "HEAD"))
	writeFile(t, dir, "mine", "x")
	gs.mustGit(dir, "add", ".")
	gs.mustGit(dir, "commit", "-qm", "mine")
	head := strings.TrimSpace(gs.mustGit(dir, "rev-parse", "HEAD"))
	cmd := exec.Command("git", "-C", dir, "pack-objects", "--stdout", "--revs", "--thin", "-q")
	cmd.Stdin = strings.NewReader(head + "\n^" + old + "\n")
	pack, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	gs.put("k", "2") // main moves after the client read it
	var body bytes.Buffer
	line := old + " " + head + " refs/heads/main\x00report-status side-band-64k\n"
	fmt.Fprintf(&body, "%04x%s0000", len(line)+4, line)
	body.Write(pack)
	req, _ := http.NewRequest("POST", gs.url+"/git/default.git/git-receive-pack", &body)
	req.Header.Set("Content-Type", "application/x-git-receive-pack-request")
	req.Header.Set("Authorization", "Bearer alice-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(data, []byte("ng refs/heads/main non-fast-forward")) || !bytes.Contains(data, []byte("unpack ok")) {
		t.Errorf("%d %q", resp.StatusCode, data)
	}
	repo, _ := gs.st.Repo("default")
	if repo.Head().Revision != 2 {
		t.Errorf("head at %d", repo.Head().Revision)
	}
	if v, _ := gs.value("k"); v != "2" {
		t.Errorf("k = %q", v)
	}
}

// importRepo starts an import of source as repo (it must be accepted) and
// returns its status once it ends.
func (gs *gitServer) importRepo(repo, source string) wire.ImportStatus {
	gs.t.Helper()
	req := wire.CreateRepoRequest{Name: repo, ImportFrom: source}
	if code := gs.api("root-token", "POST", "/v1/repos", req, nil); code != http.StatusAccepted {
		gs.t.Fatalf("import of %s: %d", source, code)
	}
	return gs.waitImport(repo)
}

// waitImport polls an import's status until it ends.
func (gs *gitServer) waitImport(repo string) wire.ImportStatus {
	gs.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st wire.ImportStatus
		if code := gs.api("reader-token", "GET", "/v1/repos/"+repo+"/import", nil, &st); code != 200 {
			gs.t.Fatalf("import status: %d", code)
		}
		if st.State != "running" {
			return st
		}
		if time.Now().After(deadline) {
			gs.t.Fatalf("import still running: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestImportAPI(t *testing.T) {
	gs := newGitServer(t)
	gs.put("apps/web/replicas", "1")
	gs.put("apps/web/replicas", "2")
	// Import the server's own repo through its Git endpoint, with the token
	// in the URL.
	var st wire.ImportStatus
	req := wire.CreateRepoRequest{Name: "copy", ImportFrom: gs.remote("default", "reader-token")}
	if code := gs.api("root-token", "POST", "/v1/repos", req, &st); code != http.StatusAccepted {
		t.Fatalf("import: %d", code)
	}
	if strings.Contains(st.Source, "reader-token") {
		t.Errorf("status shows the credentials: %s", st.Source)
	}
	st = gs.waitImport("copy")
	if st.State != "done" || st.Report == nil || st.Report.Revisions != 2 || st.Branch != "main" {
		t.Fatalf("import: %+v", st)
	}
	var v string
	if code := gs.api("reader-token", "GET", "/v1/repos/copy/kv/apps/web/replicas", nil, &v); code != 200 || v != "2" {
		t.Errorf("imported value %q (%d)", v, code)
	}
	src, _ := gs.st.Repo("default")
	dst, _ := gs.st.Repo("copy")
	if src.Head().Commit != dst.Head().Commit {
		t.Errorf("commit ids differ: %s, %s", src.Head().Commit, dst.Head().Commit)
	}
	// A clone of the import pushes back to the original (same history).
	dir := gs.clone("copy", "alice-token")
	writeFile(t, dir, "apps/web/replicas", "3")
	gs.mustGit(dir, "commit", "-qam", "from the copy")
	gs.mustGit(dir, "push", "-q", gs.remote("default", "alice-token"), "main")
	if v, _ := gs.value("apps/web/replicas"); v != "3" {
		t.Errorf("after push from the copy: %q", v)
	}
	// Failures: a name taken, a bad source, a source that is not there.
	if code := gs.api("root-token", "POST", "/v1/repos", wire.CreateRepoRequest{Name: "copy", ImportFrom: "/nowhere"}, nil); code != http.StatusConflict {
		t.Errorf("taken name: %d", code)
	}
	if code := gs.api("root-token", "POST", "/v1/repos", wire.CreateRepoRequest{Name: "x", ImportFrom: "ext::sh"}, nil); code != http.StatusBadRequest {
		t.Errorf("ext:: source: %d", code)
	}
	if code := gs.api("alice-token", "POST", "/v1/repos", wire.CreateRepoRequest{Name: "x", ImportFrom: "/nowhere"}, nil); code != http.StatusForbidden {
		t.Errorf("import without admin: %d", code)
	}
	if st := gs.importRepo("gone", filepath.Join(t.TempDir(), "none")); st.State != "failed" || st.Error == "" {
		t.Errorf("import of nothing: %+v", st)
	}
	if code := gs.api("reader-token", "GET", "/v1/repos/gone", nil, nil); code != http.StatusNotFound {
		t.Errorf("failed import left a repo: %d", code)
	}
	if code := gs.api("reader-token", "GET", "/v1/repos/default/import", nil, nil); code != http.StatusNotFound {
		t.Errorf("status of a repo never imported: %d", code)
	}
}

// TestImportSubmodules checks, over HTTP, that the submodules of an
// imported repo stay in Git and are not keys: not read (404, not 500), not
// listed, not in diffs nor in commits' changes; a put replaces one with a
// value.
func TestImportSubmodules(t *testing.T) {
	gs := newGitServer(t)
	src := filepath.Join(t.TempDir(), "src")
	gs.mustGit("", "init", "-q", src)
	writeFile(t, src, "a", "1")
	gs.mustGit(src, "add", "a")
	// A gitlink to a commit that is not here, then one to a commit that is.
	gs.mustGit(src, "update-index", "--add", "--cacheinfo", "160000,1234567890abcdef1234567890abcdef12345678,vendor/lib")
	gs.mustGit(src, "commit", "-qm", "a and vendor/lib")
	first := strings.TrimSpace(gs.mustGit(src, "rev-parse", "HEAD"))
	gs.mustGit(src, "update-index", "--add", "--cacheinfo", "160000,"+first+",vendor/own")
	gs.mustGit(src, "commit", "-qm", "vendor/own")

	if st := gs.importRepo("subs", "file://"+src); st.State != "done" || st.Report.SubmoduleCount != 2 {
		t.Fatalf("import: %+v", st)
	}
	for _, key := range []string{"vendor/lib", "vendor/own"} {
		for _, rev := range []string{"", "?revision=1"} {
			if code := gs.api("reader-token", "GET", "/v1/repos/subs/kv/"+key+rev, nil, nil); code != http.StatusNotFound {
				t.Errorf("GET %s%s: %d, want 404", key, rev, code)
			}
		}
	}
	for _, q := range []string{"?prefix=", "?values=true", "?revision=1&values=true"} {
		var l wire.ListResponse
		if code := gs.api("reader-token", "GET", "/v1/repos/subs/kv"+q, nil, &l); code != 200 || len(l.Items) != 1 || l.Items[0].Key != "a" {
			t.Errorf("list %s: %d %+v", q, code, l.Items)
		}
	}
	var d wire.DiffResponse
	if code := gs.api("reader-token", "GET", "/v1/repos/subs/diff?from=0", nil, &d); code != 200 || len(d.Changes) != 1 || d.Changes[0].Key != "a" {
		t.Errorf("diff: %d %+v", code, d.Changes)
	}
	var cl wire.CommitList
	if code := gs.api("reader-token", "GET", "/v1/repos/subs/commits", nil, &cl); code != 200 || len(cl.Commits) != 2 ||
		len(cl.Commits[0].Changes) != 0 || len(cl.Commits[1].Changes) != 1 || cl.Commits[1].Changes[0].Key != "a" {
		t.Errorf("commits: %d %+v", code, cl.Commits)
	}
	var res wire.WriteResult
	if code := gs.api("alice-token", "PUT", "/v1/repos/subs/kv/vendor/lib", "now a value", &res); code != 200 {
		t.Fatalf("put vendor/lib: %d", code)
	}
	var v string
	if code := gs.api("reader-token", "GET", "/v1/repos/subs/kv/vendor/lib", nil, &v); code != 200 || v != "now a value" {
		t.Errorf("vendor/lib after the put: %q (%d)", v, code)
	}
}

// TestImportRollback checks, over HTTP, that a revert and a rollback
// across an import keep the paths the API cannot address (a path that is
// not a valid key, a submodule) as they are rather than failing on them.
func TestImportRollback(t *testing.T) {
	gs := newGitServer(t)
	src := filepath.Join(t.TempDir(), "src")
	gs.mustGit("", "init", "-q", src)
	writeFile(t, src, "a", "1")
	gs.mustGit(src, "add", "a")
	gs.mustGit(src, "commit", "-qm", "a")
	writeFile(t, src, "b", "1")
	gs.mustGit(src, "add", "b")
	blob := strings.TrimSpace(gs.mustGit(src, "hash-object", "-w", filepath.Join(src, "b")))
	gs.mustGit(src, "update-index", "--add", "--cacheinfo", "100644,"+blob+`,bad\key`)
	gs.mustGit(src, "update-index", "--add", "--cacheinfo", "160000,1234567890abcdef1234567890abcdef12345678,vendor/lib")
	gs.mustGit(src, "commit", "-qm", "b, bad\\key and vendor/lib")

	if st := gs.importRepo("imp", "file://"+src); st.State != "done" || st.Report.InvalidKeyCount != 1 {
		t.Fatalf("import: %+v", st)
	}
	// Revision 2 added b and the paths that are not keys.
	if code := gs.api("alice-token", "POST", "/v1/repos/imp/revert", map[string]any{"revision": 2}, nil); code != 200 {
		t.Fatalf("revert 2: %d", code)
	}
	if _, code := gs.kv("imp", "b"); code != http.StatusNotFound {
		t.Errorf("b after the revert: %d", code)
	}
	if code := gs.api("alice-token", "PUT", "/v1/repos/imp/kv/a", "2", nil); code != 200 {
		t.Fatalf("put a: %d", code)
	}
	if code := gs.api("alice-token", "POST", "/v1/repos/imp/rollback", map[string]any{"to": 1}, nil); code != 200 {
		t.Fatalf("rollback to 1: %d", code)
	}
	if v, code := gs.kv("imp", "a"); code != 200 || v != "1" {
		t.Errorf("a after the rollback: %q (%d)", v, code)
	}
	dir := gs.clone("imp", "alice-token", "--no-checkout")
	names := strings.Split(gs.mustGit(dir, "ls-tree", "-r", "-z", "--name-only", "HEAD"), "\x00")
	if !slices.Contains(names, `bad\key`) || !slices.Contains(names, "vendor/lib") || slices.Contains(names, "b") {
		t.Errorf("paths at head: %q, want bad\\key and vendor/lib kept, b gone", names)
	}
}

// kv returns a key's value in repo, as a reader, and the status.
func (gs *gitServer) kv(repo, key string) (string, int) {
	gs.t.Helper()
	var v string
	code := gs.api("reader-token", "GET", "/v1/repos/"+repo+"/kv/"+key, nil, &v)
	return v, code
}
