package api

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/gitstate/gitstate"
)

// Scope is a permission a token holds.
type Scope string

// The scopes. ScopeAdmin implies every other scope.
const (
	ScopeRead         Scope = "read"
	ScopeWrite        Scope = "write"
	ScopeTxn          Scope = "txn"
	ScopeApprove      Scope = "approve"
	ScopeSecretsRead  Scope = "secrets:read"
	ScopeSecretsWrite Scope = "secrets:write"
	ScopeAdmin        Scope = "admin"
)

// AllScopes lists every scope.
var AllScopes = []Scope{ScopeRead, ScopeWrite, ScopeTxn, ScopeApprove, ScopeSecretsRead, ScopeSecretsWrite, ScopeAdmin}

// Principal is who makes a request: the holder of a token.
type Principal struct {
	// TokenID identifies the token (never the token itself).
	TokenID string
	// Name is the identity: the commit author and the audit log's subject.
	Name  string
	Email string
	// Scopes the token holds.
	Scopes []Scope
	// Repos the token may touch; "*" means all.
	Repos []string
	// Prefixes the token's keys must start with; empty means all keys.
	Prefixes []string
}

// HasScope reports whether p holds s (admin holds every scope).
func (p *Principal) HasScope(s Scope) bool {
	return slices.Contains(p.Scopes, s) || slices.Contains(p.Scopes, ScopeAdmin)
}

// CanRepo reports whether p may touch repo.
func (p *Principal) CanRepo(repo string) bool {
	return slices.Contains(p.Repos, "*") || slices.Contains(p.Repos, repo)
}

// CanKey reports whether key lies under one of p's prefixes.
func (p *Principal) CanKey(key string) bool {
	if len(p.Prefixes) == 0 {
		return true
	}
	for _, pre := range p.Prefixes {
		if strings.HasPrefix(key, pre) {
			return true
		}
	}
	return false
}

// CoversPrefix reports whether every key starting with prefix lies under one
// of p's prefixes.
func (p *Principal) CoversPrefix(prefix string) bool {
	if len(p.Prefixes) == 0 {
		return true
	}
	for _, pre := range p.Prefixes {
		if strings.HasPrefix(prefix, pre) {
			return true
		}
	}
	return false
}

// Unrestricted reports whether p may see every key.
func (p *Principal) Unrestricted() bool { return len(p.Prefixes) == 0 }

// Authenticator identifies the caller of a request.
type Authenticator interface {
	// Authenticate returns the request's principal, or an error of kind
	// KindUnauthorized (or KindTooManyRequests).
	Authenticate(r *http.Request) (*Principal, error)
}

// AuditEvent is what the audit log records of a request.
type AuditEvent struct {
	RequestID string
	Principal *Principal // nil when unauthenticated
	Remote    string
	Method    string
	Route     string
	Action    string
	Repo      string
	Keys      []string
	Status    int
	Revision  int64
}

// Auditor records audit events. Record must make the event durable before it
// returns: the response waits for it.
type Auditor interface {
	Record(ctx context.Context, ev AuditEvent) error
}

// reqInfo is what a handler learns about its request, for the audit log and
// the metrics. It travels in the request's context.
type reqInfo struct {
	id         string
	route      string
	action     string
	principal  *Principal
	repo       string
	keys       []string
	revision   int64
	secretRead bool
	// git is set on Git protocol routes; readOnly on POSTs that change
	// nothing (fetches).
	git, readOnly bool
	// outcome, when set, is the status the audit log records instead of
	// the response's: a push answers 200 and reports refusals in Git's
	// protocol.
	outcome int
}

type ctxKey struct{}

func infoOf(r *http.Request) *reqInfo {
	i, _ := r.Context().Value(ctxKey{}).(*reqInfo)
	return i
}

func requestID(r *http.Request) string {
	if i := infoOf(r); i != nil {
		return i.id
	}
	return ""
}

// PrincipalOf returns the request's principal (nil before authentication).
func PrincipalOf(r *http.Request) *Principal {
	if i := infoOf(r); i != nil {
		return i.principal
	}
	return nil
}

// authorize checks that the caller holds scope on repo and may touch keys.
// The error is a 403 naming what is missing.
func authorize(r *http.Request, scope Scope, repo string, keys ...string) error {
	p := PrincipalOf(r)
	info := infoOf(r)
	if info != nil {
		info.repo = repo
		if len(keys) > 0 {
			info.keys = keys
		}
	}
	if p == nil {
		return gitstate.Errorf(gitstate.KindUnauthorized, "unauthorized", "authentication required")
	}
	if !p.HasScope(scope) {
		return forbidden("scope:"+string(scope), "token lacks scope %q", scope)
	}
	if repo != "" && !p.CanRepo(repo) {
		return forbidden("repo:"+repo, "token may not access repo %q", repo)
	}
	for _, k := range keys {
		if !p.CanKey(k) {
			return forbidden("prefix:"+k, "token may not access key %q (allowed prefixes: %s)", k, strings.Join(p.Prefixes, ", "))
		}
	}
	return nil
}

func forbidden(missing, format string, args ...any) error {
	e := gitstate.Errorf(gitstate.KindForbidden, "forbidden", format, args...)
	e.Err = &missingErr{what: missing}
	return e
}

// authorizePrefix checks that the caller may read everything under prefix.
// A prefix-limited token asking for a wider prefix is not refused: the
// caller filters what it returns with CanKey.
func authorizeRepo(r *http.Request, scope Scope, repo string) error {
	return authorize(r, scope, repo)
}

func contextWith(ctx context.Context, i *reqInfo) context.Context {
	return context.WithValue(ctx, ctxKey{}, i)
}
