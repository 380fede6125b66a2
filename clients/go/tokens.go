package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gitstate/gitstate/api/wire"
)

// CreateToken makes an access token (POST /v1/tokens; scope admin). The
// result's Secret is the bearer token: the server keeps only its hash and
// cannot show it again.
func (c *Client) CreateToken(ctx context.Context, req *wire.CreateTokenRequest) (*wire.CreatedToken, error) {
	var out wire.CreatedToken
	if err := c.doJSON(ctx, http.MethodPost, "/v1/tokens", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTokens describes every token, revoked ones included, never their
// secrets (GET /v1/tokens; scope admin).
func (c *Client) ListTokens(ctx context.Context) (*wire.TokenList, error) {
	var out wire.TokenList
	if err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/tokens"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeToken revokes the token with this id and returns its description
// (DELETE /v1/tokens/{id}; scope admin). Its next request is refused.
func (c *Client) RevokeToken(ctx context.Context, id string) (*wire.Token, error) {
	if err := checkSegment("token id", id); err != nil {
		return nil, err
	}
	var out wire.Token
	if err := c.do(ctx, &request{method: http.MethodDelete, path: "/v1/tokens/" + url.PathEscape(id)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
