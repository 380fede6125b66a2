package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/server"
	"github.com/gitstate/gitstate/server/auth"
	"github.com/gitstate/gitstate/server/upstream"
)

// TestBruteForceGets429: after the allowance of failed authentications,
// every request from the address gets 429 with Retry-After, even one with
// a valid token, until the allowance refills.
func TestBruteForceGets429(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.Limits.FailRate = 2
		c.Limits.FailBurst = 10
	})
	var unauthorized, limited int
	for i := range 40 {
		guess := "gst_" + strings.Repeat("A", 12) + "_" + strings.Repeat(strconv.Itoa(i%10), 43)
		resp, _ := ts.do(t, http.MethodGet, "/v1/repos", guess, nil)
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			unauthorized++
		case http.StatusTooManyRequests:
			limited++
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Fatalf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("guess %d: status %d", i, resp.StatusCode)
		}
	}
	if unauthorized > 12 || limited < 28 {
		t.Errorf("%d guesses answered 401 and %d 429: want the burst of 10 to be the only 401s", unauthorized, limited)
	}
	// The valid token is not even looked at while the address is blocked.
	ts.mustDo(t, http.StatusTooManyRequests, http.MethodGet, "/v1/repos", ts.admin, nil)
	time.Sleep(600 * time.Millisecond) // refill one attempt at 2/s
	ts.mustDo(t, http.StatusOK, http.MethodGet, "/v1/repos", ts.admin, nil)
	// Open routes stay open.
	ts.mustDo(t, http.StatusOK, http.MethodGet, "/healthz", "", nil)
}

// TestTokenRateLimit: one token over its rate gets 429 with Retry-After;
// another token is not affected.
func TestTokenRateLimit(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.Limits.TokenRate = 1
		c.Limits.TokenBurst = 5
	})
	a := ts.createToken(t, wire.CreateTokenRequest{Name: "a", Scopes: []string{"read"}}).Secret
	b := ts.createToken(t, wire.CreateTokenRequest{Name: "b", Scopes: []string{"read"}}).Secret
	for range 5 {
		ts.mustDo(t, http.StatusOK, http.MethodGet, "/v1/repos", a, nil)
	}
	resp, body := ts.do(t, http.MethodGet, "/v1/repos", a, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("6th request: %d %s, want 429", resp.StatusCode, body)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
	}
	if e := errorOf(t, body); e.Code != "too_many_requests" {
		t.Errorf("429 body %+v", e)
	}
	ts.mustDo(t, http.StatusOK, http.MethodGet, "/v1/repos", b, nil)

	// 0 disables the limit.
	free := startServer(t, func(c *server.Config) { c.Limits.TokenRate = 0 })
	for range 100 {
		free.mustDo(t, http.StatusOK, http.MethodGet, "/healthz", free.admin, nil)
		free.mustDo(t, http.StatusOK, http.MethodGet, "/v1/repos", free.admin, nil)
	}
}

// TestDefaultLimitsLetAConcurrentClientThrough: the default per-token
// limit does not bite 64 concurrent writers.
func TestDefaultLimitsLetAConcurrentClientThrough(t *testing.T) {
	ts := startServer(t)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				resp, b := ts.do(t, http.MethodPut, "/v1/repos/default/kv/k"+strconv.Itoa(i), ts.admin, []byte(strconv.Itoa(j)))
				if resp.StatusCode != http.StatusOK {
					errs <- string(b)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a write failed under the default limits: %s", e)
	}
}

func TestStreamLimiterIsConfigured(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.Limits.StreamsPerToken = 2 })
	var releases []func()
	for range 2 {
		rel, ok := ts.Streams().Acquire("t")
		if !ok {
			t.Fatal("acquire within the limit refused")
		}
		releases = append(releases, rel)
	}
	if _, ok := ts.Streams().Acquire("t"); ok {
		t.Fatal("third stream of a token allowed with a limit of 2")
	}
	releases[0]()
	if _, ok := ts.Streams().Acquire("t"); !ok {
		t.Fatal("acquire after a release refused")
	}
	if got := auth.DefaultLimits().StreamsPerToken; got != 100 {
		t.Errorf("default streams per token %d, want 100", got)
	}
}

func TestBodyLimit(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.MaxBodyBytes = 4 << 10
		c.MaxValueSize = 1 << 10
	})
	big := `{"ops":[{"op":"put","key":"k","value":"` + strings.Repeat("x", 8<<10) + `"}]}`
	b := ts.mustDo(t, http.StatusRequestEntityTooLarge, http.MethodPost, "/v1/repos/default/commits", ts.admin, []byte(big))
	if e := errorOf(t, b); e.Code != "body_too_large" {
		t.Errorf("oversized body: %+v", e)
	}
	ts.mustDo(t, http.StatusRequestEntityTooLarge, http.MethodPut, "/v1/repos/default/kv/k", ts.admin, bytes.Repeat([]byte("x"), 2<<10))
	ts.mustDo(t, http.StatusOK, http.MethodPut, "/v1/repos/default/kv/k", ts.admin, bytes.Repeat([]byte("x"), 1<<10))
}

