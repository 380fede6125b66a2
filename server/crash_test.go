package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/server"
)

// The server's kill -9 test: TestServerKill9 runs this test binary again
// as a child (TestServerCrashHelper) that serves a data directory over
// loopback, drives it over HTTP with direct writes, deletes and branch
// transactions (writes in them, approvals, commits, aborts), and kills it
// with SIGKILL in the middle. The next child, on the same directory, must
// then show every acknowledged change, and of each change in flight at the
// kill either all or nothing: a transaction committed with all its keys on
// main, or still open with none. The Git repository the kill left must
// pass git fsck --strict. Some rounds delete the index before the restart
// (it is rebuilt from Git), some kill a child again while it recovers.

const (
	serverCrashDirEnv   = "GITSTATE_TEST_SERVER_CRASH_DIR"
	serverCrashAdminEnv = "GITSTATE_TEST_SERVER_CRASH_ADMIN"
)

// TestServerCrashHelper is the child of TestServerKill9; it does nothing on
// its own. It prints "READY <url>" once the server serves.
func TestServerCrashHelper(t *testing.T) {
	dir := os.Getenv(serverCrashDirEnv)
	if dir == "" {
		t.Skip("the child of TestServerKill9")
	}
	cfg := server.DefaultConfig()
	cfg.DataDir = dir
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminToken = os.Getenv(serverCrashAdminEnv)
	cfg.Limits.TokenRate = 0 // the storm is the point
	cfg.Limits.FailRate = 0  // and revoked tokens are tried
	cfg.Banner = io.Discard
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		os.Exit(2)
	}
	fmt.Println("READY", srv.URL())
	time.Sleep(time.Minute)
	os.Exit(3)
}

// crashModel is what the parent knows the server acknowledged, and what it
// sent without an answer.
type crashModel struct {
	mu sync.Mutex
	// Direct writes: each key is put once, and maybe deleted once.
	put      map[string]string // key → value, put acknowledged
	putMaybe map[string]string // put sent, no answer
	deleted  map[string]bool   // key → delete acknowledged (true) or sent without an answer (false)
	txns     map[string]*crashTxn
	// Secrets: each key is put once; the plaintexts must never be found
	// in the data directory.
	secrets      map[string]string // acknowledged
	secretsMaybe map[string]string // sent, no answer
	// Webhooks: ids of those whose creation was acknowledged.
	webhooks map[string]bool
	// Tokens made (acknowledged), by secret, with their revocation's
	// outcome: a revoked token must stay revoked, a live one must keep
	// working.
	tokens map[string]crashOutcome
	// Repos whose creation was acknowledged, each with the one key then
	// written in it (acknowledged, or "" if not).
	repos map[string]string
	// Imports accepted (202), with what the first restart after them
	// found: done (the repo is there) or interrupted (it is not).
	imports map[string]*crashImport
	// importFrom is a local Git repository to import.
	importFrom string
	// pushes counts the git pushes acknowledged.
	pushes int
	// batches are the atomic batches sent (POST /commits): three values
	// and a secret each, all or nothing.
	batches []*crashBatch
	// kvRevs are the revisions of the acknowledged writes under kv/: the
	// webhook on kv/ must deliver every one of them.
	kvRevs []int64
	// approver is a token the administrator made (acknowledged): it must
	// work in every later round.
	approver string
}

// crashBatch is one atomic batch.
type crashBatch struct {
	keys              map[string]string
	secret, plaintext string
	outcome           crashOutcome // inFlight or acked
}

// crashImport is an import the server accepted.
type crashImport struct {
	round   int  // in which it was accepted
	checked bool // seen after a restart
	done    bool // seen done
}

// importsIn counts the imports accepted in round.
func (m *crashModel) importsIn(round int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, im := range m.imports {
		if im.round == round {
			n++
		}
	}
	return n
}

// count returns the length of a map of m's, under its lock.
func (m *crashModel) count(of map[string]bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(of)
}

// crashTxn is one transaction as the parent saw it.
type crashTxn struct {
	id        string
	keys      map[string]string // written in it, acknowledged
	maybe     map[string]string // written, no answer
	approvals int               // acknowledged
	reported  bool              // a report acknowledged
	commit    crashOutcome
	abort     crashOutcome
}

type crashOutcome int

const (
	notSent crashOutcome = iota
	inFlight
	acked
)

func TestServerKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; about half a minute")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git CLI")
	}
	dir := t.TempDir()
	tok := make([]byte, 16)
	rand.Read(tok)
	admin := "crash-admin-" + hex.EncodeToString(tok)
	m := &crashModel{put: map[string]string{}, putMaybe: map[string]string{}, deleted: map[string]bool{}, txns: map[string]*crashTxn{},
		secrets: map[string]string{}, secretsMaybe: map[string]string{}, webhooks: map[string]bool{},
		tokens: map[string]crashOutcome{}, repos: map[string]string{}, imports: map[string]*crashImport{},
		importFrom: importSource(t)}
	const rounds = 6
	rcv := newHookReceiver(t)
	var hook string // the webhook on kv/, delivering to rcv
	mirror := filepath.Join(t.TempDir(), "mirror.git")
	for round := range rounds + 1 {
		switch round % 3 {
		case 1:
			// The index is a cache of Git: without it, the next start
			// rebuilds it, and must find everything there.
			if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
				t.Fatal(err)
			}
		case 2:
			// A kill while the server recovers (replays journals,
			// catches the index up), before it serves.
			killEarly(t, dir, admin)
		}
		cl := startCrashChild(t, dir, admin)
		verifyCrashModel(t, cl, m, round)
		if round == rounds {
			checkDeliveries(t, cl, m, hook, rcv)
			checkHistory(t, cl, m)
			checkMirror(t, cl, mirror)
			cl.kill(t)
			break
		}
		if round == 0 {
			body, _ := json.Marshal(wire.CreateWebhookRequest{URL: rcv.url, Prefix: "kv/", Secret: "a-secret-of-16-bytes-at-least"})
			var h wire.Webhook
			if err := cl.call(http.MethodPost, "/v1/repos/default/webhooks", admin, body, http.StatusCreated, &h); err != nil {
				t.Fatal(err)
			}
			hook = h.ID
			// A mirror: main pushed to a bare repository after each
			// commit, resumed after each kill.
			if out, err := exec.Command("git", "init", "-q", "--bare", "-b", "main", mirror).CombinedOutput(); err != nil {
				t.Fatalf("git init: %v\n%s", err, out)
			}
			body, _ = json.Marshal(wire.UpstreamConfig{URL: "file://" + mirror, Mode: "mirror"})
			if err := cl.call(http.MethodPut, "/v1/repos/default/upstream", admin, body, http.StatusOK, nil); err != nil {
				t.Fatal(err)
			}
			var tk wire.CreatedToken
			if err := cl.call(http.MethodPost, "/v1/tokens", admin, []byte(`{"name":"approver","scopes":["read","approve"]}`), http.StatusCreated, &tk); err != nil {
				t.Fatal(err)
			}
			m.approver = tk.Secret
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Go(func() { crashWorker(cl, m, admin, round, w, stop) })
		}
		if round%2 == 0 {
			work := filepath.Join(t.TempDir(), "work.git")
			wg.Go(func() { pushWorker(cl, m, admin, round, work, stop) })
		}
		time.Sleep(time.Duration(300+mrand.IntN(1200)) * time.Millisecond)
		cl.kill(t)
		close(stop)
		wg.Wait()
		fsckAll(t, dir)
		noPlaintext(t, dir, m)
		m.mu.Lock()
		t.Logf("round %d: %d keys put, %d deletes, %d transactions, %d secrets, %d webhooks, %d tokens, %d repos, %d imports, %d pushes, %d batches so far", round, len(m.put), len(m.deleted), len(m.txns), len(m.secrets), len(m.webhooks), len(m.tokens), len(m.repos), len(m.imports), m.pushes, len(m.batches))
		m.mu.Unlock()
	}
	fsckAll(t, dir)
}

// crashChild is a running child server and a client for it.
type crashChild struct {
	cmd   *exec.Cmd
	base  string
	admin string
	hc    *http.Client
}

func startCrashChild(t *testing.T, dir, admin string) *crashChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerCrashHelper$", "-test.v")
	cmd.Env = append(os.Environ(), serverCrashDirEnv+"="+dir, serverCrashAdminEnv+"="+admin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var base string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
			base = u
			break
		}
	}
	if base == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the child did not start: %s", stderr.String())
	}
	go io.Copy(io.Discard, out)
	tr := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
	return &crashChild{cmd: cmd, base: base, admin: admin, hc: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
}

// killEarly starts a child and kills it a moment later, whether it serves
// by then or not.
func killEarly(t *testing.T, dir, admin string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerCrashHelper$")
	cmd.Env = append(os.Environ(), serverCrashDirEnv+"="+dir, serverCrashAdminEnv+"="+admin)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(mrand.IntN(150)) * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
}

// kill sends SIGKILL and waits for the child to be gone.
func (c *crashChild) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := c.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child ended on its own before the kill: %v", err)
	}
	c.hc.CloseIdleConnections()
}

// alive reports whether the child still serves: a failure while it does
// is a bug, one after the kill is the kill.
func (c *crashChild) alive() bool {
	resp, err := c.hc.Get(c.base + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// errStatus is an answer with another status than the one expected.
type errStatus struct {
	code int
	body string
}

func (e *errStatus) Error() string { return fmt.Sprintf("status %d: %s", e.code, e.body) }

// call sends a request; out, when not nil, takes the JSON answer (or the
// body itself, for a *[]byte). An error
// that is not an *errStatus means no answer came.
func (c *crashChild) call(method, path, token string, body []byte, want int, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return &errStatus{resp.StatusCode, string(b)}
	}
	switch out := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*out = b
		return nil
	default:
		return json.Unmarshal(b, out)
	}
}

// answered reports whether err is an answer other than the one expected: a
// bug, since the workers send only requests that should succeed.
func answered(err error) bool {
	var es *errStatus
	return errors.As(err, &es)
}

