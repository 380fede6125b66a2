package client

import (
	"context"
	"net/http"
	"net/url"

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
	return r.c.doJSON(ctx, http.MethodPost, repoPath(r.name, "/reconcilers/"+url.PathEscape(name)+"/status"), st, nil)
}
