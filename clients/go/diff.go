package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gitstate/gitstate/api/wire"
)

// DiffOptions are the options of Diff.
type DiffOptions struct {
	// Prefix keeps the keys under it.
	Prefix string
	// Patch adds a unified diff to each change whose values are text.
	Patch bool
}

// Diff returns the keys that differ between revisions from and to, in key
// order (GET /v1/repos/{repo}/diff). An empty from is the empty state
// before the first commit; an empty to is the head. opts may be nil.
func (r *Repo) Diff(ctx context.Context, from, to wire.Rev, opts *DiffOptions) (*wire.DiffResponse, error) {
	if opts == nil {
		opts = &DiffOptions{}
	}
	q := url.Values{}
	if from != "" {
		q.Set("from", string(from))
	}
	if to != "" {
		q.Set("to", string(to))
	}
	if opts.Prefix != "" {
		q.Set("prefix", opts.Prefix)
	}
	if opts.Patch {
		q.Set("patch", "true")
	}
	var out wire.DiffResponse
	if err := r.c.do(ctx, &request{method: http.MethodGet, path: repoPath(r.name, "/diff"), query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
