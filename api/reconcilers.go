package api

import (
	"net/http"
	"net/url"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/watch"
)

// convergenceOf checks scope on the request's repo and returns it.
func (s *Server) convergenceOf(r *http.Request, scope Scope) (*storage.Repo, error) {
	repo, err := s.repoOf(r, scope)
	if err != nil {
		return nil, err
	}
	if s.opts.Convergence == nil {
		return nil, gitstate.Errorf(gitstate.KindNotFound, "not_found", "reconciler status is not enabled")
	}
	return repo, nil
}

func wireReconciler(st *watch.ReconcilerStatus) wire.Reconciler {
	return wire.Reconciler{
		Name: st.Name, State: string(st.State), Revision: st.Revision, Message: st.Message,
		AppliedRevision: st.Applied, LastReport: st.LastReport, Interval: wire.Duration(st.Interval),
		LagRevisions: st.LagRevisions, LagSeconds: st.Lag.Round(time.Millisecond).Seconds(), Stale: st.Stale,
	}
}

func wireReconcilers(sts []watch.ReconcilerStatus) []wire.Reconciler {
	out := make([]wire.Reconciler, 0, len(sts))
	for i := range sts {
		out = append(out, wireReconciler(&sts[i]))
	}
	return out
}

// reconcilerName returns the path's reconciler name, unescaped: a sub-name
// ("flux/prod") comes as flux%2Fprod. A name that is not valid is a 400,
// before the caller's right to it is checked.
func reconcilerName(r *http.Request) (string, error) {
	name, err := url.PathUnescape(pathVar(r, "name"))
	if err != nil || !watch.ValidReconcilerName(name) {
		return "", badRequest("reconciler name must be 1 to 128 bytes of \"/\"-separated segments of [A-Za-z0-9._-], each starting with a letter or digit (a \"/\" is sent as %%2F)")
	}
	return name, nil
}

func (s *Server) reportReconciler(w http.ResponseWriter, r *http.Request) {
	var req wire.ReconcilerStatusRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	repo, err := s.convergenceOf(r, ScopeWrite)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	name, err := reconcilerName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := reportAs(PrincipalOf(r), name); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Revision == "" {
		s.writeError(w, r, badRequest("revision is required"))
		return
	}
	rev, err := repo.ResolveRevision(string(req.Revision))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.opts.Convergence.Report(repo.Name(), name, watch.Report{
		Revision: rev, State: watch.State(req.State), Message: req.Message, Interval: time.Duration(req.Interval)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wireReconciler(st))
}

func (s *Server) listReconcilers(w http.ResponseWriter, r *http.Request) {
	repo, err := s.convergenceOf(r, ScopeRead)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sts, head, err := s.opts.Convergence.List(repo.Name())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ReconcilerList{Revision: head, Reconcilers: wireReconcilers(sts)})
}

func (s *Server) deleteReconciler(w http.ResponseWriter, r *http.Request) {
	repo, err := s.convergenceOf(r, ScopeAdmin)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	name, err := reconcilerName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.opts.Convergence.Delete(repo.Name(), name); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) rollout(w http.ResponseWriter, r *http.Request) {
	repo, err := s.convergenceOf(r, ScopeRead)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rev, err := repo.ResolveRevision(pathVar(r, "rev"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	commit, err := repo.RevisionCommit(rev)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	applied, pending, head, err := s.opts.Convergence.Rollout(repo.Name(), rev)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := wire.Rollout{Revision: rev, Head: head, Applied: wireReconcilers(applied), Pending: wireReconcilers(pending), Converged: len(pending) == 0}
	if !commit.IsZero() {
		out.Commit = commit.String()
	}
	writeJSON(w, http.StatusOK, out)
}
