package secrets

import (
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/getsops/sops/v3"

	"github.com/gitstate/gitstate"
)

// Suffix marks a secret in a repo's tree: the secret "apps/web/db-password"
// is the file "apps/web/db-password.sops.json", a SOPS JSON document. The
// suffix is part of the tree path only; the secrets API never shows it.
const Suffix = ".sops.json"

// PathOf returns the tree path of the secret key.
func PathOf(key string) string { return key + Suffix }

// KeyOf returns the secret key of a tree path, and whether the path is a
// secret's file at all.
func KeyOf(path string) (string, bool) {
	k, ok := strings.CutSuffix(path, Suffix)
	if !ok || k == "" || strings.HasSuffix(k, "/") {
		return "", false
	}
	return k, true
}

// IsSecretPath reports whether a tree path holds a secret (ends with
// Suffix).
func IsSecretPath(path string) bool {
	_, ok := KeyOf(path)
	return ok
}

// ValidateKey checks a key as the secrets API takes it: it must not carry
// the suffix itself (the API adds it).
func ValidateKey(key string) error {
	if strings.HasSuffix(key, Suffix) {
		return gitstate.Errorf(gitstate.KindInvalid, "invalid_key",
			"a secret's key must not end with %s: the secrets API adds it (write %q)", Suffix, strings.TrimSuffix(key, Suffix)).WithKeys(key)
	}
	return nil
}

// encValue matches a value SOPS encrypted with AES-256-GCM.
var encValue = regexp.MustCompile(`^ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,tag:[A-Za-z0-9+/=]+,type:[a-z]+\]$`)

// CheckDocument checks that doc, written at the secret path path, is a SOPS
// document: a JSON object with a valid "sops" section naming at least one
// master key and a MAC, every value that section says is encrypted being
// an ENC[AES256_GCM,...] string. It needs no key. The error (422
// not_encrypted) names the path of the offending value inside the document,
// never the value.
func CheckDocument(path string, doc []byte) error {
	tree, err := loadDocument(path, doc)
	if err != nil {
		return err
	}
	if tree.Metadata.MasterKeyCount() == 0 {
		return notEncrypted(path, "its sops section names no master key")
	}
	if tree.Metadata.MessageAuthenticationCode == "" || !encValue.MatchString(tree.Metadata.MessageAuthenticationCode) {
		return notEncrypted(path, "its sops section has no encrypted MAC")
	}
	// Let SOPS decide which values must be encrypted (suffixes, regexes):
	// a cipher that checks the format instead of decrypting. SOPS gives
	// the cipher strings only, failing without a place on any other value
	// it expects encrypted: those are made strings the check refuses.
	for _, b := range tree.Branches {
		markNonStrings(b)
	}
	chk := &formatChecker{}
	if _, err := tree.Decrypt(nil, chk); err != nil || chk.bad != "" {
		if chk.bad == "" {
			return notEncrypted(path, "a value is not encrypted")
		}
		return notEncrypted(path, "the value at "+chk.bad+" is not encrypted")
	}
	if chk.n == 0 {
		return notEncrypted(path, "it has no encrypted value")
	}
	return nil
}

// loadDocument parses a SOPS JSON document. Its errors never include the
// parser's message, which may quote the document.
func loadDocument(path string, doc []byte) (*sops.Tree, error) {
	if !looksLikeObject(doc) {
		return nil, notEncrypted(path, "it is not a JSON object")
	}
	tree, err := jsonStore.LoadEncryptedFile(doc)
	if err != nil {
		if errors.Is(err, sops.MetadataNotFound) {
			return nil, notEncrypted(path, "it has no sops section")
		}
		if strings.Contains(err.Error(), "unmarshal") {
			return nil, notEncrypted(path, "it is not valid JSON")
		}
		return nil, notEncrypted(path, "its sops section is not valid")
	}
	return &tree, nil
}

func looksLikeObject(doc []byte) bool {
	s := strings.TrimLeft(string(doc), " \t\r\n")
	return strings.HasPrefix(s, "{")
}

func notEncrypted(path, why string) error {
	return gitstate.Errorf(gitstate.KindUnprocessable, "not_encrypted",
		"%s is a secret's file (%s) and must be a SOPS-encrypted document, but %s; write plaintext through the secrets API instead",
		path, Suffix, why).WithKeys(path)
}

// nonString stands, in a document being checked, for a value that is not a
// string: never in SOPS's encrypted format, and never the value itself.
const nonString = "(not a string)"

// markNonStrings replaces, in place, the numbers, booleans and times under v
// (a branch, a list or a value) with nonString, and returns v.
func markNonStrings(v any) any {
	switch v := v.(type) {
	case sops.TreeBranch:
		for i := range v {
			v[i].Value = markNonStrings(v[i].Value)
		}
	case []any:
		for i := range v {
			v[i] = markNonStrings(v[i])
		}
	case int, bool, float64, time.Time:
		return nonString
	}
	return v
}

// formatChecker is a sops.Cipher that, asked to decrypt, checks that a
// value is in SOPS's encrypted format and remembers the first that is not.
type formatChecker struct {
	n   int
	bad string
}

func (c *formatChecker) Encrypt(any, []byte, string) (string, error) {
	return "", errors.New("formatChecker cannot encrypt")
}

func (c *formatChecker) Decrypt(ciphertext string, _ []byte, where string) (any, error) {
	if !encValue.MatchString(ciphertext) {
		if c.bad == "" {
			c.bad = strings.TrimSuffix(where, ":")
		}
		return "", nil
	}
	c.n++
	return "", nil
}
