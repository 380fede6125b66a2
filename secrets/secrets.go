// Package secrets keeps secret values as SOPS documents: each value is
// encrypted with AES-256-GCM under a random data key, the data key is
// encrypted to the recipients (age keys, Vault transit keys) the repo's
// .gitstate/sops.yaml names for it, and a MAC over the values is stored
// encrypted beside them. The documents are standard SOPS JSON: the sops CLI
// decrypts them, and documents the sops CLI made are read here.
//
// This package is the only one of gitstate that imports SOPS and age. Its
// surface is small: Encrypt, Decrypt and Reencrypt of one document, the
// naming of secrets in a tree (Suffix, PathOf, KeyOf), the parsing of a
// repo's rules (ParseConfig) and the checking of a document written by
// other means (CheckDocument).
//
// Nothing here writes plaintext anywhere but to the caller's memory: the
// only plaintext kept is an in-memory, bounded cache of decrypted
// documents, which Forget drops. Errors never include plaintext, nor the
// SOPS library's own messages when they could quote a document.
//
// Caveat: the SOPS library reads /etc/sops/audit.yaml when the process
// starts (its own audit hook, which gitstate does not use); do not create
// that file on a gitstate server.
package secrets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/hcvault"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/logging"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	"github.com/getsops/sops/v3/version"

	"github.com/gitstate/gitstate"
)

// Options configures an Engine.
type Options struct {
	// KeyFile is the server's age identity file (created with a new
	// identity, mode 0600, when missing). Its first identity's recipient
	// is the default recipient; further identities only decrypt (keep an
	// old identity there while rotating to a new one).
	KeyFile string
	// VaultAddr, when set, lets Vault transit keys on that server be
	// recipients (SOPS's hc_vault key source); VaultToken authenticates
	// (from VAULT_TOKEN). Vault keys on other servers are never contacted.
	VaultAddr  string
	VaultToken string
	// VaultHTTPClient, if set, is used for Vault requests.
	VaultHTTPClient *http.Client
	// CacheEntries bounds the plaintext cache (default 1024; negative
	// disables it). CacheMaxValue is the largest plaintext it keeps
	// (default 64 KiB).
	CacheEntries  int
	CacheMaxValue int
	Logger        *slog.Logger
}

// Engine encrypts and decrypts secrets. It is safe for concurrent use.
type Engine struct {
	ids       []age.Identity
	recipient string
	vaultAddr string
	vaultTok  string
	vaultHTTP *http.Client
	log       *slog.Logger
	cache     *plainCache
}

// jsonStore reads and writes SOPS JSON documents. binaryStore wraps opaque
// bytes as the document {"data": <bytes>} (SOPS's binary format).
var (
	jsonStore   = sopsjson.NewStore(&config.JSONStoreConfig{Indent: 2})
	binaryStore = sopsjson.NewBinaryStore(&config.JSONBinaryStoreConfig{Indent: 2})
)

var quietOnce sync.Once

// quietSOPS silences the SOPS library's own loggers: gitstate reports
// through its errors and its logger.
func quietSOPS() {
	quietOnce.Do(func() {
		for _, l := range logging.Loggers {
			l.SetOutput(io.Discard)
		}
	})
}

// New returns an Engine, creating the key file on first use.
func New(opts Options) (*Engine, error) {
	quietSOPS()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.KeyFile == "" {
		return nil, errors.New("secrets: no age key file")
	}
	ids, rcpt, created, err := loadOrCreateIdentities(opts.KeyFile)
	if err != nil {
		return nil, err
	}
	if created {
		opts.Logger.Warn("generated the server's age identity: back it up (see docs/SECRETS.md)", "file", opts.KeyFile, "recipient", rcpt)
	} else if fi, err := os.Stat(opts.KeyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		opts.Logger.Warn("the age key file is readable by others: chmod 600 it", "file", opts.KeyFile, "mode", fi.Mode().Perm().String())
	}
	e := &Engine{
		ids:       ids,
		recipient: rcpt,
		vaultAddr: normalizeAddr(opts.VaultAddr),
		vaultTok:  opts.VaultToken,
		vaultHTTP: opts.VaultHTTPClient,
		log:       opts.Logger,
	}
	if e.vaultAddr != "" {
		if _, err := parseVaultURI(e.vaultAddr+"/v1/transit/keys/x", ""); err != nil {
			return nil, fmt.Errorf("secrets: bad Vault address %q: want http(s)://host:port", opts.VaultAddr)
		}
		if e.vaultTok == "" {
			return nil, errors.New("secrets: a Vault address is set but no token (set VAULT_TOKEN)")
		}
	}
	entries, maxValue := opts.CacheEntries, opts.CacheMaxValue
	if entries == 0 {
		entries = 1024
	}
	if maxValue <= 0 {
		maxValue = 64 << 10
	}
	if entries > 0 {
		e.cache = newPlainCache(entries, maxValue)
	}
	return e, nil
}

