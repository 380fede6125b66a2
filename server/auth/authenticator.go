package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api"
)

// Limits bounds what one client may take from the server. A zero field
// disables its limit; DefaultLimits gives the defaults.
type Limits struct {
	// TokenRate is the sustained number of requests per second one token
	// may make, TokenBurst how many it may make at once above that. Beyond
	// them a request gets 429 with Retry-After.
	TokenRate  float64
	TokenBurst int
	// FailRate is the sustained number of failed authentications per
	// second one client address (an IPv4 address, an IPv6 /64) may make,
	// FailBurst how many at once. Beyond them every request from the
	// address gets 429, before its token is even looked at, until the
	// allowance refills: guessing tokens is slowed to FailRate.
	FailRate  float64
	FailBurst int
	// StreamsPerToken bounds the watch streams one token holds open.
	StreamsPerToken int
}

// DefaultLimits returns the defaults: 1,000 requests per second per token
// with bursts of 2,000 (far above what a reconciler or CI job does, low
// enough that one runaway client cannot take the whole server), 10 failed
// authentications per second per address with bursts of 20, and 100 watch
// streams per token.
func DefaultLimits() Limits {
	return Limits{
		TokenRate:       1000,
		TokenBurst:      2000,
		FailRate:        10,
		FailBurst:       20,
		StreamsPerToken: 100,
	}
}

// Authenticator turns a request's bearer token into its principal. It
// implements api.Authenticator and is safe for concurrent use.
type Authenticator struct {
	store  *Store
	env    *api.Principal // the GITSTATE_ADMIN_TOKEN principal, or nil
	envSum [sha256.Size]byte
	limits Limits
	now    func() time.Time

	tokenLimits sync.Map // token id -> *rate.Limiter
	fails       *addrLimiter
}

var (
	_ api.Authenticator = (*Authenticator)(nil)
	_ api.TokenChecker  = (*Authenticator)(nil)
)

// NewAuthenticator returns an Authenticator for the tokens of store and,
// when envToken is not empty, for envToken as the administrator (token id
// EnvAdminID, name AdminName).
func NewAuthenticator(store *Store, envToken string, limits Limits) *Authenticator {
	a := &Authenticator{store: store, limits: limits, now: time.Now}
	if envToken != "" {
		a.envSum = sha256.Sum256([]byte(envToken))
		a.env = &api.Principal{TokenID: EnvAdminID, Name: AdminName, Scopes: []api.Scope{api.ScopeAdmin}, Repos: []string{"*"}}
	}
	if limits.FailRate > 0 && limits.FailBurst > 0 {
		a.fails = newAddrLimiter(rate.Limit(limits.FailRate), limits.FailBurst)
	}
	return a
}

func unauthorized(code, format string, args ...any) error {
	return gitstate.Errorf(gitstate.KindUnauthorized, code, format, args...)
}

// refusedToken is unauthorized for a known token: its cause names the
// token for the audit log (with its holder's name when the request proved
// it holds it).
func refusedToken(id, name, code, format string, args ...any) error {
	e := gitstate.Errorf(gitstate.KindUnauthorized, code, format, args...)
	e.Err = &api.RefusedToken{TokenID: id, Name: name}
	return e
}

func tooMany(after time.Duration, format string, args ...any) *gitstate.Error {
	e := gitstate.Errorf(gitstate.KindTooManyRequests, "too_many_requests", format, args...)
	e.Err = &api.RetryAfter{After: after}
	return e
}

// Authenticate implements api.Authenticator. Errors are of kind
// KindUnauthorized (401) or KindTooManyRequests (429, with an
// *api.RetryAfter cause); their messages never hold the token. An error
// about a token of the store (revoked, expired, over its rate limit, or
// sent with a wrong secret) or about the GITSTATE_ADMIN_TOKEN (over its
// rate limit) has an *api.RefusedToken cause.
func (a *Authenticator) Authenticate(r *http.Request) (*api.Principal, error) {
	var addr string
	if a.fails != nil {
		addr = clientAddr(r.RemoteAddr)
		if wait, blocked := a.fails.blocked(addr); blocked {
			return nil, tooMany(wait, "too many failed authentications from %s; retry later", addr)
		}
	}
	p, err := a.check(r)
	if err != nil {
		if a.fails != nil {
			a.fails.fail(addr)
		}
		return nil, err
	}
	if a.limits.TokenRate > 0 && a.limits.TokenBurst > 0 {
		if wait, ok := a.allow(p.TokenID); !ok {
			e := tooMany(wait, "token %s is over its rate limit of %g requests per second", p.TokenID, a.limits.TokenRate)
			e.Err = &api.RefusedToken{TokenID: p.TokenID, Name: p.Name, Err: e.Err}
			return nil, e
		}
	}
	return p, nil
}