// TestSlowClients: a client that sends its header or its body too slowly
// is cut off (TestReadTimeoutSparesLongAnswers shows long answers are not).
func TestSlowClients(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.ReadHeaderTimeout = 200 * time.Millisecond
		c.ReadTimeout = 300 * time.Millisecond
	})
	addr := strings.TrimPrefix(ts.URL(), "http://")

	// Half a header, then silence: the server closes the connection.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n"))
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1024)
	for {
		if _, err := conn.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("slow header: connection still open after 5s")
			}
			break
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("slow header cut after %v", d)
	}

	// A header in time, then a body that stalls: the request fails.
	conn2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	conn2.Write([]byte("PUT /v1/repos/default/kv/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ts.admin +
		"\r\nContent-Length: 100\r\n\r\nonly ten b"))
	conn2.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn2), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("stalled body answered %d", resp.StatusCode)
		}
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("stalled body: no answer after 5s")
	}
	ts.mustDo(t, http.StatusNotFound, http.MethodGet, "/v1/repos/default/kv/slow", ts.admin, nil)
}

// auditedActions counts the audit file's lines by action and status.
func (ts *testServer) auditedActions(t *testing.T, action string, status int) int {
	t.Helper()
	n := 0
	for _, e := range ts.auditLines(t) {
		if e.Action == action && e.Status == status {
			n++
		}
	}
	return n
}

// TestGitChallengeIsNotAFailure: the git client's credential-less first
// request gets its 401 challenge, is neither audited nor counted against
// the address; wrong credentials are both, and past the allowance every
// request from the address (a challenge too) gets 429 with Retry-After.
func TestGitChallengeIsNotAFailure(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.Limits.FailRate = 0.001
		c.Limits.FailBurst = 5
	})
	const refs = "/git/default.git/info/refs?service=git-upload-pack"
	for range 40 {
		resp, _ := ts.do(t, http.MethodGet, refs, "", nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("challenge: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if n := ts.auditedActions(t, "git.advertise", http.StatusUnauthorized); n != 0 {
		t.Errorf("40 challenges wrote %d audit lines, want none", n)
	}
	ts.mustDo(t, http.StatusOK, http.MethodGet, refs, ts.admin, nil) // not blocked by them

	unauthorized, limited := tallyRefusals(t, 40, "wrong credentials", func() *http.Response {
		resp, _ := ts.do(t, http.MethodGet, refs, "", nil, "Authorization", "Basic Y2k6Z3N0X3dyb25n") // ci:gst_wrong
		return resp
	})
	if unauthorized != 5 || limited != 35 {
		t.Errorf("wrong credentials: %d answered 401 and %d 429, want 5 and 35", unauthorized, limited)
	}
	if n := ts.auditedActions(t, "git.advertise", http.StatusUnauthorized); n != 5 {
		t.Errorf("%d audit lines of 401 for 5 wrong credentials", n)
	}
	if n := ts.auditedActions(t, "git.advertise", http.StatusTooManyRequests); n != 0 {
		t.Errorf("%d audit lines of 429", n)
	}
	resp, _ := ts.do(t, http.MethodGet, refs, "", nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a challenge from a blocked address: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestUpstreamWebhookBadSignatureIsLimited: bad webhook signatures count
// as failed authentications of the address: audited up to the allowance,
// then 429 with Retry-After, unaudited, even for a good signature.
func TestUpstreamWebhookBadSignatureIsLimited(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	ts := startServer(t, func(c *server.Config) {
		c.Limits.FailRate = 0.001
		c.Limits.FailBurst = 5
	})
	bare := filepath.Join(t.TempDir(), "up.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", bare).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	cr, _ := json.Marshal(wire.CreateRepoRequest{Name: "f"})
	ts.mustDo(t, http.StatusCreated, http.MethodPost, "/v1/repos", ts.admin, cr)
	up, _ := json.Marshal(wire.UpstreamConfig{URL: bare, Mode: "follow", Interval: wire.Duration(time.Hour), WebhookSecret: "s3cret"})
	ts.mustDo(t, http.StatusOK, http.MethodPut, "/v1/repos/f/upstream", ts.admin, up)

	const hook = "/v1/repos/f/upstream/webhook"
	body := []byte(`{"ref":"refs/heads/main"}`)
	unauthorized, limited := tallyRefusals(t, 30, "bad signature", func() *http.Response {
		resp, _ := ts.do(t, http.MethodPost, hook, "", body, "X-Hub-Signature-256", "sha256=00")
		return resp
	})
	if unauthorized != 5 || limited != 25 {
		t.Errorf("bad signatures: %d answered 401 and %d 429, want 5 and 25", unauthorized, limited)
	}
	if n := ts.auditedActions(t, "upstream.webhook", http.StatusUnauthorized); n != 5 {
		t.Errorf("%d audit lines of 401 for 5 bad signatures", n)
	}
	if n := ts.auditedActions(t, "upstream.webhook", http.StatusTooManyRequests); n != 0 {
		t.Errorf("%d audit lines of 429", n)
	}
	ts.mustDo(t, http.StatusTooManyRequests, http.MethodPost, hook, "", body, "X-Hub-Signature-256", upstream.Sign("s3cret", body))
}

// tallyRefusals sends n requests that fail authentication and counts the
// 401s and the 429s (each with a Retry-After of at least a second); any
// other status fails the test.
func tallyRefusals(t *testing.T, n int, what string, send func() *http.Response) (unauthorized, limited int) {
	t.Helper()
	for range n {
		resp := send()
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			unauthorized++
		case http.StatusTooManyRequests:
			limited++
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Fatalf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("%s: status %d", what, resp.StatusCode)
		}
	}
	return unauthorized, limited
}