// crashWorker changes the server until stop, recording in m what was
// acknowledged and what was sent without an answer. It stops at the first
// request without an answer (the kill).
func crashWorker(c *crashChild, m *crashModel, admin string, round, w int, stop chan struct{}) {
	var mine []string // keys this worker put, not deleted
	var txn *crashTxn
	fail := func(what string, err error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		panic(fmt.Sprintf("round %d worker %d: %s: %v", round, w, what, err))
	}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		var err error
		switch p := mrand.IntN(100); {
		case p < 45 || (p < 55 && len(mine) == 0):
			key := fmt.Sprintf("kv/r%d/w%d/k%05d", round, w, i)
			val := fmt.Sprintf("value %d/%d/%d", round, w, i)
			m.mu.Lock()
			m.putMaybe[key] = val
			m.mu.Unlock()
			var res wire.WriteResult
			err = c.call(http.MethodPut, "/v1/repos/default/kv/"+key, admin, []byte(val), http.StatusOK, &res)
			if err == nil {
				m.mu.Lock()
				delete(m.putMaybe, key)
				m.put[key] = val
				m.kvRevs = append(m.kvRevs, res.Revision)
				m.mu.Unlock()
				mine = append(mine, key)
			}
		case p < 55:
			j := mrand.IntN(len(mine))
			key := mine[j]
			mine = append(mine[:j], mine[j+1:]...)
			m.mu.Lock()
			m.deleted[key] = false
			m.mu.Unlock()
			var res wire.WriteResult
			err = c.call(http.MethodDelete, "/v1/repos/default/kv/"+key, admin, nil, http.StatusOK, &res)
			if err == nil {
				m.mu.Lock()
				m.deleted[key] = true
				m.kvRevs = append(m.kvRevs, res.Revision)
				m.mu.Unlock()
			}
		case p < 60:
			key := fmt.Sprintf("sec/r%d/w%d/s%05d", round, w, i)
			b := make([]byte, 12)
			rand.Read(b)
			val := "plaintext-" + hex.EncodeToString(b)
			m.mu.Lock()
			m.secretsMaybe[key] = val
			m.mu.Unlock()
			err = c.call(http.MethodPut, "/v1/repos/default/secrets/"+key, admin, []byte(val), http.StatusOK, nil)
			if err == nil {
				m.mu.Lock()
				delete(m.secretsMaybe, key)
				m.secrets[key] = val
				m.mu.Unlock()
			}
		case p < 62 && m.count(m.webhooks) < 60: // a repo holds up to 100
			var h wire.Webhook
			body := fmt.Sprintf(`{"url":"http://127.0.0.1:9/r%d/w%d/%d","secret":"hook-secret-of-16-bytes","prefix":"none/"}`, round, w, i)
			err = c.call(http.MethodPost, "/v1/repos/default/webhooks", admin, []byte(body), http.StatusCreated, &h)
			if err == nil {
				m.mu.Lock()
				m.webhooks[h.ID] = true
				m.mu.Unlock()
			}
		case p < 63:
			var tk wire.CreatedToken
			body := fmt.Sprintf(`{"name":"t-r%d-w%d-%d","scopes":["read"]}`, round, w, i)
			if err = c.call(http.MethodPost, "/v1/tokens", admin, []byte(body), http.StatusCreated, &tk); err != nil {
				break
			}
			m.mu.Lock()
			m.tokens[tk.Secret] = notSent
			m.mu.Unlock()
			if mrand.IntN(2) == 0 {
				m.mu.Lock()
				m.tokens[tk.Secret] = inFlight
				m.mu.Unlock()
				if err = c.call(http.MethodDelete, "/v1/tokens/"+tk.ID, admin, nil, http.StatusOK, nil); err == nil {
					m.mu.Lock()
					m.tokens[tk.Secret] = acked
					m.mu.Unlock()
				}
			}
		case p < 64:
			name := fmt.Sprintf("r%d-w%d-%d", round, w, i)
			if err = c.call(http.MethodPost, "/v1/repos", admin, []byte(`{"name":"`+name+`"}`), http.StatusCreated, nil); err != nil {
				break
			}
			m.mu.Lock()
			m.repos[name] = ""
			m.mu.Unlock()
			if err = c.call(http.MethodPut, "/v1/repos/"+name+"/kv/k", admin, []byte(name), http.StatusOK, nil); err == nil {
				m.mu.Lock()
				m.repos[name] = name
				m.mu.Unlock()
			}
		case p < 65 && m.importsIn(round) < 3:
			name := fmt.Sprintf("imp-r%d-w%d-%d", round, w, i)
			body, _ := json.Marshal(wire.CreateRepoRequest{Name: name, ImportFrom: m.importFrom})
			if err = c.call(http.MethodPost, "/v1/repos", admin, body, http.StatusAccepted, nil); err == nil {
				m.mu.Lock()
				m.imports[name] = &crashImport{round: round}
				m.mu.Unlock()
			}
		case p < 68:
			b := &crashBatch{keys: map[string]string{}, outcome: inFlight}
			req := wire.CommitRequest{Message: "a batch"}
			for k := range 3 {
				key, val := fmt.Sprintf("batch/r%d/w%d/b%05d/k%d", round, w, i, k), fmt.Sprintf("batch value %d", k)
				b.keys[key] = val
				req.Ops = append(req.Ops, wire.Op{Op: "put", Key: key, Value: &val})
			}
			sb := make([]byte, 12)
			rand.Read(sb)
			b.secret, b.plaintext = fmt.Sprintf("sec/batch/r%d/w%d/b%05d", round, w, i), "plaintext-"+hex.EncodeToString(sb)
			req.Ops = append(req.Ops, wire.Op{Op: "put_secret", Key: b.secret, Value: &b.plaintext})
			body, _ := json.Marshal(req)
			m.mu.Lock()
			m.batches = append(m.batches, b)
			m.secretsMaybe[b.secret] = b.plaintext
			m.mu.Unlock()
			if err = c.call(http.MethodPost, "/v1/repos/default/commits", admin, body, http.StatusOK, nil); err == nil {
				m.mu.Lock()
				b.outcome = acked
				delete(m.secretsMaybe, b.secret)
				m.secrets[b.secret] = b.plaintext
				m.mu.Unlock()
			}
		case txn == nil:
			var v wire.Txn
			err = c.call(http.MethodPost, "/v1/repos/default/txns", admin, []byte(`{"message":"crash test"}`), http.StatusCreated, &v)
			if err == nil {
				txn = &crashTxn{id: v.ID, keys: map[string]string{}, maybe: map[string]string{}}
				m.mu.Lock()
				m.txns[v.ID] = txn
				m.mu.Unlock()
			}
		case p < 78:
			key := fmt.Sprintf("txn/r%d/w%d/k%05d", round, w, i)
			val := fmt.Sprintf("in %s: %d", txn.id, i)
			m.mu.Lock()
			txn.maybe[key] = val
			m.mu.Unlock()
			err = c.call(http.MethodPut, "/v1/repos/default/txns/"+txn.id+"/kv/"+key, admin, []byte(val), http.StatusOK, nil)
			if err == nil {
				m.mu.Lock()
				delete(txn.maybe, key)
				txn.keys[key] = val
				m.mu.Unlock()
			}
		case p < 82:
			err = c.call(http.MethodPost, "/v1/repos/default/txns/"+txn.id+"/approvals", m.approver, []byte(`{"comment":"ok"}`), http.StatusCreated, nil)
			if err == nil {
				m.mu.Lock()
				txn.approvals++
				m.mu.Unlock()
			}
		case p < 85:
			err = c.call(http.MethodPost, "/v1/repos/default/txns/"+txn.id+"/reports", admin, []byte(`{"reporter":"plan-bot","status":"ok","details":{"n":1}}`), http.StatusCreated, nil)
			if err == nil {
				m.mu.Lock()
				txn.reported = true
				m.mu.Unlock()
			}
		case p < 88:
			// Onto main's head: the branch is rewritten, its keys kept.
			err = c.call(http.MethodPost, "/v1/repos/default/txns/"+txn.id+"/rebase", admin, nil, http.StatusOK, nil)
		case p < 94:
			m.mu.Lock()
			txn.commit = inFlight
			m.mu.Unlock()
			err = c.call(http.MethodPost, "/v1/repos/default/txns/"+txn.id+"/commit", admin, nil, http.StatusOK, nil)
			if err == nil {
				m.mu.Lock()
				txn.commit = acked
				m.mu.Unlock()
				txn = nil
			}
		case p < 97:
			m.mu.Lock()
			txn.abort = inFlight
			m.mu.Unlock()
			err = c.call(http.MethodDelete, "/v1/repos/default/txns/"+txn.id, admin, nil, http.StatusOK, nil)
			if err == nil {
				m.mu.Lock()
				txn.abort = acked
				m.mu.Unlock()
				txn = nil
			}
		default:
			txn = nil // leave it open
		}
		if err != nil {
			if answered(err) {
				fail("an answer that is not success", err)
			}
			return // the kill
		}
	}
}

