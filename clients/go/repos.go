package client

import (
	"context"
	"net/http"

	"github.com/gitstate/gitstate/api/wire"
)

// ListRepos returns the repos the caller may see (GET /v1/repos).
func (c *Client) ListRepos(ctx context.Context) (*wire.RepoList, error) {
	var out wire.RepoList
	if err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/repos"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateRepo creates an empty repo (POST /v1/repos). It fails with
// gitstate.ErrRepoExists when the repo exists and
// gitstate.ErrInvalidRepoName when name is not [a-z0-9][a-z0-9-]{0,62}.
func (c *Client) CreateRepo(ctx context.Context, name string) (*wire.Repo, error) {
	var out wire.Repo
	if err := c.doJSON(ctx, http.MethodPost, "/v1/repos", wire.CreateRepoRequest{Name: name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Repo is a handle on one repo of a server: its keys, commits and history
// on main, its transactions, webhooks and reconcilers. Making one sends no
// request. It is safe for concurrent use.
type Repo struct {
	c    *Client
	name string
	// kv is main's key-value API.
	kv keys
}

// Repo returns a handle on the repo called name.
func (c *Client) Repo(name string) *Repo {
	return &Repo{c: c, name: name, kv: keys{c: c, base: repoPath(name, "")}}
}

// Name returns the repo's name.
func (r *Repo) Name() string { return r.name }

// Info returns the repo's name and head (GET /v1/repos/{repo}), or
// gitstate.ErrRepoNotFound.
func (r *Repo) Info(ctx context.Context) (*wire.Repo, error) {
	var out wire.Repo
	if err := r.c.do(ctx, &request{method: http.MethodGet, path: repoPath(r.name, "")}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