// check returns the principal of the request's token.
func (a *Authenticator) check(r *http.Request) (*api.Principal, error) {
	tok, ok := bearer(r)
	if !ok {
		return nil, unauthorized("unauthorized", "authentication required: send Authorization: Bearer <token> (the CLI reads --token or $GITSTATE_TOKEN)")
	}
	if id, secret, ok := parseToken(tok); ok {
		if e := a.store.lookup(id); e != nil {
			if !secretMatches(secret, &e.sum) {
				return nil, refusedToken(id, "", "unauthorized", "invalid token")
			}
			return a.valid(e)
		}
	}
	if a.env != nil {
		sum := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(sum[:], a.envSum[:]) == 1 {
			return a.env, nil
		}
	}
	if !strings.HasPrefix(tok, tokenPrefix) {
		return nil, unauthorized("unauthorized", "invalid token: a gitstate token reads gst_<id>_<secret>")
	}
	return nil, unauthorized("unauthorized", "invalid token")
}

// valid returns the principal of a token whose secret matched, unless it
// is revoked or expired.
func (a *Authenticator) valid(e *entry) (*api.Principal, error) {
	id := e.rec.ID
	if e.rec.RevokedAt != nil {
		return nil, refusedToken(id, e.p.Name, "token_revoked", "token %s was revoked at %s", id, e.rec.RevokedAt.Format(time.RFC3339))
	}
	if e.rec.ExpiresAt != nil && !a.now().Before(*e.rec.ExpiresAt) {
		return nil, refusedToken(id, e.p.Name, "token_expired", "token %s expired at %s", id, e.rec.ExpiresAt.Format(time.RFC3339))
	}
	return e.p, nil
}

// CheckToken implements api.TokenChecker for a principal Authenticate
// returned: its token must still be in the store, not revoked, and not
// past its expiry. The GITSTATE_ADMIN_TOKEN principal cannot be revoked.
func (a *Authenticator) CheckToken(p *api.Principal) error {
	if a.env != nil && p == a.env {
		return nil
	}
	e := a.store.lookup(p.TokenID)
	if e == nil {
		return unauthorized("token_revoked", "token %s no longer exists", p.TokenID)
	}
	_, err := a.valid(e)
	return err
}

// allow takes one request from the token's allowance, or says how long to
// wait for one.
func (a *Authenticator) allow(id string) (time.Duration, bool) {
	v, ok := a.tokenLimits.Load(id)
	if !ok {
		v, _ = a.tokenLimits.LoadOrStore(id, rate.NewLimiter(rate.Limit(a.limits.TokenRate), a.limits.TokenBurst))
	}
	lim := v.(*rate.Limiter)
	if lim.Allow() {
		return 0, true
	}
	res := lim.Reserve()
	wait := res.Delay()
	res.Cancel()
	return wait, false
}

// bearer returns the request's bearer token (or HTTP basic password, for
// tools that only speak basic authentication).
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		if tok := strings.TrimSpace(h[7:]); tok != "" {
			return tok, true
		}
	}
	if _, pw, ok := r.BasicAuth(); ok && pw != "" {
		return pw, true
	}
	return "", false
}

// clientAddr returns the rate-limiting key of a remote address: the IPv4
// address, or the /64 of an IPv6 one (one host usually holds a whole /64).
func clientAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	if !strings.Contains(host, ":") {
		return host // IPv4: the common case needs no parsing
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}

// maxAddrs bounds the addresses an addrLimiter remembers.
const maxAddrs = 10000

// addrLimiter counts failed authentications per client address.
type addrLimiter struct {
	rate  rate.Limit
	burst int

	mu    sync.Mutex
	addrs map[string]*rate.Limiter // guarded by mu
}

func newAddrLimiter(r rate.Limit, burst int) *addrLimiter {
	return &addrLimiter{rate: r, burst: burst, addrs: map[string]*rate.Limiter{}}
}

// blocked reports whether addr has used its allowance of failures, and
// how long until it has one again.
func (l *addrLimiter) blocked(addr string) (time.Duration, bool) {
	l.mu.Lock()
	lim := l.addrs[addr]
	l.mu.Unlock()
	if lim == nil {
		return 0, false
	}
	tokens := lim.Tokens()
	if tokens >= 1 {
		return 0, false
	}
	return time.Duration((1 - tokens) / float64(l.rate) * float64(time.Second)), true
}

// fail records a failed authentication from addr.
func (l *addrLimiter) fail(addr string) {
	l.mu.Lock()
	lim := l.addrs[addr]
	if lim == nil {
		if len(l.addrs) >= maxAddrs {
			l.sweepLocked()
		}
		lim = rate.NewLimiter(l.rate, l.burst)
		l.addrs[addr] = lim
	}
	l.mu.Unlock()
	lim.Allow()
}

// sweepLocked forgets the addresses whose allowance is full again; if
// that frees nothing, it forgets them all rather than grow without bound.
func (l *addrLimiter) sweepLocked() {
	for a, lim := range l.addrs {
		if lim.Tokens() >= float64(l.burst) {
			delete(l.addrs, a)
		}
	}
	if len(l.addrs) >= maxAddrs {
		clear(l.addrs)
	}
}