// Recipient returns the server's age recipient (age1...), the default
// recipient of every secret.
func (e *Engine) Recipient() string { return e.recipient }

// VaultAddr returns the Vault server whose transit keys may be recipients
// ("" when none).
func (e *Engine) VaultAddr() string { return e.vaultAddr }

// ParseConfig parses a repo's .gitstate/sops.yaml and checks that this
// server can use every key it names (a Vault key needs the server's Vault).
func (e *Engine) ParseConfig(data []byte) (*Config, error) {
	c, err := ParseConfig(data)
	if err != nil {
		return nil, err
	}
	for i := range c.CreationRules {
		if _, _, err := e.keyGroups(&c.CreationRules[i]); err != nil {
			return nil, invalidConfig("creation_rules[%d]: %v", i, err)
		}
	}
	return c, nil
}

// Encrypt returns a new SOPS document holding plaintext, for the tree path
// path (<key>.sops.json), encrypted to the recipients cfg's rules give that
// path (cfg may be nil: the server's key only). Every call makes a new data
// key and new nonces: two documents of one plaintext differ. The document
// is SOPS's binary format, {"data": "ENC[...]", "sops": {...}}.
func (e *Engine) Encrypt(ctx context.Context, path string, plaintext []byte, cfg *Config) ([]byte, error) {
	if len(plaintext) == 0 {
		return nil, gitstate.Errorf(gitstate.KindInvalid, "invalid_request", "a secret's value must not be empty").WithKeys(path)
	}
	groups, threshold, err := e.keyGroups(cfg.RuleFor(path))
	if err != nil {
		return nil, gitstate.Errorf(gitstate.KindUnprocessable, "invalid_sops_config", "%s: recipients of %s: %v", ConfigKey, path, err).WithKeys(path)
	}
	branches, err := binaryStore.LoadPlainFile(plaintext)
	if err != nil {
		return nil, errors.New("secrets: cannot wrap the value")
	}
	tree := sops.Tree{
		Branches: branches,
		Metadata: sops.Metadata{
			KeyGroups:         groups,
			ShamirThreshold:   threshold,
			UnencryptedSuffix: "_unencrypted",
			Version:           version.Version,
		},
	}
	dataKey, err := e.newDataKey(ctx, &tree, path)
	if err != nil {
		return nil, err
	}
	doc, err := e.seal(&tree, dataKey, path)
	if err != nil {
		return nil, err
	}
	e.cache.add(doc, plaintext)
	return doc, nil
}

// Decrypt returns the plaintext of a SOPS document: for SOPS's binary
// format ({"data": ...}, what Encrypt writes) the bytes of data; for any
// other document (one the sops CLI made from a JSON file, say) the
// decrypted JSON document. The MAC is checked. The returned slice is the
// caller's.
func (e *Engine) Decrypt(ctx context.Context, path string, doc []byte) ([]byte, error) {
	if p, ok := e.cache.get(doc); ok {
		return p, nil
	}
	tree, err := loadDocument(path, doc)
	if err != nil {
		return nil, err
	}
	dataKey, err := e.dataKey(ctx, tree, path)
	if err != nil {
		return nil, err
	}
	if err := openTree(tree, dataKey, path); err != nil {
		return nil, err
	}
	plain, err := plainOf(tree)
	if err != nil {
		return nil, undecryptable(path, "its decrypted content cannot be written out")
	}
	e.cache.add(doc, plain)
	return plain, nil
}

// Equal reports whether doc decrypts to plaintext, comparing in constant
// time.
func (e *Engine) Equal(ctx context.Context, path string, doc, plaintext []byte) (bool, error) {
	p, err := e.Decrypt(ctx, path, doc)
	if err != nil {
		return false, err
	}
	defer clear(p)
	return subtle.ConstantTimeCompare(p, plaintext) == 1, nil
}

