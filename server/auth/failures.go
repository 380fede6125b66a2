package auth

import (
	"net/http"

	"github.com/gitstate/gitstate/api"
)

var _ api.FailureLimiter = (*Authenticator)(nil)

// Blocked implements api.FailureLimiter with the allowance Authenticate
// uses: one count of failures per client address, whatever failed (a
// token, an upstream webhook's signature).
func (a *Authenticator) Blocked(r *http.Request) error {
	if a.fails == nil {
		return nil
	}
	addr := clientAddr(r.RemoteAddr)
	if wait, blocked := a.fails.blocked(addr); blocked {
		return tooMany(wait, "too many failed authentications from %s; retry later", addr)
	}
	return nil
}

// Failed implements api.FailureLimiter.
func (a *Authenticator) Failed(r *http.Request) {
	if a.fails != nil {
		a.fails.fail(clientAddr(r.RemoteAddr))
	}
}
