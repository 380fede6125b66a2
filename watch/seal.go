package watch

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gitstate/gitstate/storage"
)

// keyFile is the name, in the webhooks directory, of the key that seals
// webhook secrets at rest.
const keyFile = "key"

// sealedPrefix marks a secret sealed with AES-256-GCM under the key file:
// "gcm1:" then base64 of nonce and ciphertext.
const sealedPrefix = "gcm1:"

// sealer encrypts webhook secrets at rest with AES-256-GCM under a random
// key kept in its own file (mode 0600), never in Git. A secret is bound to
// its webhook (repo and id are the additional data), so a sealed secret
// copied onto another webhook does not open.
type sealer struct {
	aead cipher.AEAD
}

// openSealer reads the key in dir, creating it when there is none. create
// is false when sealed secrets already exist: a missing key is then an
// error, not a reason to make a new one that cannot open them.
func openSealer(dir string, create bool) (*sealer, error) {
	path := filepath.Join(dir, keyFile)
	key, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		key = make([]byte, 32)
		rand.Read(key)
		if err := storage.WriteFileAtomic(path, key, 0o600); err != nil {
			return nil, fmt.Errorf("write webhook key: %w", err)
		}
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("webhook key %s is missing, but webhooks with sealed secrets exist: restore it, or remove the webhook files", path)
	case err != nil:
		return nil, fmt.Errorf("read webhook key: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("webhook key %s: %d bytes, want 32", path, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal encrypts secret for the webhook ad names.
func (s *sealer) seal(secret []byte, ad string) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(secret)+s.aead.Overhead())
	rand.Read(nonce)
	out := s.aead.Seal(nonce, nonce, secret, []byte(ad))
	return sealedPrefix + base64.StdEncoding.EncodeToString(out)
}

// open decrypts what seal made for the same ad.
func (s *sealer) open(sealed, ad string) ([]byte, error) {
	b64, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return nil, errors.New("not a sealed secret")
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) < s.aead.NonceSize() {
		return nil, errors.New("malformed sealed secret")
	}
	n := s.aead.NonceSize()
	secret, err := s.aead.Open(nil, b[:n], b[n:], []byte(ad))
	if err != nil {
		return nil, errors.New("sealed secret does not open with the webhook key")
	}
	return secret, nil
}
