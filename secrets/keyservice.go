package secrets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/hcvault"
	"github.com/getsops/sops/v3/keyservice"
	"google.golang.org/grpc"

	"github.com/gitstate/gitstate"
)

// keyClient is the in-process key service through which SOPS encrypts and
// decrypts data keys: age keys with the server's identities, Vault transit
// keys on the server's Vault with its token. Every other key source (and
// any other Vault) is refused, so that a document cannot make the server
// call out to a service of its choosing. It records what failed, for the
// caller's error message. One keyClient serves one operation.
type keyClient struct {
	e   *Engine
	ctx context.Context

	mu          sync.Mutex // guards failures, unsupported and vaultDown
	failures    []string
	unsupported []string
	vaultDown   bool
}

var _ keyservice.KeyServiceClient = (*keyClient)(nil)

// errUnsupportedKey is the failure for a key source gitstate does not use.
var errUnsupportedKey = errors.New("key source not supported by gitstate")

func (c *keyClient) fail(what string, err error) error {
	c.mu.Lock()
	c.failures = append(c.failures, what+": "+err.Error())
	c.mu.Unlock()
	return err
}

// Encrypt implements keyservice.KeyServiceClient.
func (c *keyClient) Encrypt(_ context.Context, req *keyservice.EncryptRequest, _ ...grpc.CallOption) (*keyservice.EncryptResponse, error) {
	switch k := req.GetKey().GetKeyType().(type) {
	case *keyservice.Key_AgeKey:
		mk, err := sopsage.MasterKeyFromRecipient(k.AgeKey.GetRecipient())
		if err != nil {
			return nil, c.fail("age "+k.AgeKey.GetRecipient(), err)
		}
		if err := mk.Encrypt(req.GetPlaintext()); err != nil {
			return nil, c.fail("age "+k.AgeKey.GetRecipient(), err)
		}
		return &keyservice.EncryptResponse{Ciphertext: mk.EncryptedDataKey()}, nil
	case *keyservice.Key_VaultKey:
		mk, err := c.vaultKey(k.VaultKey)
		if err != nil {
			return nil, err
		}
		if err := mk.EncryptContext(c.ctx, req.GetPlaintext()); err != nil {
			return nil, c.vaultFailed(mk, err)
		}
		return &keyservice.EncryptResponse{Ciphertext: mk.EncryptedDataKey()}, nil
	}
	return nil, c.fail("key", errUnsupportedKey)
}

// Decrypt implements keyservice.KeyServiceClient.
func (c *keyClient) Decrypt(_ context.Context, req *keyservice.DecryptRequest, _ ...grpc.CallOption) (*keyservice.DecryptResponse, error) {
	switch k := req.GetKey().GetKeyType().(type) {
	case *keyservice.Key_AgeKey:
		mk := &sopsage.MasterKey{Recipient: k.AgeKey.GetRecipient(), EncryptedKey: string(req.GetCiphertext())}
		sopsage.ParsedIdentities(c.e.ids).ApplyToMasterKey(mk)
		p, err := mk.Decrypt()
		if err != nil {
			return nil, c.fail("age "+k.AgeKey.GetRecipient(), errors.New("not one of this server's identities"))
		}
		return &keyservice.DecryptResponse{Plaintext: p}, nil
	case *keyservice.Key_VaultKey:
		mk, err := c.vaultKey(k.VaultKey)
		if err != nil {
			return nil, err
		}
		mk.EncryptedKey = string(req.GetCiphertext())
		p, err := mk.DecryptContext(c.ctx)
		if err != nil {
			return nil, c.vaultFailed(mk, err)
		}
		return &keyservice.DecryptResponse{Plaintext: p}, nil
	}
	c.mu.Lock()
	c.unsupported = append(c.unsupported, keyType(req.GetKey()))
	c.mu.Unlock()
	return nil, errUnsupportedKey
}

// vaultKey returns the master key of a Vault transit key, if it is on the
// server's Vault.
func (c *keyClient) vaultKey(k *keyservice.VaultKey) (*hcvault.MasterKey, error) {
	name := fmt.Sprintf("hc_vault %s/v1/%s/keys/%s", k.GetVaultAddress(), k.GetEnginePath(), k.GetKeyName())
	if c.e.vaultAddr == "" {
		return nil, c.fail(name, errors.New("this server has no Vault (--vault-addr)"))
	}
	if normalizeAddr(k.GetVaultAddress()) != c.e.vaultAddr {
		return nil, c.fail(name, fmt.Errorf("not the server's Vault (%s)", c.e.vaultAddr))
	}
	mk := hcvault.NewMasterKey(c.e.vaultAddr, k.GetEnginePath(), k.GetKeyName())
	hcvault.Token(c.e.vaultTok).ApplyToMasterKey(mk)
	if c.e.vaultHTTP != nil {
		hcvault.NewHTTPClient(c.e.vaultHTTP).ApplyToMasterKey(mk)
	}
	return mk, nil
}

// vaultFailed records a Vault failure, noting when Vault could not be
// reached at all.
func (c *keyClient) vaultFailed(mk *hcvault.MasterKey, err error) error {
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, context.DeadlineExceeded) {
		c.mu.Lock()
		c.vaultDown = true
		c.mu.Unlock()
	}
	return c.fail("hc_vault "+mk.ToString(), err)
}

// err reports that the operation what on the document at path failed:
// 503 key_service_failed when a key service (Vault) failed, else 422
// secret_not_decryptable. The message says which keys failed and why;
// key services' errors name keys and servers, never data.
func (c *keyClient) err(path, what string) error {
	kind, code := gitstate.KindUnprocessable, "secret_not_decryptable"
	c.mu.Lock()
	if c.vaultDown || what == "encrypt the data key" {
		kind, code = gitstate.KindUnavailable, "key_service_failed"
	}
	c.mu.Unlock()
	return gitstate.Errorf(kind, code, "%s: cannot %s: %s", path, what, c.summary()).WithKeys(path)
}

// summary describes what failed.
func (c *keyClient) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := ""
	for i, f := range c.failures {
		if i > 0 {
			out += "; "
		}
		out += f
	}
	if len(c.unsupported) > 0 {
		if out != "" {
			out += "; "
		}
		out += fmt.Sprintf("key sources gitstate does not use: %v", c.unsupported)
	}
	if out == "" {
		out = "no master key this server can use"
	}
	return out
}

func keyType(k *keyservice.Key) string {
	switch k.GetKeyType().(type) {
	case *keyservice.Key_KmsKey:
		return "kms"
	case *keyservice.Key_PgpKey:
		return "pgp"
	case *keyservice.Key_GcpKmsKey:
		return "gcp_kms"
	case *keyservice.Key_AzureKeyvaultKey:
		return "azure_kv"
	case *keyservice.Key_HckmsKey:
		return "hckms"
	}
	return "unknown"
}