// pushWorker writes into transactions with git push, as a person or a CI
// job would: it begins a transaction over the API, pushes a commit to its
// branch, and commits it over the API (or leaves it open). It stops at the
// first step without an answer (the kill).
func pushWorker(c *crashChild, m *crashModel, admin string, round int, work string, stop chan struct{}) {
	u, err := url.Parse(c.base)
	if err != nil {
		panic(err)
	}
	u.User = url.UserPassword("x", admin)
	remote := u.String() + "/git/default.git"
	// git runs a git command in the work repository (bare, with an index
	// of its own: commits are made without a checkout of the thousands of
	// keys the storm writes), and returns its output.
	git := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command("git", append([]string{"-C", work}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_INDEX_FILE="+filepath.Join(work, "push-index"),
			"GIT_AUTHOR_NAME=ci", "GIT_AUTHOR_EMAIL=ci@example.com", "GIT_COMMITTER_NAME=ci", "GIT_COMMITTER_EMAIL=ci@example.com")
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %v: %s", args[0], err, stderr.String())
		}
		return strings.TrimSpace(string(out)), nil
	}
	if out, err := exec.Command("git", "init", "-q", "--bare", work).CombinedOutput(); err != nil {
		panic(fmt.Sprintf("git init: %v: %s", err, out))
	}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		var v wire.Txn
		if err := c.call(http.MethodPost, "/v1/repos/default/txns", admin, []byte(`{"message":"pushed"}`), http.StatusCreated, &v); err != nil {
			if answered(err) {
				panic(fmt.Sprintf("round %d pusher: begin: %v", round, err))
			}
			return
		}
		x := &crashTxn{id: v.ID, keys: map[string]string{}, maybe: map[string]string{}}
		m.mu.Lock()
		m.txns[v.ID] = x
		m.mu.Unlock()
		branch := "refs/heads/txn/" + v.ID
		key := fmt.Sprintf("txn/push/r%d/n%03d.yaml", round, i)
		val := fmt.Sprintf("pushed: %d\n", i)
		var commit string
		steps := []func() error{
			func() error { _, err := git("", "fetch", "-q", "--depth=1", remote, branch); return err },
			func() error { _, err := git("", "read-tree", "FETCH_HEAD"); return err },
			func() error {
				blob, err := git(val, "hash-object", "-w", "--stdin")
				if err == nil {
					_, err = git("", "update-index", "--add", "--cacheinfo", "100644,"+blob+","+key)
				}
				return err
			},
			func() error {
				tree, err := git("", "write-tree")
				if err == nil {
					commit, err = git("push "+key, "commit-tree", tree, "-p", "FETCH_HEAD")
				}
				return err
			},
		}
		for _, step := range steps {
			if err := step(); err != nil {
				if c.alive() {
					panic(fmt.Sprintf("round %d pusher: %v", round, err))
				}
				return // the kill
			}
		}
		m.mu.Lock()
		x.maybe[key] = val
		m.mu.Unlock()
		if _, err := git("", "push", "-q", remote, commit+":"+branch); err != nil {
			if c.alive() {
				panic(fmt.Sprintf("round %d pusher: %v", round, err))
			}
			return
		}
		m.mu.Lock()
		delete(x.maybe, key)
		x.keys[key] = val
		m.pushes++
		m.mu.Unlock()
		if i%2 == 0 {
			continue // left open
		}
		m.mu.Lock()
		x.commit = inFlight
		m.mu.Unlock()
		if err := c.call(http.MethodPost, "/v1/repos/default/txns/"+v.ID+"/commit", admin, nil, http.StatusOK, nil); err != nil {
			if answered(err) {
				panic(fmt.Sprintf("round %d pusher: commit: %v", round, err))
			}
			return
		}
		m.mu.Lock()
		x.commit = acked
		m.mu.Unlock()
	}
}

