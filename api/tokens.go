package api

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
)

// TokenSpec is a validated request for a new token.
type TokenSpec struct {
	Name   string
	Scopes []Scope
	// Repos the token may touch; "*" means all (never empty).
	Repos []string
	// Prefixes its keys must start with; empty means every key.
	Prefixes []string
	// ExpiresAt is when the token stops working; zero means never.
	ExpiresAt time.Time
	// CreatedBy names the principal that asked for it.
	CreatedBy string
}

// TokenService creates, lists and revokes tokens. Implementations are safe
// for concurrent use; a revocation takes effect on the next request.
type TokenService interface {
	// CreateToken makes a token; the result holds the token itself, which
	// the service keeps only as a hash.
	CreateToken(ctx context.Context, spec TokenSpec) (wire.CreatedToken, error)
	// ListTokens describes every token, revoked ones included.
	ListTokens(ctx context.Context) ([]wire.Token, error)
	// RevokeToken revokes the token with the given id (KindNotFound when
	// there is none) and returns its description.
	RevokeToken(ctx context.Context, id string) (wire.Token, error)
}

// Bounds of a token's lifetime when one is asked for. Under minExpiresIn
// the token would be expired, or nearly, by the time its creator read it.
const (
	minExpiresIn = time.Second
	maxExpiresIn = 10 * 365 * 24 * time.Hour
)

// tokenSpecOf validates a request for a token.
func tokenSpecOf(req *wire.CreateTokenRequest, now time.Time) (TokenSpec, error) {
	spec := TokenSpec{Name: req.Name, Repos: req.Repos, Prefixes: req.Prefixes}
	if req.Name == "" {
		return spec, badRequest("name is required: it is the token's identity, the author of its commits")
	}
	if len(req.Scopes) == 0 {
		return spec, badRequest("scopes is required (one or more of %s)", scopeNames())
	}
	for _, sc := range req.Scopes {
		if !slices.Contains(AllScopes, Scope(sc)) {
			return spec, badRequest("unknown scope %q (known: %s)", sc, scopeNames())
		}
		if !slices.Contains(spec.Scopes, Scope(sc)) {
			spec.Scopes = append(spec.Scopes, Scope(sc))
		}
	}
	if len(spec.Repos) == 0 {
		spec.Repos = []string{"*"}
	}
	for _, r := range spec.Repos {
		if r == "*" {
			continue
		}
		if err := storage.ValidateRepoName(r); err != nil {
			return spec, err
		}
	}
	for _, p := range spec.Prefixes {
		if p == "" {
			return spec, badRequest("a prefix must not be empty; omit prefixes for every key")
		}
		if err := storage.ValidatePrefix(p); err != nil {
			return spec, err
		}
	}
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d < minExpiresIn || d > maxExpiresIn {
			return spec, badRequest("expires_in must be a Go duration from %s to %s, such as \"720h\": %q", minExpiresIn, maxExpiresIn, req.ExpiresIn)
		}
		spec.ExpiresAt = now.Add(d)
	}
	return spec, nil
}

func scopeNames() string {
	var b []byte
	for i, s := range AllScopes {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, s...)
	}
	return string(b)
}

// tokens returns the token service, or an error when the server has none.
func (s *Server) tokens() (TokenService, error) {
	if s.opts.Tokens == nil {
		return nil, gitstate.Errorf(gitstate.KindNotFound, "not_supported", "this server does not manage tokens")
	}
	return s.opts.Tokens, nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	if err := authorizeGlobal(r, ScopeAdmin); err != nil {
		s.writeError(w, r, err)
		return
	}
	ts, err := s.tokens()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req wire.CreateTokenRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	spec, err := tokenSpecOf(&req, time.Now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	spec.CreatedBy = PrincipalOf(r).Name
	tok, err := ts.CreateToken(r.Context(), spec)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	infoOf(r).target = "token:" + tok.ID
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, tok)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	if err := authorizeGlobal(r, ScopeAdmin); err != nil {
		s.writeError(w, r, err)
		return
	}
	ts, err := s.tokens()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := ts.ListTokens(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []wire.Token{}
	}
	writeJSON(w, http.StatusOK, wire.TokenList{Tokens: list})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	id := pathVar(r, "id")
	infoOf(r).target = "token:" + id
	if err := authorizeGlobal(r, ScopeAdmin); err != nil {
		s.writeError(w, r, err)
		return
	}
	ts, err := s.tokens()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	tok, err := ts.RevokeToken(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tok)
}
