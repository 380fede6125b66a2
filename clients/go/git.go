package client

import (
	"context"
	"net/http"

	"github.com/gitstate/gitstate/api/wire"
)

// ImportRepo starts creating repo name from the Git repository source (a
// URL, or a path on the server's machine) with its history: POST /v1/repos
// with import_from. branch is the source's branch to import as main (""
// for the source's HEAD branch). The import runs in the server; follow it
// with Repo.ImportStatus.
func (c *Client) ImportRepo(ctx context.Context, name, source, branch string) (*wire.ImportStatus, error) {
	var out wire.ImportStatus
	req := wire.CreateRepoRequest{Name: name, ImportFrom: source, Branch: branch}
	if err := c.doJSON(ctx, http.MethodPost, "/v1/repos", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ImportStatus returns the progress of the repo's import, or its outcome
// (GET /v1/repos/{repo}/import). It answers while the repo is being made.
func (r *Repo) ImportStatus(ctx context.Context) (*wire.ImportStatus, error) {
	var out wire.ImportStatus
	if err := r.c.do(ctx, &request{method: http.MethodGet, path: repoPath(r.name, "/import")}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Upstream returns the repo's upstream and where the repo stands against
// it (GET /v1/repos/{repo}/upstream).
func (r *Repo) Upstream(ctx context.Context) (*wire.Upstream, error) {
	var out wire.Upstream
	if err := r.c.do(ctx, &request{method: http.MethodGet, path: repoPath(r.name, "/upstream")}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetUpstream configures the repo's upstream (PUT /v1/repos/{repo}/upstream).
func (r *Repo) SetUpstream(ctx context.Context, cfg wire.UpstreamConfig) (*wire.Upstream, error) {
	var out wire.Upstream
	if err := r.c.doJSON(ctx, http.MethodPut, repoPath(r.name, "/upstream"), cfg, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteUpstream removes the repo's upstream.
func (r *Repo) DeleteUpstream(ctx context.Context) error {
	return r.c.do(ctx, &request{method: http.MethodDelete, path: repoPath(r.name, "/upstream")}, nil)
}

// SyncUpstream pushes (mirror) or fetches (follow) now and returns the
// state after the attempt (POST /v1/repos/{repo}/upstream/sync).
func (r *Repo) SyncUpstream(ctx context.Context) (*wire.Upstream, error) {
	var out wire.Upstream
	if err := r.c.do(ctx, &request{method: http.MethodPost, path: repoPath(r.name, "/upstream/sync")}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