// hookReceiver records the revisions a webhook delivers, in the order
// they come.
type hookReceiver struct {
	url  string
	mu   sync.Mutex
	revs []int64
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		rev, err := strconv.ParseInt(r.Header.Get(wire.HeaderRevision), 10, 64)
		if err != nil {
			http.Error(w, "no revision", http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.revs = append(h.revs, rev)
		h.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// checkDeliveries waits for the webhook on kv/ to catch up with main, then
// checks that it delivered every acknowledged write under kv/, in order:
// at least once across all the kills, a revision delivered again only
// right after itself (the delivery the kill cut short of its record).
func checkDeliveries(t *testing.T, c *crashChild, m *crashModel, hook string, rcv *hookReceiver) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var hooks wire.WebhookList
		if err := c.call(http.MethodGet, "/v1/repos/default/webhooks", c.admin, nil, http.StatusOK, &hooks); err != nil {
			t.Fatal(err)
		}
		var pending int64 = -1
		for _, h := range hooks.Webhooks {
			if h.ID == hook {
				pending = h.Pending
			}
		}
		if pending == 0 {
			break
		}
		if pending < 0 || time.Now().After(deadline) {
			t.Fatalf("webhook %s: %d revisions still pending", hook, pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rcv.mu.Lock()
	revs := slices.Clone(rcv.revs)
	rcv.mu.Unlock()
	got := map[int64]bool{}
	for i, r := range revs {
		got[r] = true
		if i > 0 && r < revs[i-1] {
			t.Errorf("webhook delivered revision %d after %d", r, revs[i-1])
		}
	}
	missing := 0
	for _, r := range m.kvRevs {
		if !got[r] {
			missing++
			if missing <= 5 {
				t.Errorf("webhook never delivered revision %d (an acknowledged write under kv/)", r)
			}
		}
	}
	t.Logf("webhook: %d deliveries of %d distinct revisions; %d acknowledged writes under kv/, %d missing", len(revs), len(got), len(m.kvRevs), missing)
}

// checkMirror waits for the mirror to be in sync, and checks that the
// bare repository's main is the server's head commit.
func checkMirror(t *testing.T, c *crashChild, mirror string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var u wire.Upstream
	for {
		if err := c.call(http.MethodGet, "/v1/repos/default/upstream", c.admin, nil, http.StatusOK, &u); err != nil {
			t.Fatal(err)
		}
		if u.Status.State == "in_sync" && u.Status.LagRevisions == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mirror: %+v after a minute", u.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var head wire.ListResponse
	if err := c.call(http.MethodGet, "/v1/repos/default/kv?limit=1", c.admin, nil, http.StatusOK, &head); err != nil {
		t.Fatal(err)
	}
	var ci wire.CommitInfo
	if err := c.call(http.MethodGet, fmt.Sprintf("/v1/repos/default/commits/%d", head.Revision), c.admin, nil, http.StatusOK, &ci); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("git", "-C", mirror, "rev-parse", "refs/heads/main").CombinedOutput()
	if err != nil {
		t.Fatalf("git rev-parse: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != ci.Commit {
		t.Errorf("mirror: main is %s, the server's head (revision %d) %s", got, head.Revision, ci.Commit)
	}
	fsckStrict(t, mirror)
	t.Logf("mirror: main at revision %d, in sync", head.Revision)
}

// checkHistory replays main's whole history as a watch stream (from=0)
// and checks it is every revision from 1 to the head, once each, in order,
// the acknowledged writes under kv/ among them.
func checkHistory(t *testing.T, c *crashChild, m *crashModel) {
	t.Helper()
	var head wire.ListResponse
	if err := c.call(http.MethodGet, "/v1/repos/default/kv?limit=1", c.admin, nil, http.StatusOK, &head); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, c.base+"/v1/repos/default/watch?from=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.admin)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("watch: status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var want int64 = 1
	event, id := "", ""
	for sc.Scan() && want <= head.Revision {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case line == "":
			if event == "revision" {
				if n, err := strconv.ParseInt(id, 10, 64); err != nil || n != want {
					t.Fatalf("history: revision %q where %d was due", id, want)
				}
				want++
			}
			event, id = "", ""
		}
	}
	if want <= head.Revision {
		t.Fatalf("history: the stream ended at revision %d of %d: %v", want-1, head.Revision, sc.Err())
	}
	for _, r := range m.kvRevs {
		if r > head.Revision {
			t.Errorf("an acknowledged write's revision %d is past the head %d", r, head.Revision)
		}
	}
	t.Logf("history: revisions 1 to %d, each once, in order", head.Revision)
}

// verifyCrashModel checks the server against everything m says it
// acknowledged, and that what was in flight was done whole or not at all.
func verifyCrashModel(t *testing.T, c *crashChild, m *crashModel, round int) {
	t.Helper()
	main := listAll(t, c, "/v1/repos/default/kv", "")
	for key, val := range m.put {
		got, ok := main[key]
		switch done, sent := m.deleted[key]; {
		case done && ok:
			t.Errorf("round %d: %s: deleted (acknowledged), but it holds %q", round, key, got)
		case done:
		case sent && !ok:
			// The delete was in flight: it happened.
		case !ok:
			t.Errorf("round %d: %s: put %q acknowledged, but the key is gone", round, key, val)
		case got != val:
			t.Errorf("round %d: %s: %q, want %q", round, key, got, val)
		}
	}
	for key, val := range m.putMaybe {
		if got, ok := main[key]; ok && got != val {
			t.Errorf("round %d: %s: %q, want %q or nothing", round, key, got, val)
		}
	}
	for key := range main {
		if strings.HasPrefix(key, "kv/") {
			if _, ok := m.put[key]; !ok {
				if _, ok := m.putMaybe[key]; !ok {
					t.Errorf("round %d: %s: on main, but never put", round, key)
				}
			}
		}
	}
	for _, b := range m.batches {
		n := 0
		for k, want := range b.keys {
			if got, ok := main[k]; ok {
				n++
				if got != want {
					t.Errorf("round %d: batch key %s: %q, want %q", round, k, got, want)
				}
			}
		}
		_, hasSecret := main[b.secret+".sops.json"]
		switch {
		case b.outcome == acked && (n != len(b.keys) || !hasSecret):
			t.Errorf("round %d: a batch acknowledged: %d of its %d keys on main, its secret %v", round, n, len(b.keys), hasSecret)
		case n != 0 && (n != len(b.keys) || !hasSecret):
			t.Errorf("round %d: a batch in flight half applied: %d of its %d keys on main, its secret %v", round, n, len(b.keys), hasSecret)
		case n == 0 && hasSecret:
			t.Errorf("round %d: a batch in flight half applied: its secret without its keys", round)
		}
	}
	// Which keys on main came from which transaction: each key is written
	// in one transaction only.
	owner := map[string]*crashTxn{}
	for _, x := range m.txns {
		for k := range x.keys {
			owner[k] = x
		}
		for k := range x.maybe {
			owner[k] = x
		}
	}
	onMain := map[*crashTxn]int{}
	for key, val := range main {
		if !strings.HasPrefix(key, "txn/") {
			continue
		}
		x := owner[key]
		if x == nil {
			t.Errorf("round %d: %s: on main, but written in no transaction", round, key)
			continue
		}
		if want, ok := x.keys[key]; ok && val != want {
			t.Errorf("round %d: %s: %q, want %q (transaction %s)", round, key, val, want, x.id)
		}
		onMain[x]++
	}
	ids := make([]string, 0, len(m.txns))
	for id := range m.txns {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		x := m.txns[id]
		var v wire.Txn
		if err := c.call(http.MethodGet, "/v1/repos/default/txns/"+id, c.admin, nil, http.StatusOK, &v); err != nil {
			t.Errorf("round %d: transaction %s (acknowledged): %v", round, id, err)
			continue
		}
		committed := v.Status == "committed"
		switch {
		case x.commit == acked && !committed:
			t.Errorf("round %d: transaction %s: commit acknowledged, status %s", round, id, v.Status)
		case x.abort == acked && v.Status != "aborted":
			t.Errorf("round %d: transaction %s: abort acknowledged, status %s", round, id, v.Status)
		case x.commit == notSent && committed:
			t.Errorf("round %d: transaction %s: committed, but never asked to", round, id)
		case x.abort == notSent && v.Status == "aborted":
			t.Errorf("round %d: transaction %s: aborted, but never asked to", round, id)
		case x.commit == notSent && x.abort == notSent && v.Status != "open":
			t.Errorf("round %d: transaction %s: status %s, want open", round, id, v.Status)
		}
		if committed {
			if (v.Revision <= 0 || v.Commit == "") && len(x.keys) > 0 {
				t.Errorf("round %d: transaction %s: committed without its revision (%d) or commit (%q); %d keys acknowledged in it, %d in flight; commit %d", round, id, v.Revision, v.Commit, len(x.keys), len(x.maybe), x.commit)
			}
			// All of it on main: every key acknowledged in it (and those
			// in flight at its commit may or may not be).
			for k := range x.keys {
				if _, ok := main[k]; !ok {
					t.Errorf("round %d: transaction %s committed, but its key %s is not on main", round, id, k)
				}
			}
		} else if n := onMain[x]; n > 0 {
			t.Errorf("round %d: transaction %s is %s, but %d of its keys are on main", round, id, v.Status, n)
		}
		if x.reported && len(v.Reports) == 0 {
			t.Errorf("round %d: transaction %s: a report acknowledged, none kept", round, id)
		}
		if len(v.Approvals) < x.approvals {
			t.Errorf("round %d: transaction %s: %d approvals acknowledged, %d kept", round, id, x.approvals, len(v.Approvals))
		}
		if v.Status == "open" {
			in := listAll(t, c, "/v1/repos/default/txns/"+id+"/kv", "txn/")
			for k, want := range x.keys {
				if got, ok := in[k]; !ok || got != want {
					t.Errorf("round %d: open transaction %s: %s is %q (held %v), want %q", round, id, k, got, ok, want)
				}
			}
		}
	}
	for key, want := range m.secrets {
		var got []byte
		if err := c.call(http.MethodGet, "/v1/repos/default/secrets/"+key, c.admin, nil, http.StatusOK, &got); err != nil {
			t.Errorf("round %d: secret %s (acknowledged): %v", round, key, err)
		} else if string(got) != want {
			t.Errorf("round %d: secret %s: %q, want %q", round, key, got, want)
		}
	}
	for key, want := range m.secretsMaybe {
		var got []byte
		err := c.call(http.MethodGet, "/v1/repos/default/secrets/"+key, c.admin, nil, http.StatusOK, &got)
		var es *errStatus
		switch {
		case errors.As(err, &es) && es.code == http.StatusNotFound:
		case err != nil:
			t.Errorf("round %d: secret %s (in flight): %v", round, key, err)
		case string(got) != want:
			t.Errorf("round %d: secret %s: %q, want %q or nothing", round, key, got, want)
		}
	}
	var hooks wire.WebhookList
	if err := c.call(http.MethodGet, "/v1/repos/default/webhooks", c.admin, nil, http.StatusOK, &hooks); err != nil {
		t.Fatalf("round %d: list webhooks: %v", round, err)
	}
	have := map[string]bool{}
	for _, h := range hooks.Webhooks {
		have[h.ID] = true
	}
	for id := range m.webhooks {
		if !have[id] {
			t.Errorf("round %d: webhook %s: creation acknowledged, gone", round, id)
		}
	}
	for tok, revoked := range m.tokens {
		err := c.call(http.MethodGet, "/v1/repos/default/kv?limit=1", tok, nil, http.StatusOK, nil)
		var es *errStatus
		denied := errors.As(err, &es) && es.code == http.StatusUnauthorized
		switch {
		case err != nil && !denied:
			t.Errorf("round %d: a token: %v", round, err)
		case revoked == acked && !denied:
			t.Errorf("round %d: a token revoked (acknowledged) still works", round)
		case revoked == notSent && denied:
			t.Errorf("round %d: a token made (acknowledged) and never revoked is refused: %v", round, err)
		}
	}
	for name, want := range m.repos {
		var got []byte
		err := c.call(http.MethodGet, "/v1/repos/"+name+"/kv/k", c.admin, nil, http.StatusOK, &got)
		var es *errStatus
		switch {
		case want == "" && errors.As(err, &es) && es.code == http.StatusNotFound && strings.Contains(es.body, "key_not_found"):
		case err != nil:
			t.Errorf("round %d: repo %s (created, acknowledged): %v", round, name, err)
		case want != "" && string(got) != want:
			t.Errorf("round %d: repo %s: k is %q, want %q", round, name, got, want)
		}
	}
	for name, im := range m.imports {
		var st wire.ImportStatus
		err := c.call(http.MethodGet, "/v1/repos/"+name+"/import", c.admin, nil, http.StatusOK, &st)
		var es *errStatus
		gone := errors.As(err, &es) && es.code == http.StatusNotFound
		switch {
		case err != nil && !gone:
			t.Errorf("round %d: import %s: %v", round, name, err)
			continue
		case !im.checked && gone:
			t.Errorf("round %d: import %s (accepted): no status after the restart: %v", round, name, err)
			continue
		case !im.checked && st.State == "failed" && !strings.HasPrefix(st.Error, "interrupted"):
			t.Errorf("round %d: import %s: failed: %s", round, name, st.Error)
		case !im.checked && st.State != "done" && st.State != "failed":
			t.Errorf("round %d: import %s: %s after a restart", round, name, st.State)
		case im.checked && gone:
			t.Errorf("round %d: import %s: its status is gone: %v", round, name, err)
			continue
		case im.checked && im.done != (st.State == "done"):
			t.Errorf("round %d: import %s was done: %v; now %s", round, name, im.done, st.State)
		}
		if !im.checked {
			im.checked, im.done = true, st.State == "done"
		}
		var got []byte
		err = c.call(http.MethodGet, "/v1/repos/"+name+"/kv/"+importKey, c.admin, nil, http.StatusOK, &got)
		switch {
		case im.done && err != nil:
			t.Errorf("round %d: imported repo %s: %v", round, name, err)
		case im.done && string(got) != importValue:
			t.Errorf("round %d: imported repo %s: %s is %q, want %q", round, name, importKey, got, importValue)
		case !im.done && !(errors.As(err, &es) && strings.Contains(es.body, "repo_not_found")):
			t.Errorf("round %d: import %s interrupted, but its repo answers %v", round, name, err)
		}
	}
	done := 0
	for _, im := range m.imports {
		if im.done {
			done++
		}
	}
	t.Logf("round %d: %d of %d imports done, the others interrupted", round, done, len(m.imports))
	if t.Failed() {
		t.FailNow()
	}
}

// importKey holds importValue at the head of importSource's repository.
const (
	importKey   = "apps/web/replicas"
	importValue = "3"
)

// importSource makes a Git repository of a few hundred commits to import.
func importSource(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "source.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", "-b", "main", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	var in bytes.Buffer
	for i := 1; i <= 300; i++ {
		path, val := fmt.Sprintf("apps/app%03d/config.yaml", i%50), fmt.Sprintf("revision: %d\n", i)
		if i == 300 {
			path, val = importKey, importValue
		}
		msg := fmt.Sprintf("change %d", i)
		fmt.Fprintf(&in, "commit refs/heads/main\ncommitter Someone <someone@example.com> %d +0000\ndata %d\n%s\n", 1700000000+i, len(msg), msg)
		fmt.Fprintf(&in, "M 100644 inline %s\ndata %d\n%s\n", path, len(val), val)
	}
	cmd := exec.Command("git", "-C", dir, "fast-import", "--quiet")
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git fast-import: %v\n%s", err, out)
	}
	return dir
}

// noPlaintext fails if any file of the data directory holds a secret's
// plaintext, acknowledged or in flight at the kill.
func noPlaintext(t *testing.T, dir string, m *crashModel) {
	t.Helper()
	var vals [][]byte
	for _, v := range m.secrets {
		vals = append(vals, []byte(v))
	}
	for _, v := range m.secretsMaybe {
		vals = append(vals, []byte(v))
	}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, v := range vals {
			if bytes.Contains(b, v) {
				t.Errorf("%s holds the plaintext of a secret", path)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// listAll lists every key under prefix at path, with its value.
func listAll(t *testing.T, c *crashChild, path, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	after := ""
	for {
		var page wire.ListResponse
		q := url.Values{"values": {"true"}, "limit": {"10000"}, "prefix": {prefix}, "after": {after}}
		if err := c.call(http.MethodGet, path+"?"+q.Encode(), c.admin, nil, http.StatusOK, &page); err != nil {
			t.Fatalf("list %s: %v", path, err)
		}
		for _, it := range page.Items {
			if it.Value == nil {
				t.Fatalf("list %s: %s has no value", path, it.Key)
			}
			out[it.Key] = *it.Value
		}
		if page.Next == "" {
			return out
		}
		after = page.Next
	}
}

// fsckAll runs git fsck --strict on every repo of the data directory.
func fsckAll(t *testing.T, dir string) {
	t.Helper()
	repos, err := filepath.Glob(filepath.Join(dir, "repos", "*.git"))
	if err != nil || len(repos) == 0 {
		t.Fatalf("no repos in %s: %v", dir, err)
	}
	for _, r := range repos {
		fsckStrict(t, r)
	}
}

// fsckStrict runs git fsck --strict on a bare repository.
func fsckStrict(t *testing.T, repo string) {
	t.Helper()
	out, err := exec.Command("git", "-C", repo, "fsck", "--strict", "--no-progress").CombinedOutput()
	if err != nil {
		t.Fatalf("git fsck --strict: %v\n%s", err, out)
	}
}
