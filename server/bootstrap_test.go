package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/server"
	"github.com/gitstate/gitstate/server/auth"
)

// TestBootstrap: the first start with no token configured makes an
// administrator token in <data>/admin.token (0600), prints it once outside
// the log, and the token works; the next start makes none.
func TestBootstrap(t *testing.T) {
	ts := startServer(t)
	path := filepath.Join(ts.cfg.DataDir, auth.LocalTokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no admin.token after the first start: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.token mode %04o, want 0600", fi.Mode().Perm())
	}
	if ts.admin == "" || !strings.HasPrefix(ts.admin, "gst_") {
		t.Fatalf("admin.token holds %q", ts.admin)
	}
	if n := strings.Count(ts.banner.String(), ts.admin); n != 1 {
		t.Errorf("the banner shows the token %d times: %s", n, ts.banner.String())
	}
	if !strings.Contains(ts.banner.String(), path) {
		t.Errorf("the banner does not say where the token is: %s", ts.banner.String())
	}
	logs := ts.logs.String()
	if strings.Contains(logs, ts.admin) || !strings.Contains(logs, auth.LocalTokenFile) {
		t.Errorf("the log must say where the token is, without it: %s", logs)
	}
	var list wire.TokenList
	mustJSON(t, ts.mustDo(t, http.StatusOK, http.MethodGet, "/v1/tokens", ts.admin, nil), &list)
	if len(list.Tokens) != 1 || list.Tokens[0].Name != "admin" || list.Tokens[0].Scopes[0] != "admin" {
		t.Errorf("tokens after bootstrap: %+v", list.Tokens)
	}

	if err := ts.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	again := startServer(t, func(c *server.Config) { c.DataDir = ts.cfg.DataDir })
	if again.banner.String() != "" || again.admin != ts.admin {
		t.Errorf("second start: banner %q, token changed %v", again.banner.String(), again.admin != ts.admin)
	}
	again.mustDo(t, http.StatusOK, http.MethodGet, "/v1/tokens", ts.admin, nil)
}

// TestTokensFileHoldsNoToken: tokens.json (0600) keeps hashes, never a
// token or its secret.
func TestTokensFileHoldsNoToken(t *testing.T) {
	ts := startServer(t)
	var secrets []string
	for _, name := range []string{"a", "b", "c"} {
		secrets = append(secrets, ts.createToken(t, wire.CreateTokenRequest{Name: name, Scopes: []string{"read"}}).Secret)
	}
	secrets = append(secrets, ts.admin)
	path := filepath.Join(ts.cfg.DataDir, "auth", auth.TokensFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range secrets {
		secret := strings.Split(tok, "_")[2]
		if strings.Contains(string(b), tok) || strings.Contains(string(b), secret) {
			t.Errorf("tokens.json holds a token in plain text")
		}
		sum := sha256.Sum256([]byte(secret))
		if !strings.Contains(string(b), hex.EncodeToString(sum[:])) {
			t.Errorf("tokens.json lacks the hash of a token")
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("tokens.json mode %04o, want 0600", fi.Mode().Perm())
	}
	leftovers, _ := filepath.Glob(filepath.Join(ts.cfg.DataDir, "auth", ".*tmp"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}