// Reencrypt re-encrypts a document to the recipients cfg's rules now give
// path. With newDataKey, every value is decrypted and encrypted again under
// a new data key (so a removed recipient cannot decrypt the new version),
// and changed is always true. Without it, only the data key's wrapping
// changes (SOPS's updatekeys): the document is returned unchanged, with
// changed false, when its recipients already are the rule's. The
// document's shape and SOPS settings are kept either way.
func (e *Engine) Reencrypt(ctx context.Context, path string, doc []byte, cfg *Config, newDataKey bool) (out []byte, changed bool, err error) {
	tree, err := loadDocument(path, doc)
	if err != nil {
		return nil, false, err
	}
	groups, threshold, err := e.keyGroups(cfg.RuleFor(path))
	if err != nil {
		return nil, false, gitstate.Errorf(gitstate.KindUnprocessable, "invalid_sops_config", "%s: recipients of %s: %v", ConfigKey, path, err).WithKeys(path)
	}
	oldKey, err := e.dataKey(ctx, tree, path)
	if err != nil {
		return nil, false, err
	}
	if !newDataKey {
		if sameRecipients(tree.Metadata.KeyGroups, groups) && tree.Metadata.ShamirThreshold == effectiveThreshold(threshold, len(groups)) {
			return doc, false, nil
		}
		tree.Metadata.KeyGroups, tree.Metadata.ShamirThreshold = groups, threshold
		kc := e.keyClient(ctx)
		if errs := tree.Metadata.UpdateMasterKeysWithKeyServices(oldKey, []keyservice.KeyServiceClient{kc}); len(errs) > 0 {
			return nil, false, kc.err(path, "encrypt the data key")
		}
		out, err := jsonStore.EmitEncryptedFile(*tree)
		if err != nil {
			return nil, false, fmt.Errorf("secrets: cannot write the document %s", path)
		}
		return out, true, nil
	}
	if err := openTree(tree, oldKey, path); err != nil {
		return nil, false, err
	}
	tree.Metadata.KeyGroups, tree.Metadata.ShamirThreshold = groups, threshold
	tree.Metadata.DataKey = nil
	tree.Metadata.Version = version.Version
	dataKey, err := e.newDataKey(ctx, tree, path)
	if err != nil {
		return nil, false, err
	}
	out, err = e.seal(tree, dataKey, path)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// Forget drops every cached plaintext (after a rotation, say).
func (e *Engine) Forget() { e.cache.purge() }

// keyClient returns a key service for one operation: this engine's own,
// in-process.
func (e *Engine) keyClient(ctx context.Context) *keyClient { return &keyClient{e: e, ctx: ctx} }

// newDataKey makes a data key and encrypts it to the tree's key groups.
func (e *Engine) newDataKey(ctx context.Context, tree *sops.Tree, path string) ([]byte, error) {
	kc := e.keyClient(ctx)
	dataKey, errs := tree.GenerateDataKeyWithKeyServices([]keyservice.KeyServiceClient{kc})
	if len(errs) > 0 {
		return nil, kc.err(path, "encrypt the data key")
	}
	return dataKey, nil
}

// dataKey decrypts a document's data key with the keys this server holds.
func (e *Engine) dataKey(ctx context.Context, tree *sops.Tree, path string) ([]byte, error) {
	kc := e.keyClient(ctx)
	k, err := tree.Metadata.GetDataKeyWithKeyServices([]keyservice.KeyServiceClient{kc}, []string{sopsage.KeyTypeIdentifier, hcvault.KeyTypeIdentifier})
	if err != nil {
		return nil, kc.err(path, "decrypt the data key")
	}
	return k, nil
}

// seal encrypts the tree's values under dataKey, sets its MAC and writes
// the document.
func (e *Engine) seal(tree *sops.Tree, dataKey []byte, path string) ([]byte, error) {
	c := aes.NewCipher()
	mac, err := tree.Encrypt(dataKey, c)
	if err != nil {
		return nil, fmt.Errorf("secrets: cannot encrypt %s", path)
	}
	tree.Metadata.LastModified = time.Now().UTC()
	tree.Metadata.MessageAuthenticationCode, err = c.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("secrets: cannot encrypt the MAC of %s", path)
	}
	doc, err := jsonStore.EmitEncryptedFile(*tree)
	if err != nil {
		return nil, fmt.Errorf("secrets: cannot write the document %s", path)
	}
	return doc, nil
}

// openTree decrypts the tree's values in place and checks its MAC.
func openTree(tree *sops.Tree, dataKey []byte, path string) error {
	c := aes.NewCipher()
	mac, err := tree.Decrypt(dataKey, c)
	if err != nil {
		// SOPS's message may quote a value: say only what failed.
		return undecryptable(path, "a value does not decrypt with its data key")
	}
	fileMac, err := c.Decrypt(tree.Metadata.MessageAuthenticationCode, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return undecryptable(path, "its MAC does not decrypt")
	}
	s, ok := fileMac.(string)
	if !ok || subtle.ConstantTimeCompare([]byte(s), []byte(mac)) != 1 {
		return undecryptable(path, "its MAC does not match its values (the document was altered)")
	}
	return nil
}

