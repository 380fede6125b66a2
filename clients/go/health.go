package client

import (
	"context"
	"net/http"
)

// Health reports whether the server is up (GET /healthz): nil, or an error.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, &request{method: http.MethodGet, path: "/healthz"}, nil)
}

// Ready reports whether the server serves requests (GET /readyz): nil, or an
// error of kind gitstate.KindUnavailable while it starts or shuts down.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, &request{method: http.MethodGet, path: "/readyz"}, nil)
}
