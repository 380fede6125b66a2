package auth

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api"
)

func TestTokenFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		id, tok := newToken()
		gotID, secret, ok := parseToken(tok)
		if !ok || gotID != id || len(secret) != secretLen || len(id) != idLen {
			t.Fatalf("token %q (id %q) parses as %q %q %v", tok, id, gotID, secret, ok)
		}
		if seen[tok] || seen[id] {
			t.Fatalf("a repeated token or id: %q", tok)
		}
		seen[tok], seen[id] = true, true
	}
	for _, bad := range []string{
		"", "gst_", "gst__", "gst_AAAAAAAAAAAA_" + strings.Repeat("x", 42),
		"gst_AAAAAAAAAAA_" + strings.Repeat("x", 43), "gsx_AAAAAAAAAAAA_" + strings.Repeat("x", 43),
		"gst_AAAAAAAAAAAA_" + strings.Repeat("x", 42) + "!", "gst_AAAAAAAAAAAA_" + strings.Repeat("x", 44),
	} {
		if _, _, ok := parseToken(bad); ok {
			t.Errorf("parseToken(%q) accepted", bad)
		}
	}
	// The largest 32-byte secret still fits in 43 digits.
	max := make([]byte, secretBytes)
	for i := range max {
		max[i] = 0xff
	}
	if s := encodeBase62(max, secretLen); s[0] == '0' || len(s) != secretLen {
		t.Errorf("encodeBase62(max) = %q", s)
	}
}

func newTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := OpenStore(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func request(token, remote string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://x/v1/repos", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	r.RemoteAddr = remote
	return r
}

func kindOf(err error) gitstate.Kind { return gitstate.KindOf(err) }

func TestStorePersistsAndRevokes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Configured() {
		t.Fatal("a new store says it is configured")
	}
	ctx := context.Background()
	tok, err := s.CreateToken(ctx, api.TokenSpec{Name: "alice", Scopes: []api.Scope{api.ScopeRead}, Prefixes: []string{"apps/"}})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Repos[0] != "*" || !s.Configured() {
		t.Errorf("created %+v; configured %v", tok, s.Configured())
	}
	if _, err := s.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	again, err := s.RevokeToken(ctx, tok.ID)
	if err != nil || again.RevokedAt == nil {
		t.Errorf("revoking twice: %+v %v", again, err)
	}
	if _, err := s.RevokeToken(ctx, "nope"); kindOf(err) != gitstate.KindNotFound {
		t.Errorf("revoking an unknown token: %v", err)
	}
	// env-admin is a token only when GITSTATE_ADMIN_TOKEN is set.
	if _, err := s.RevokeToken(ctx, EnvAdminID); !errors.Is(err, &gitstate.Error{Code: "token_not_found"}) {
		t.Errorf("revoking env-admin without GITSTATE_ADMIN_TOKEN: %v, want token_not_found", err)
	}
	s.SetEnvAdmin(true)
	if _, err := s.RevokeToken(ctx, EnvAdminID); !errors.Is(err, &gitstate.Error{Code: "token_from_environment"}) || kindOf(err) != gitstate.KindConflict {
		t.Errorf("revoking the environment's token: %v, want token_from_environment", err)
	}
	for _, bad := range []api.TokenSpec{
		{Name: "", Scopes: []api.Scope{api.ScopeRead}},
		{Name: "a b", Scopes: []api.Scope{api.ScopeRead}},
		{Name: "a\n", Scopes: []api.Scope{api.ScopeRead}},
		{Name: "a", Scopes: nil},
		{Name: "a", Scopes: []api.Scope{"root"}},
	} {
		if _, err := s.CreateToken(ctx, bad); kindOf(err) != gitstate.KindInvalid {
			t.Errorf("CreateToken(%+v): %v", bad, err)
		}
	}

	re, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := re.ListTokens(ctx)
	if len(list) != 1 || list[0].ID != tok.ID || list[0].RevokedAt == nil || list[0].Prefixes[0] != "apps/" || !re.Configured() {
		t.Errorf("reopened store lists %+v", list)
	}
	a := NewAuthenticator(re, "", Limits{})
	if _, err := a.Authenticate(request(tok.Secret, "127.0.0.1:1")); kindOf(err) != gitstate.KindUnauthorized {
		t.Errorf("a revoked token after reopening: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	now := time.Now()
	good, _ := s.CreateToken(ctx, api.TokenSpec{Name: "alice", Scopes: []api.Scope{api.ScopeRead, api.ScopeWrite}, Repos: []string{"default"}})
	brief, _ := s.CreateToken(ctx, api.TokenSpec{Name: "brief", Scopes: []api.Scope{api.ScopeRead}, ExpiresAt: now.Add(time.Hour)})
	a := NewAuthenticator(s, "env secret", Limits{})

	p, err := a.Authenticate(request(good.Secret, "127.0.0.1:1"))
	if err != nil || p.Name != "alice" || p.TokenID != good.ID || !p.HasScope(api.ScopeWrite) || p.CanRepo("other") {
		t.Fatalf("good token: %+v %v", p, err)
	}
	if p, err := a.Authenticate(request("env secret", "127.0.0.1:1")); err != nil || p.TokenID != EnvAdminID || !p.HasScope(api.ScopeAdmin) {
		t.Errorf("environment token: %+v %v", p, err)
	}
	// Basic authentication's password works too, and the scheme's case.
	r := request("", "127.0.0.1:1")
	r.SetBasicAuth("x", good.Secret)
	if _, err := a.Authenticate(r); err != nil {
		t.Errorf("basic auth: %v", err)
	}
	r = request("", "127.0.0.1:1")
	r.Header.Set("Authorization", "bearer "+good.Secret)
	if _, err := a.Authenticate(r); err != nil {
		t.Errorf("lower-case bearer: %v", err)
	}

	id, secret, _ := parseToken(good.Secret)
	wrongSecret := tokenPrefix + id + "_" + strings.Repeat("A", secretLen)
	if secret == strings.Repeat("A", secretLen) {
		t.Skip("improbable secret")
	}
	for name, tok := range map[string]string{
		"missing":      "",
		"malformed":    "hello",
		"unknown":      "gst_AAAAAAAAAAAA_" + strings.Repeat("B", secretLen),
		"wrong secret": wrongSecret,
		"env prefix":   "env secre",
	} {
		_, err := a.Authenticate(request(tok, "127.0.0.1:1"))
		if kindOf(err) != gitstate.KindUnauthorized {
			t.Errorf("%s: %v", name, err)
		}
		if tok != "" && strings.Contains(err.Error(), tok) {
			t.Errorf("%s: the error shows the token: %v", name, err)
		}
	}
	a.now = func() time.Time { return now.Add(2 * time.Hour) }
	_, err = a.Authenticate(request(brief.Secret, "127.0.0.1:1"))
	var ge *gitstate.Error
	if !errors.As(err, &ge) || ge.Code != "token_expired" {
		t.Errorf("expired: %v", err)
	}
}

func TestFailedAuthenticationsAreLimitedPerAddress(t *testing.T) {
	s := newTestStore(t)
	good, _ := s.CreateToken(context.Background(), api.TokenSpec{Name: "a", Scopes: []api.Scope{api.ScopeRead}})
	a := NewAuthenticator(s, "", Limits{FailRate: 1, FailBurst: 3})
	for i := range 3 {
		if _, err := a.Authenticate(request("bad", "10.0.0.1:5")); kindOf(err) != gitstate.KindUnauthorized {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	_, err := a.Authenticate(request(good.Secret, "10.0.0.1:6"))
	var ra *api.RetryAfter
	if kindOf(err) != gitstate.KindTooManyRequests || !errors.As(err, &ra) || ra.After <= 0 || ra.After > time.Second {
		t.Fatalf("after the burst, from the same address: %v", err)
	}
	if _, err := a.Authenticate(request(good.Secret, "10.0.0.2:6")); err != nil {
		t.Errorf("another address: %v", err)
	}
	// IPv6 addresses of one /64 share an allowance.
	for i := range 3 {
		a.Authenticate(request("bad", "[2001:db8::"+string(rune('1'+i))+"]:5"))
	}
	if _, err := a.Authenticate(request(good.Secret, "[2001:db8::ffff]:5")); kindOf(err) != gitstate.KindTooManyRequests {
		t.Errorf("same /64: %v", err)
	}
	if _, err := a.Authenticate(request(good.Secret, "[2001:db8:0:1::1]:5")); err != nil {
		t.Errorf("another /64: %v", err)
	}
}

func TestAddrLimiterStaysBounded(t *testing.T) {
	l := newAddrLimiter(1000, 1)
	for i := range maxAddrs * 3 {
		l.fail(string(rune(i)))
	}
	if n := len(l.addrs); n > maxAddrs {
		t.Errorf("%d addresses remembered, bound %d", n, maxAddrs)
	}
}

func TestTokenRate(t *testing.T) {
	s := newTestStore(t)
	tok, _ := s.CreateToken(context.Background(), api.TokenSpec{Name: "a", Scopes: []api.Scope{api.ScopeRead}})
	a := NewAuthenticator(s, "", Limits{TokenRate: 0.5, TokenBurst: 2})
	for range 2 {
		if _, err := a.Authenticate(request(tok.Secret, "127.0.0.1:1")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := a.Authenticate(request(tok.Secret, "127.0.0.1:1"))
	var ra *api.RetryAfter
	if kindOf(err) != gitstate.KindTooManyRequests || !errors.As(err, &ra) || ra.After < time.Second || ra.After > 2*time.Second {
		t.Errorf("over the rate: %v (%v)", err, ra)
	}
}

func TestStreamLimiter(t *testing.T) {
	l := NewStreamLimiter(2)
	r1, ok1 := l.Acquire("a")
	_, ok2 := l.Acquire("a")
	_, ok3 := l.Acquire("a")
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("acquire: %v %v %v", ok1, ok2, ok3)
	}
	if _, ok := l.Acquire("b"); !ok {
		t.Error("another token refused")
	}
	r1()
	r1() // a second release does nothing
	if l.Open("a") != 1 {
		t.Errorf("open after release: %d", l.Open("a"))
	}
	var wg sync.WaitGroup
	unlimited := NewStreamLimiter(0)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, ok := unlimited.Acquire("x")
			if !ok {
				t.Error("unlimited refused")
				return
			}
			rel()
		}()
	}
	wg.Wait()
	if unlimited.Open("x") != 0 {
		t.Errorf("streams left open: %d", unlimited.Open("x"))
	}
}

func TestBootstrapAndFindLocalToken(t *testing.T) {
	data := t.TempDir()
	if _, err := FindLocalToken(data); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no file yet: %v", err)
	}
	s, err := OpenStore(filepath.Join(data, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	tok, path, err := Bootstrap(s, data)
	if err != nil || tok == "" || path != filepath.Join(data, LocalTokenFile) {
		t.Fatalf("bootstrap: %q %q %v", tok, path, err)
	}
	got, err := FindLocalToken(data)
	if err != nil || got != tok {
		t.Fatalf("FindLocalToken: %q %v", got, err)
	}
	if tok2, _, _ := Bootstrap(s, data); tok2 != "" {
		t.Error("a second bootstrap made a token")
	}
	p, err := NewAuthenticator(s, "", Limits{}).Authenticate(request(tok, "127.0.0.1:1"))
	if err != nil || p.Name != AdminName || !p.HasScope(api.ScopeAdmin) || !p.CanRepo("any") {
		t.Errorf("the bootstrap token: %+v %v", p, err)
	}
	os.Chmod(path, 0o644)
	if _, err := FindLocalToken(data); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a readable token file: %v", err)
	}

	// A working directory with gitstate-data/ in it.
	wd := t.TempDir()
	os.MkdirAll(filepath.Join(wd, DefaultDataDir), 0o755)
	os.WriteFile(filepath.Join(wd, DefaultDataDir, LocalTokenFile), []byte(tok+"\n"), 0o600)
	t.Chdir(wd)
	if got, err := FindLocalToken(""); err != nil || got != tok {
		t.Errorf("FindLocalToken in the server's directory: %q %v", got, err)
	}
}

func TestBootstrapFailureLeavesStoreUnconfigured(t *testing.T) {
	data := t.TempDir()
	s, err := OpenStore(filepath.Join(data, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	// admin.token cannot be written: a directory is in the way.
	os.Mkdir(filepath.Join(data, LocalTokenFile), 0o755)
	if _, _, err := Bootstrap(s, data); err == nil {
		t.Fatal("bootstrap succeeded without its file")
	}
	if s.Configured() {
		t.Error("a failed bootstrap left a token nobody holds")
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	s, err := OpenStore(filepath.Join(b.TempDir(), "auth"))
	if err != nil {
		b.Fatal(err)
	}
	tok, _ := s.CreateToken(context.Background(), api.TokenSpec{Name: "a", Scopes: []api.Scope{api.ScopeRead}})
	for _, c := range []struct {
		name   string
		limits Limits
	}{{"unlimited", Limits{}}, {"defaults", DefaultLimits()}} {
		b.Run(c.name, func(b *testing.B) {
			a := NewAuthenticator(s, "env", c.limits)
			a.limits.TokenRate = 1e9 // measure the limiter, never hit it
			if c.limits.TokenRate == 0 {
				a.limits.TokenRate = 0
			}
			r := request(tok.Secret, "127.0.0.1:1")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := a.Authenticate(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
