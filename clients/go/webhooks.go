package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gitstate/gitstate/api/wire"
)

// CreateWebhook registers a webhook on the repo
// (POST /v1/repos/{repo}/webhooks; scope admin): every revision of main
// after req.From (default: the head) that changes a key under req.Prefix is
// POSTed to req.URL, at least once and in order, signed with req.Secret
// (16 to 1,024 bytes; the server never sends it back).
func (r *Repo) CreateWebhook(ctx context.Context, req *wire.CreateWebhookRequest) (*wire.Webhook, error) {
	var out wire.Webhook
	if err := r.c.doJSON(ctx, http.MethodPost, repoPath(r.name, "/webhooks"), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListWebhooks lists the repo's webhooks and their progress
// (GET /v1/repos/{repo}/webhooks; scope admin).
func (r *Repo) ListWebhooks(ctx context.Context) (*wire.WebhookList, error) {
	var out wire.WebhookList
	if err := r.c.do(ctx, &request{method: http.MethodGet, path: repoPath(r.name, "/webhooks")}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetWebhook describes webhook id (GET /v1/repos/{repo}/webhooks/{id};
// scope admin). A missing webhook gives code "webhook_not_found".
func (r *Repo) GetWebhook(ctx context.Context, id string) (*wire.Webhook, error) {
	return r.webhookCall(ctx, http.MethodGet, id)
}

// DeleteWebhook removes webhook id and returns what it was
// (DELETE /v1/repos/{repo}/webhooks/{id}; scope admin). No delivery starts
// after it returns.
func (r *Repo) DeleteWebhook(ctx context.Context, id string) (*wire.Webhook, error) {
	return r.webhookCall(ctx, http.MethodDelete, id)
}

func (r *Repo) webhookCall(ctx context.Context, method, id string) (*wire.Webhook, error) {
	if err := checkSegment("webhook id", id); err != nil {
		return nil, err
	}
	var out wire.Webhook
	if err := r.c.do(ctx, &request{method: method, path: repoPath(r.name, "/webhooks/"+url.PathEscape(id))}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WebhookDeliveries lists the recent delivery attempts of webhook id, with
// the receiver's status codes and errors
// (GET /v1/repos/{repo}/webhooks/{id}/deliveries; scope admin).
func (r *Repo) WebhookDeliveries(ctx context.Context, id string) (*wire.WebhookDeliveryList, error) {
	if err := checkSegment("webhook id", id); err != nil {
		return nil, err
	}
	var out wire.WebhookDeliveryList
	path := repoPath(r.name, "/webhooks/"+url.PathEscape(id)+"/deliveries")
	if err := r.c.do(ctx, &request{method: http.MethodGet, path: path}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
