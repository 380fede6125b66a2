package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

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

// overlapsPrefix reports whether some key starting with prefix lies under
// one of p's prefixes.
func (p *Principal) overlapsPrefix(prefix string) bool {
	if p.CoversPrefix(prefix) {
		return true
	}
	for _, pre := range p.Prefixes {
		if strings.HasPrefix(pre, prefix) {
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
	// KindUnauthorized (or KindTooManyRequests). An error about a token
	// the authenticator knows (revoked, expired, over its rate limit, or
	// sent with a wrong secret) has a *RefusedToken cause, for the audit
	// log.
	Authenticate(r *http.Request) (*Principal, error)
}

// RefusedToken is the cause of an Authenticate error about a token the
// authenticator knows. The audit log names the token on the refusal's
// line; the request is not authenticated.
type RefusedToken struct {
	// TokenID is the token's id (never its secret).
	TokenID string
	// Name is the token's holder when the request proved it holds the
	// token (its secret matched), else empty.
	Name string
	// Err is a further cause, such as a *RetryAfter.
	Err error
}

// Error implements error.
func (e *RefusedToken) Error() string {
	if e.Err != nil {
		return "token " + e.TokenID + ": " + e.Err.Error()
	}
	return "token " + e.TokenID
}

// Unwrap returns the further cause.
func (e *RefusedToken) Unwrap() error { return e.Err }

// TokenChecker is an Authenticator that can tell, after the fact, whether
// the token behind a principal it returned still admits requests. Watch
// streams and long polls outlive the request that authenticated them: they
// check as they go, and end once the token is revoked or expires.
type TokenChecker interface {
	// CheckToken returns nil while p's token is valid, or an error of kind
	// KindUnauthorized (code token_revoked or token_expired) once it is
	// not. It checks in memory and counts nothing against the token's
	// rate limit or its caller's failed authentications.
	CheckToken(p *Principal) error
}

// FailureLimiter counts failed authentications per client address, for
// what Authenticator does not see: an upstream webhook's signature, and
// Git's credential-less first request. Implementations are safe for
// concurrent use.
type FailureLimiter interface {
	// Blocked returns an error of kind KindTooManyRequests (with an
	// *RetryAfter cause) when r's client address has used up its
	// allowance of failed authentications, and nil otherwise. It counts
	// nothing.
	Blocked(r *http.Request) error
	// Failed counts a failed authentication from r's client address.
	Failed(r *http.Request)
}

// StreamLimiter bounds the long-lived streams (watches) one token may hold
// open at once. Implementations are safe for concurrent use.
type StreamLimiter interface {
	// Acquire takes one of tokenID's stream slots. When ok, the caller must
	// call release (once; later calls do nothing) when the stream ends; when
	// the token holds all its slots, ok is false and release is nil.
	Acquire(tokenID string) (release func(), ok bool)
}

// RetryAfter is the cause of a KindTooManyRequests error that knows when
// the caller may try again; the API sends it as the Retry-After header.
type RetryAfter struct {
	After time.Duration
}

// Error implements error.
func (e *RetryAfter) Error() string { return fmt.Sprintf("retry after %s", e.After) }

// AuditEvent is what the audit log records of a request. It never holds a
// value, a secret or a token: only names.
type AuditEvent struct {
	Time      time.Time
	RequestID string
	Principal *Principal // nil when unauthenticated
	Remote    string
	Method    string
	Route     string
	Action    string
	Repo      string
	Keys      []string
	// Target names what an action on something other than keys acted on,
	// such as "token:<id>".
	Target   string
	Status   int
	Revision int64
}

// Auditor records audit events. Record must make the event durable before it
// returns: the response waits for it.
type Auditor interface {
	Record(ctx context.Context, ev AuditEvent) error
}

// LazyAuditor is an Auditor that can also record an event without waiting
// for its line to be durable: the next sync covers it (a later Record's,
// a repo's checkpoint, the close), and a crash of the process does not
// lose it, only one of the machine. The refusals of a token over its rate
// limit are recorded so, so that a client hammering past its limit does
// not cost the disk a sync per refusal.
type LazyAuditor interface {
	Auditor
	RecordLazily(ev AuditEvent) error
}

// LineAuditor is an Auditor that can encode an event's line ahead of time.
// A direct write to a repo then carries its line in the commit's own
// journal record (storage.Batch.Note), durable by the commit's sync, and
// the handler does not Record it again. For that the auditor must also be
// the store's storage.NoteSink (storage.FSOptions.Notes); where it is not,
// the store does not take the line (storage.Result.Noted is false) and
// the request is recorded as any other.
type LineAuditor interface {
	Auditor
	// LineAt encodes ev (but for its revision) ahead of the write, and
	// returns a function that gives the line Record would write for ev at
	// a revision. The function is called on the committer's path: it
	// must be cheap.
	LineAt(ev AuditEvent) (func(revision int64) []byte, error)
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
	target     string
	revision   int64
	secretRead bool
	// git is set on Git protocol routes; readOnly on POSTs that change
	// nothing (fetches).
	git, readOnly bool
	// outcome, when set, is the status the audit log records instead of
	// the response's: a push answers 200 and reports refusals in Git's
	// protocol.
	outcome int
	// quiet is set on answers that are not audited: the 429 of a client
	// address blocked for its failed authentications, given before any
	// token is looked at (the request did nothing, and a blocked client
	// could otherwise write and sync audit lines as fast as it sends
	// requests), and Git's 401 challenge to a request without
	// credentials (every git command begins with one). A token's 429,
	// over its rate limit, is audited.
	quiet bool
	// noted is set when the request's line rode in its commit's journal
	// record (see LineAuditor): it is not recorded again.
	noted bool
	// refused names the token of a request refused by authentication
	// (see RefusedToken), for its audit line only: such a request has no
	// principal.
	refused *Principal
	// vars are the path's variables when the request was routed without
	// gorilla/mux (see Server.ServeHTTP); nil when mux routed it.
	vars *kvVars
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

// authorizeGlobal checks that the caller holds scope on every repo and
// every key: server-wide actions (tokens, the audit log) need it, so that a
// token limited to a repo or a prefix cannot mint itself a wider one.
func authorizeGlobal(r *http.Request, scope Scope) error {
	if err := authorize(r, scope, ""); err != nil {
		return err
	}
	p := PrincipalOf(r)
	if !slices.Contains(p.Repos, "*") {
		return forbidden("repo:*", "this action needs a token for every repo (repos [\"*\"])")
	}
	if !p.Unrestricted() {
		return forbidden("prefix:*", "this action needs a token without key prefixes")
	}
	return nil
}

func contextWith(ctx context.Context, i *reqInfo) context.Context {
	return context.WithValue(ctx, ctxKey{}, i)
}
