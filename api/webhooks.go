package api

import (
	"net/http"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/watch"
)

// webhooksOf checks scope admin on the request's repo and returns it with
// the webhook id of the path (if any).
func (s *Server) webhooksOf(r *http.Request) (*storage.Repo, string, error) {
	repo, err := s.repoOf(r, ScopeAdmin)
	if err != nil {
		return nil, "", err
	}
	if s.opts.Webhooks == nil {
		return nil, "", gitstate.Errorf(gitstate.KindNotFound, "not_found", "webhooks are not enabled")
	}
	id := pathVar(r, "id") // set only on a webhook's own routes, never empty there
	if id != "" && !watch.ValidWebhookID(id) {
		return nil, "", gitstate.Errorf(gitstate.KindNotFound, "webhook_not_found", "webhook %q does not exist in repo %s", id, repo.Name())
	}
	return repo, id, nil
}

func wireWebhook(h *watch.WebhookInfo) wire.Webhook {
	out := wire.Webhook{ID: h.ID, URL: h.URL, Prefix: h.Prefix, Events: h.Events, CreatedAt: h.CreatedAt,
		Position: h.Position, Pending: h.Pending, Failures: h.Failures}
	if h.LastDelivery != nil {
		d := wireDelivery(h.LastDelivery)
		out.LastDelivery = &d
	}
	return out
}

func wireDelivery(d *watch.Delivery) wire.WebhookDelivery {
	return wire.WebhookDelivery{ID: d.ID, Revision: d.Revision, Attempt: d.Attempt, Time: d.Time,
		StatusCode: d.StatusCode, Error: d.Err, Duration: wire.Duration(d.Duration.Round(time.Microsecond)), OK: d.OK()}
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	var req wire.CreateWebhookRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	repo, _, err := s.webhooksOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	from := int64(-1)
	if req.From != "" {
		if from, err = repo.ResolveRevision(string(req.From)); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	h, err := s.opts.Webhooks.Create(r.Context(), repo.Name(), watch.WebhookConfig{
		URL: req.URL, Prefix: req.Prefix, Secret: []byte(req.Secret), Events: req.Events, From: from})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, wireWebhook(h))
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	repo, _, err := s.webhooksOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	hs := s.opts.Webhooks.List(repo.Name())
	out := wire.WebhookList{Webhooks: make([]wire.Webhook, 0, len(hs))}
	for i := range hs {
		out.Webhooks = append(out.Webhooks, wireWebhook(&hs[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) {
	repo, id, err := s.webhooksOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h, err := s.opts.Webhooks.Get(repo.Name(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wireWebhook(h))
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	repo, id, err := s.webhooksOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h, err := s.opts.Webhooks.Delete(repo.Name(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wireWebhook(h))
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	repo, id, err := s.webhooksOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ds, err := s.opts.Webhooks.Deliveries(repo.Name(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := wire.WebhookDeliveryList{Deliveries: make([]wire.WebhookDelivery, 0, len(ds))}
	for i := range ds {
		out.Deliveries = append(out.Deliveries, wireDelivery(&ds[i]))
	}
	writeJSON(w, http.StatusOK, out)
}
