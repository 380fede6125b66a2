package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gitstate/gitstate/api/wire"
)

// AuditOptions select the entries of Audit. The zero value asks for the
// newest 100 entries.
type AuditOptions struct {
	// Since keeps the entries at or after this time.
	Since time.Time
	// Last keeps the entries of the last d, counted back from now on the
	// server's clock; it is used when Since is zero.
	Last time.Duration
	// Identity keeps the entries of this principal (a token's name).
	Identity string
	// Repo keeps the entries about this repo.
	Repo string
	// Limit is how many entries to return, the newest (0: the server's
	// default, 100; at most 10,000).
	Limit int
}

// Audit reads the audit log, newest first (GET /v1/audit; scope admin).
// The list's Truncated says that older entries matched beyond the limit.
// opts may be nil.
func (c *Client) Audit(ctx context.Context, opts *AuditOptions) (*wire.AuditList, error) {
	if opts == nil {
		opts = &AuditOptions{}
	}
	q := url.Values{}
	switch {
	case !opts.Since.IsZero():
		q.Set("since", opts.Since.UTC().Format(time.RFC3339Nano))
	case opts.Last > 0:
		q.Set("since", opts.Last.String())
	}
	if opts.Identity != "" {
		q.Set("identity", opts.Identity)
	}
	if opts.Repo != "" {
		q.Set("repo", opts.Repo)
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	var out wire.AuditList
	if err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/audit", query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
