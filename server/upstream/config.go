package upstream

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
)

// Upstreams are configured per repo in <data>/upstreams/<repo>.json (mode
// 0600). The credentials and the webhook secret in it are sealed with
// AES-256-GCM under the server's key, <data>/server.key (mode 0600, made at
// first use), with the repo's name as additional data, so a sealed blob
// moved to another repo's file does not open. Nothing of it is in Git.

// KeyFile is the server's key, in the data directory.
const KeyFile = "server.key"

// config is one repo's upstream, secrets opened.
type config struct {
	URL      string
	Mode     string
	Branch   string
	Username string
	PushTxns bool
	Interval time.Duration
	secrets
}

// secrets are the sealed part of a config.
type secrets struct {
	Password      string `json:"password,omitempty"`
	Token         string `json:"token,omitempty"`
	WebhookSecret string `json:"webhook_secret,omitempty"`
}

// header returns the HTTP header that carries the credentials, if any.
func (c *config) header() string {
	switch {
	case c.Token != "":
		return "Authorization: Bearer " + c.Token
	case c.Password != "" || c.Username != "":
		return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(c.Username+":"+c.Password))
	}
	return ""
}

func (c *config) wire(repo string) wire.Upstream {
	return wire.Upstream{
		Repo: repo, URL: storage.RedactURL(c.URL), Mode: c.Mode, Branch: c.Branch, Username: c.Username, PushTxns: c.PushTxns,
		Interval: wire.Duration(c.Interval), Credentials: c.Password != "" || c.Token != "", Webhook: c.WebhookSecret != "",
	}
}

// fileConfig is a config as stored.
type fileConfig struct {
	Version  int    `json:"version"`
	URL      string `json:"url"`
	Mode     string `json:"mode"`
	Branch   string `json:"branch"`
	Username string `json:"username,omitempty"`
	PushTxns bool   `json:"push_txns,omitempty"`
	Interval string `json:"interval"`
	// Sealed is base64(nonce | AES-256-GCM(secrets as JSON)).
	Sealed string `json:"sealed,omitempty"`
}

// keyring seals and opens secrets with the server's key.
type keyring struct {
	aead cipher.AEAD
}

// loadKey reads the server's key, making it on first use. A key file that
// others may read is made private again.
func loadKey(path string) (*keyring, bool, error) {
	made := false
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, false, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("make the server key: %w", err)
		}
		_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
		if serr := f.Sync(); werr == nil {
			werr = serr
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(path)
			return nil, false, fmt.Errorf("make the server key: %w", werr)
		}
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			d.Sync()
			d.Close()
		}
		b, made = []byte(hex.EncodeToString(key)), true
	} else if err != nil {
		return nil, false, fmt.Errorf("read the server key: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, false, fmt.Errorf("server key %s is readable by others and cannot be made private: %w", path, err)
		}
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, false, fmt.Errorf("server key %s: want 64 hex digits", path)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, false, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, false, err
	}
	return &keyring{aead: aead}, made, nil
}

func (k *keyring) seal(plain []byte, ad string) string {
	nonce := make([]byte, k.aead.NonceSize())
	rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(k.aead.Seal(nonce, nonce, plain, []byte(ad)))
}

func (k *keyring) open(sealed, ad string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < k.aead.NonceSize() {
		return nil, errors.New("sealed secrets are malformed")
	}
	plain, err := k.aead.Open(nil, b[:k.aead.NonceSize()], b[k.aead.NonceSize():], []byte(ad))
	if err != nil {
		return nil, errors.New("sealed secrets do not open with the server key (was server.key replaced?)")
	}
	return plain, nil
}

func additionalData(repo string) string { return "gitstate upstream secrets for repo " + repo }

// store keeps the configs of a server.
type store struct {
	dir  string
	keys *keyring
}

func (s *store) path(repo string) string { return filepath.Join(s.dir, repo+".json") }

func (s *store) save(repo string, c *config) error {
	fc := fileConfig{Version: 1, URL: c.URL, Mode: c.Mode, Branch: c.Branch, Username: c.Username, PushTxns: c.PushTxns,
		Interval: c.Interval.String()}
	if c.secrets != (secrets{}) {
		plain, err := json.Marshal(c.secrets)
		if err != nil {
			return err
		}
		fc.Sealed = s.keys.seal(plain, additionalData(repo))
	}
	b, err := json.MarshalIndent(fc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, ".tmp-"+repo+"-")
	if err != nil {
		return err
	}
	_, werr := f.Write(append(b, '\n'))
	if err := f.Chmod(0o600); werr == nil {
		werr = err
	}
	if err := f.Sync(); werr == nil {
		werr = err
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Rename(f.Name(), s.path(repo))
	}
	if werr != nil {
		os.Remove(f.Name())
		return werr
	}
	return syncDir(s.dir)
}

func (s *store) remove(repo string) error {
	if err := os.Remove(s.path(repo)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(s.dir)
}

// load returns every stored config, by repo.
func (s *store) load() (map[string]*config, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]*config{}
	for _, e := range ents {
		repo, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var fc fileConfig
		if err := json.Unmarshal(b, &fc); err != nil {
			return nil, fmt.Errorf("upstream of %s: %w", repo, err)
		}
		iv, err := time.ParseDuration(fc.Interval)
		if err != nil {
			return nil, fmt.Errorf("upstream of %s: interval: %w", repo, err)
		}
		c := &config{URL: fc.URL, Mode: fc.Mode, Branch: fc.Branch, Username: fc.Username, PushTxns: fc.PushTxns, Interval: iv}
		if fc.Sealed != "" {
			plain, err := s.keys.open(fc.Sealed, additionalData(repo))
			if err != nil {
				return nil, fmt.Errorf("upstream of %s: %w", repo, err)
			}
			if err := json.Unmarshal(plain, &c.secrets); err != nil {
				return nil, fmt.Errorf("upstream of %s: secrets: %w", repo, err)
			}
		}
		out[repo] = c
	}
	return out, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
