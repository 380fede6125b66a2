package api

import (
	"net/http"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
)

// repoOf returns the repo named in the path, after checking that the
// caller holds scope on it.
func (s *Server) repoOf(r *http.Request, scope Scope, keys ...string) (*storage.Repo, error) {
	name := pathVar(r, "repo")
	if info := infoOf(r); info != nil {
		info.repo = name
	}
	if err := storage.ValidateRepoName(name); err != nil {
		return nil, err
	}
	if err := authorize(r, scope, name, keys...); err != nil {
		return nil, err
	}
	return s.store.Repo(name)
}

func repoInfo(r *storage.Repo) wire.Repo {
	h := r.Head()
	out := wire.Repo{Name: r.Name(), Revision: h.Revision}
	if !h.Commit.IsZero() {
		out.Commit = h.Commit.String()
	}
	return out
}

func (s *Server) listRepos(w http.ResponseWriter, r *http.Request) {
	if err := authorize(r, ScopeRead, ""); err != nil {
		s.writeError(w, r, err)
		return
	}
	p := PrincipalOf(r)
	out := wire.RepoList{Repos: []wire.Repo{}}
	for _, name := range s.store.Repos() {
		if !p.CanRepo(name) {
			continue
		}
		if repo, err := s.store.Repo(name); err == nil {
			out.Repos = append(out.Repos, repoInfo(repo))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getRepo(w http.ResponseWriter, r *http.Request) {
	repo, err := s.repoOf(r, ScopeRead)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, repoInfo(repo))
}

func (s *Server) createRepo(w http.ResponseWriter, r *http.Request) {
	var req wire.CreateRepoRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if info := infoOf(r); info != nil {
		info.repo = req.Name
	}
	if err := authorize(r, ScopeAdmin, req.Name); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.ImportFrom != "" {
		im, err := s.store.Import(r.Context(), req.Name, storage.ImportOptions{Source: req.ImportFrom, Branch: req.Branch})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/v1/repos/"+req.Name+"/import")
		writeJSON(w, http.StatusAccepted, wireImport(im.Status()))
		return
	}
	if req.Branch != "" {
		s.writeError(w, r, badRequest("branch is for imports: give import_from too"))
		return
	}
	repo, err := s.store.CreateRepo(r.Context(), req.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, repoInfo(repo))
}

// importStatus serves GET /v1/repos/{repo}/import: the progress of an
// import, or its outcome. It answers while the repo is still being made.
func (s *Server) importStatus(w http.ResponseWriter, r *http.Request) {
	name := pathVar(r, "repo")
	if info := infoOf(r); info != nil {
		info.repo = name
	}
	if err := storage.ValidateRepoName(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := authorize(r, ScopeRead, name); err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.store.ImportStatus(name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wireImport(st))
}

func wireImport(st storage.ImportStatus) wire.ImportStatus {
	out := wire.ImportStatus{Repo: st.Repo, Source: st.Source, Branch: st.Branch, State: string(st.State),
		Phase: st.Phase, Done: st.Done, Total: st.Total, Started: st.Started, Error: st.Error}
	if !st.Finished.IsZero() {
		f := st.Finished
		out.Finished = &f
	}
	if rp := st.Report; rp != nil {
		out.Report = &wire.ImportReport{Revisions: rp.Revisions, Commit: rp.Commit, Keys: rp.Keys, Objects: rp.Objects, Seconds: rp.Seconds,
			Executables: rp.Executables, ExecutableCount: rp.ExecutableCount, Symlinks: rp.Symlinks, SymlinkCount: rp.SymlinkCount,
			Submodules: rp.Submodules, SubmoduleCount: rp.SubmoduleCount, EmptyTrees: rp.EmptyTrees, EmptyTreeCount: rp.EmptyTreeCount,
			InvalidKeys: rp.InvalidKeys, InvalidKeyCount: rp.InvalidKeyCount, InvalidKeyErrors: rp.InvalidKeyErrors,
			Warnings: []wire.ImportWarning{}, WarningCount: rp.WarningCount}
		for _, w := range rp.Warnings {
			out.Report.Warnings = append(out.Report.Warnings, wire.ImportWarning(w))
		}
	}
	return out
}
