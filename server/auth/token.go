// Package auth is gitstate's access control: the token store
// (<data>/auth/tokens.json, hashes only), the Authenticator that turns a
// bearer token into an api.Principal with per-token and per-address rate
// limits, the per-token limit on concurrent streams, and the first-start
// bootstrap of an administrator token (<data>/admin.token) that the CLI
// finds on its own.
//
// A token reads "gst_<id>_<secret>": id is 12 random base62 characters that
// name the token (in lists, the audit log, revocation); secret is 32 random
// bytes in base62. The server keeps only the SHA-256 of the secret and
// compares it in constant time. No function of this package logs a token.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"math/big"
	"regexp"
	"time"

	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/api/wire"
)

// Token format.
const (
	tokenPrefix = "gst_"
	idLen       = 12
	secretBytes = 32
	// secretLen is the base62 length of 32 bytes: ceil(256 / log2(62)).
	secretLen = 43
)

// EnvAdminID is the token id of the administrator's token given by
// GITSTATE_ADMIN_TOKEN.
const EnvAdminID = "env-admin"

// AdminName is the identity of the administrator's tokens (the one from
// GITSTATE_ADMIN_TOKEN and the one made at first start).
const AdminName = "admin"

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomBase62 returns n characters drawn uniformly from base62.
func randomBase62(n int) string {
	out := make([]byte, 0, n)
	var buf [64]byte
	for len(out) < n {
		rand.Read(buf[:])
		for _, b := range buf {
			// 248 = 4*62: rejecting larger bytes keeps the draw uniform.
			if b < 248 && len(out) < n {
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out)
}

// encodeBase62 writes b as a fixed-width base62 number of width digits.
func encodeBase62(b []byte, width int) string {
	n := new(big.Int).SetBytes(b)
	out := make([]byte, width)
	base := big.NewInt(62)
	mod := new(big.Int)
	for i := width - 1; i >= 0; i-- {
		n.DivMod(n, base, mod)
		out[i] = base62[mod.Int64()]
	}
	return string(out)
}

// newToken returns a fresh token's id and its full text.
func newToken() (id, token string) {
	var secret [secretBytes]byte
	rand.Read(secret[:])
	id = randomBase62(idLen)
	return id, tokenPrefix + id + "_" + encodeBase62(secret[:], secretLen)
}

// tokenLen is the length of every token: "gst_" id "_" secret.
const tokenLen = len(tokenPrefix) + idLen + 1 + secretLen

// parseToken splits a token into its id and secret. It allocates nothing:
// it runs on every request.
func parseToken(tok string) (id, secret string, ok bool) {
	if len(tok) != tokenLen || tok[:len(tokenPrefix)] != tokenPrefix || tok[len(tokenPrefix)+idLen] != '_' {
		return "", "", false
	}
	id, secret = tok[len(tokenPrefix):len(tokenPrefix)+idLen], tok[len(tokenPrefix)+idLen+1:]
	if !isBase62(id) || !isBase62(secret) {
		return "", "", false
	}
	return id, secret, true
}

func isBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// hashSecret returns the stored form of a secret.
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// secretMatches compares a secret with a stored hash in constant time.
func secretMatches(secret string, sum *[sha256.Size]byte) bool {
	got := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(got[:], sum[:]) == 1
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// record is a token as tokens.json keeps it.
type record struct {
	ID string `json:"id"`
	// Hash is the hex SHA-256 of the token's secret.
	Hash      string     `json:"hash"`
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	Repos     []string   `json:"repos"`
	Prefixes  []string   `json:"prefixes,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// wire describes the token for the API, without its hash.
func (rec *record) wire() wire.Token {
	t := wire.Token{
		ID:        rec.ID,
		Name:      rec.Name,
		Scopes:    append([]string{}, rec.Scopes...),
		Repos:     append([]string{}, rec.Repos...),
		Prefixes:  append([]string{}, rec.Prefixes...),
		CreatedAt: rec.CreatedAt,
		CreatedBy: rec.CreatedBy,
	}
	if rec.ExpiresAt != nil {
		e := *rec.ExpiresAt
		t.ExpiresAt = &e
	}
	if rec.RevokedAt != nil {
		r := *rec.RevokedAt
		t.RevokedAt = &r
	}
	return t
}

// principal is the identity the token grants.
func (rec *record) principal() *api.Principal {
	p := &api.Principal{
		TokenID:  rec.ID,
		Name:     rec.Name,
		Repos:    rec.Repos,
		Prefixes: rec.Prefixes,
		Scopes:   make([]api.Scope, len(rec.Scopes)),
	}
	for i, s := range rec.Scopes {
		p.Scopes[i] = api.Scope(s)
	}
	return p
}
