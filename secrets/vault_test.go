package secrets

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/gitstate/gitstate"
)

// vaultEnv returns the Vault dev server the integration tests use
// (VAULT_ADDR, VAULT_TOKEN, a transit key "gitstate-test": .ci/run starts
// it with .ci/start-vault.sh). Without one the test is skipped, except in
// CI (CI=true), where a missing Vault is a failure.
func vaultEnv(t *testing.T) (addr, token string) {
	t.Helper()
	addr, token = os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN")
	if addr == "" || token == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("VAULT_ADDR and VAULT_TOKEN are not set, and CI=true: .ci/run must start Vault (.ci/start-vault.sh)")
		}
		t.Skip("VAULT_ADDR is not set: start a Vault dev server with .ci/start-vault.sh and export what it prints to run the Vault tests")
	}
	return addr, token
}

func TestVaultTransit(t *testing.T) {
	addr, token := vaultEnv(t)
	e := newTestEngine(t, Options{VaultAddr: addr, VaultToken: token, CacheEntries: -1})
	secret := []byte("vault-wrapped secret")

	// Vault beside the server's age key: either decrypts.
	both, err := e.ParseConfig([]byte("creation_rules:\n  - hc_vault_transit_uri: transit/keys/gitstate-test\n    age: " + e.Recipient() + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := e.Encrypt(ctx, "v.sops.json", secret, both)
	if err != nil {
		t.Fatal(err)
	}
	sec := sopsSection(t, doc)
	hv, _ := sec["hc_vault"].([]any)
	if len(hv) != 1 || hv[0].(map[string]any)["key_name"] != "gitstate-test" || hv[0].(map[string]any)["vault_address"] != addr {
		t.Fatalf("hc_vault section: %v", sec["hc_vault"])
	}
	if p, err := e.Decrypt(ctx, "v.sops.json", doc); err != nil || !bytes.Equal(p, secret) {
		t.Fatalf("decrypt: %q %v", p, err)
	}

	// Vault alone: the server's age key is not added, and a server with
	// another age identity decrypts through Vault.
	only, err := e.ParseConfig([]byte("creation_rules:\n  - hc_vault_transit_uri: " + addr + "/v1/transit/keys/gitstate-test\n"))
	if err != nil {
		t.Fatal(err)
	}
	vdoc, err := e.Encrypt(ctx, "v.sops.json", secret, only)
	if err != nil {
		t.Fatal(err)
	}
	if got := sopsSection(t, vdoc)["age"]; got != nil {
		t.Errorf("a Vault-only rule got age recipients: %v", got)
	}
	other := newTestEngine(t, Options{VaultAddr: addr, VaultToken: token, CacheEntries: -1})
	if p, err := other.Decrypt(ctx, "v.sops.json", vdoc); err != nil || !bytes.Equal(p, secret) {
		t.Fatalf("decrypt through Vault with another age identity: %q %v", p, err)
	}
	// Rotation through Vault.
	rotated, changed, err := other.Reencrypt(ctx, "v.sops.json", vdoc, only, true)
	if err != nil || !changed {
		t.Fatalf("rotate: %v %v", changed, err)
	}
	if p, err := e.Decrypt(ctx, "v.sops.json", rotated); err != nil || !bytes.Equal(p, secret) {
		t.Fatalf("decrypt rotated: %q %v", p, err)
	}

	// A server without Vault, or with a bad token, cannot.
	noVault := newTestEngine(t, Options{CacheEntries: -1})
	_, err = noVault.Decrypt(ctx, "v.sops.json", vdoc)
	var ge *gitstate.Error
	if !errors.As(err, &ge) || ge.Code != "secret_not_decryptable" || !strings.Contains(err.Error(), "no Vault") {
		t.Errorf("without Vault: %v", err)
	}
	badToken := newTestEngine(t, Options{VaultAddr: addr, VaultToken: "not-a-token", CacheEntries: -1})
	if _, err := badToken.Decrypt(ctx, "v.sops.json", vdoc); err == nil {
		t.Errorf("a bad Vault token decrypts")
	} else if strings.Contains(err.Error(), string(secret)) || strings.Contains(err.Error(), token) {
		t.Errorf("error quotes a secret or the token: %v", err)
	}
	// A document naming another Vault is not sent there.
	foreign := bytes.ReplaceAll(vdoc, []byte(addr), []byte("http://127.0.0.1:1"))
	if _, err := e.Decrypt(ctx, "v.sops.json", foreign); err == nil || !strings.Contains(err.Error(), "not the server's Vault") {
		t.Errorf("foreign Vault: %v", err)
	}

	// Vault unreachable: 503.
	down := newTestEngine(t, Options{VaultAddr: "http://127.0.0.1:1", VaultToken: token, CacheEntries: -1})
	cfgDown, err := down.ParseConfig([]byte("creation_rules:\n  - hc_vault_transit_uri: transit/keys/gitstate-test\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := down.Encrypt(ctx, "v.sops.json", secret, cfgDown); gitstate.KindOf(err) != gitstate.KindUnavailable {
		t.Errorf("encrypt with Vault down: %v, want unavailable", err)
	}
	if _, err := down.Decrypt(ctx, "v.sops.json", foreign); gitstate.KindOf(err) != gitstate.KindUnavailable {
		t.Errorf("decrypt with Vault down: %v, want unavailable", err)
	}
}
