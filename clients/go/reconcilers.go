package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
)

// Reconciler states.
const (
	StateApplied     = "applied"
	StateProgressing = "progressing"
	StateFailed      = "failed"
	StateDrifted     = "drifted"
)

// ReportStatus records what the reconciler called name has done with a
// revision (POST /v1/repos/{repo}/reconcilers/{name}/status). A newer
// applied revision supersedes older ones.
func (r *Repo) ReportStatus(ctx context.Context, name string, st wire.ReconcilerStatusRequest) error {
	if err := checkSegment("reconciler name", name); err != nil {
		return err
	}
	return r.c.doJSON(ctx, http.MethodPost, repoPath(r.name, "/reconcilers/"+url.PathEscape(name)+"/status"), st, nil)
}

// Reconcilers lists what is known of each reconciler of the repo
// (GET /v1/repos/{repo}/reconcilers): its last report, applied revision,
// lag behind the head in revisions and seconds, and whether it is stale
// (silent for more than twice its interval).
func (r *Repo) Reconcilers(ctx context.Context) (*wire.ReconcilerList, error) {
	var out wire.ReconcilerList
	if err := r.c.do(ctx, &request{method: http.MethodGet, path: repoPath(r.name, "/reconcilers")}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteReconciler forgets the reconciler called name
// (DELETE /v1/repos/{repo}/reconcilers/{name}; scope admin), for one that
// was retired: it no longer counts as pending in a rollout. Its next report
// records it again.
func (r *Repo) DeleteReconciler(ctx context.Context, name string) error {
	if err := checkSegment("reconciler name", name); err != nil {
		return err
	}
	return r.c.do(ctx, &request{method: http.MethodDelete, path: repoPath(r.name, "/reconcilers/"+url.PathEscape(name))}, nil)
}

// Rollout answers "which reconcilers have applied revision rev, or a later
// one, and which not" (GET /v1/repos/{repo}/commits/{rev}/rollout). rev is a
// number or a commit id.
func (r *Repo) Rollout(ctx context.Context, rev wire.Rev) (*wire.Rollout, error) {
	if rev == "" {
		return nil, &gitstate.Error{Kind: gitstate.KindInvalid, Code: gitstate.ErrInvalidRevision.Code, Message: "revision must not be empty"}
	}
	var out wire.Rollout
	path := repoPath(r.name, "/commits/"+url.PathEscape(string(rev))+"/rollout")
	if err := r.c.do(ctx, &request{method: http.MethodGet, path: path}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
