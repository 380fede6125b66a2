package api

import (
	"context"
	"io"
	"net/http"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
)

// Upstreams runs each repo's upstream: mirror (push main after each commit)
// or follow (fetch, and fast-forward main). server/upstream implements it.
// Implementations are safe for concurrent use.
type Upstreams interface {
	// Get returns a repo's upstream and its state, or not_found.
	Get(repo string) (*wire.Upstream, error)
	// Set configures (or reconfigures) a repo's upstream.
	Set(ctx context.Context, repo string, cfg wire.UpstreamConfig) (*wire.Upstream, error)
	// Delete removes a repo's upstream.
	Delete(ctx context.Context, repo string) error
	// Sync runs one push or fetch now and returns the state after it.
	Sync(ctx context.Context, repo string) (*wire.Upstream, error)
	// Webhook checks an inbound webhook's signature (KindUnauthorized when
	// it is wrong) and starts a fetch.
	Webhook(ctx context.Context, repo string, body []byte, h http.Header) error
}

func (s *Server) upstreams() (Upstreams, error) {
	if s.opts.Upstreams == nil {
		return nil, gitstate.Errorf(gitstate.KindNotFound, "not_found", "upstreams are not enabled on this server")
	}
	return s.opts.Upstreams, nil
}

func (s *Server) getUpstream(w http.ResponseWriter, r *http.Request) {
	repo, err := s.repoOf(r, ScopeRead)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.upstreams()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	up, err := u.Get(repo.Name())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, up)
}

func (s *Server) setUpstream(w http.ResponseWriter, r *http.Request) {
	var cfg wire.UpstreamConfig
	if err := decodeJSON(r, &cfg); err != nil {
		s.writeError(w, r, err)
		return
	}
	repo, err := s.repoOf(r, ScopeAdmin)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.upstreams()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	up, err := u.Set(r.Context(), repo.Name(), cfg)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if info := infoOf(r); info != nil {
		info.keys = nil
	}
	writeJSON(w, http.StatusOK, up)
}

func (s *Server) deleteUpstream(w http.ResponseWriter, r *http.Request) {
	repo, err := s.repoOf(r, ScopeAdmin)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.upstreams()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := u.Delete(r.Context(), repo.Name()); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) syncUpstream(w http.ResponseWriter, r *http.Request) {
	repo, err := s.repoOf(r, ScopeWrite)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.upstreams()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	before := repo.Head().Revision
	up, err := u.Sync(r.Context(), repo.Name())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// A follow's sync makes the revisions it brings from the upstream; a
	// mirror's, or one that found nothing new, makes none.
	if info := infoOf(r); info != nil && up.Mode == wire.UpstreamFollow && up.Status.Revision > before {
		info.revision = up.Status.Revision
	}
	writeJSON(w, http.StatusOK, up)
}

// upstreamWebhook serves the upstream's webhook: no token, but a signature
// made with the webhook secret.
func (s *Server) upstreamWebhook(w http.ResponseWriter, r *http.Request) {
	name := pathVar(r, "repo")
	info := infoOf(r)
	if info != nil {
		info.repo = name
	}
	// A bad signature is a failed authentication: guessing the secret is
	// slowed as guessing a token is.
	if err := s.blocked(r); err != nil {
		if info != nil {
			info.quiet = true
		}
		s.writeError(w, r, err)
		return
	}
	if err := storage.ValidateRepoName(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.upstreams()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.writeError(w, r, badRequest("read body: %v", err))
		return
	}
	if err := u.Webhook(r.Context(), name, body, r.Header); err != nil {
		s.failed(r, err)
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, wire.UpstreamWebhookResult{Queued: true})
}