// plainOf returns a decrypted tree's plaintext: the bytes of "data" for
// SOPS's binary format, else the JSON document.
func plainOf(tree *sops.Tree) ([]byte, error) {
	if len(tree.Branches) == 1 && len(tree.Branches[0]) == 1 && tree.Branches[0][0].Key == "data" {
		if s, ok := tree.Branches[0][0].Value.(string); ok {
			return []byte(s), nil
		}
	}
	return jsonStore.EmitPlainFile(tree.Branches)
}

func undecryptable(path, why string) error {
	return gitstate.Errorf(gitstate.KindUnprocessable, "secret_not_decryptable", "cannot decrypt %s: %s", path, why).WithKeys(path)
}

// keyGroups turns a rule (nil: none) into SOPS key groups, adding the
// server's recipient to every group holding no key of the server's Vault,
// and returns the Shamir threshold.
func (e *Engine) keyGroups(r *Rule) ([]sops.KeyGroup, int, error) {
	specs, threshold := r.groups()
	out := make([]sops.KeyGroup, 0, len(specs))
	for _, spec := range specs {
		var g sops.KeyGroup
		self, hasVault := false, false
		for _, a := range spec.Age {
			mk, err := sopsage.MasterKeyFromRecipient(a)
			if err != nil {
				return nil, 0, fmt.Errorf("age recipient %q: %w", a, err)
			}
			self = self || mk.Recipient == e.recipient
			g = append(g, mk)
		}
		for _, u := range spec.HCVault {
			if e.vaultAddr == "" {
				return nil, 0, fmt.Errorf("hc_vault %q: this server has no Vault (start it with --vault-addr)", u)
			}
			vk, err := parseVaultURI(u, e.vaultAddr)
			if err != nil {
				return nil, 0, err
			}
			hasVault = true
			g = append(g, hcvault.NewMasterKey(vk.addr, vk.engine, vk.name))
		}
		if !self && !hasVault {
			mk, err := sopsage.MasterKeyFromRecipient(e.recipient)
			if err != nil {
				return nil, 0, err
			}
			g = append([]keys.MasterKey{mk}, g...)
		}
		out = append(out, g)
	}
	return out, threshold, nil
}

// effectiveThreshold is the threshold SOPS records for n groups.
func effectiveThreshold(t, n int) int {
	if n > 1 && t == 0 {
		return n
	}
	return t
}

// sameRecipients reports whether two key group lists name the same master
// keys, group by group (order within a group does not matter).
func sameRecipients(a, b []sops.KeyGroup) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := recipientNames(a[i]), recipientNames(b[i])
		if !slices.Equal(x, y) {
			return false
		}
	}
	return true
}

func recipientNames(g sops.KeyGroup) []string {
	out := make([]string, 0, len(g))
	for _, k := range g {
		out = append(out, k.TypeToIdentifier()+" "+k.ToString())
	}
	slices.Sort(out)
	return out
}

// plainCache keeps recently decrypted plaintexts in memory, keyed by the
// SHA-256 of their (encrypted) document, so that a read or a no-op check
// does not ask Vault again. It is bounded in entries and entry size, and
// Forget empties it. A nil cache keeps nothing.
type plainCache struct {
	mu       sync.Mutex // guards entries and order
	entries  map[[32]byte][]byte
	order    [][32]byte // insertion order, for eviction
	max      int
	maxValue int
}

func newPlainCache(max, maxValue int) *plainCache {
	return &plainCache{entries: map[[32]byte][]byte{}, max: max, maxValue: maxValue}
}

func (c *plainCache) get(doc []byte) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	h := sha256.Sum256(doc)
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.entries[h]
	if !ok {
		return nil, false
	}
	return bytes.Clone(p), true
}

func (c *plainCache) add(doc, plain []byte) {
	if c == nil || len(plain) > c.maxValue {
		return
	}
	h := sha256.Sum256(doc)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[h]; ok {
		return
	}
	for len(c.order) >= c.max {
		old := c.order[0]
		c.order = c.order[1:]
		clear(c.entries[old])
		delete(c.entries, old)
	}
	c.entries[h] = bytes.Clone(plain)
	c.order = append(c.order, h)
}

func (c *plainCache) purge() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, p := range c.entries {
		clear(p)
		delete(c.entries, h)
	}
	c.order = nil
}

// len returns the number of cached plaintexts.
func (c *plainCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
