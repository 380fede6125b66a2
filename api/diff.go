package api

import (
	"bytes"
	"net/http"
	"unicode/utf8"

	"github.com/aymanbagabas/go-udiff"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
)

// maxPatchBytes bounds the values diffed as text for patch=true.
const maxPatchBytes = 1 << 20

func (s *Server) diff(w http.ResponseWriter, r *http.Request) {
	repo, err := s.repoOf(r, ScopeRead)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	prefix := q.Get("prefix")
	if err := storage.ValidatePrefix(prefix); err != nil {
		s.writeError(w, r, err)
		return
	}
	patch, err := boolParam(r, "patch")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var from int64
	if q.Get("from") != "" {
		if from, err = repo.ResolveRevision(q.Get("from")); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	to, err := repo.ResolveRevision(q.Get("to"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	fc, err := repo.RevisionCommit(from)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	tc, err := repo.RevisionCommit(to)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	changes, err := repo.Diff(r.Context(), fc, tc, prefix)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out, err := diffChanges(repo, changes, PrincipalOf(r), patch)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.DiffResponse{From: from, To: to, Changes: out})
}

// diffChanges converts changes for the wire, keeping those p may see, with
// unified diffs of text values when patch is set.
func diffChanges(repo *storage.Repo, changes []storage.Change, p *Principal, patch bool) ([]wire.DiffChange, error) {
	out := make([]wire.DiffChange, 0, len(changes))
	for _, c := range changes {
		if p != nil && !p.CanKey(c.Key) {
			continue
		}
		dc := wire.DiffChange{Key: c.Key, Op: c.Op.String()}
		if !c.From.Hash.IsZero() {
			dc.FromETag = c.From.Hash.String()
		}
		if !c.To.Hash.IsZero() {
			dc.ToETag = c.To.Hash.String()
		}
		if patch {
			p, err := unifiedDiff(repo, c)
			if err != nil {
				return nil, err
			}
			dc.Patch = p
		}
		out = append(out, dc)
	}
	return out, nil
}

// unifiedDiff returns the unified diff of a change when both sides are text
// (valid UTF-8 without NUL bytes, at most maxPatchBytes), else "".
func unifiedDiff(repo *storage.Repo, c storage.Change) (string, error) {
	read := func(e storage.TreeEntry) ([]byte, bool, error) {
		if e.Hash.IsZero() {
			return nil, true, nil
		}
		if e.Mode == storage.ModeSubmodule {
			return nil, false, nil
		}
		b, err := repo.ReadBlob(e.Hash)
		if err != nil {
			return nil, false, err
		}
		text := len(b) <= maxPatchBytes && utf8.Valid(b) && bytes.IndexByte(b, 0) < 0
		return b, text, nil
	}
	a, aText, err := read(c.From)
	if err != nil {
		return "", err
	}
	b, bText, err := read(c.To)
	if err != nil {
		return "", err
	}
	if !aText || !bText {
		return "", nil
	}
	from, to := "a/"+c.Key, "b/"+c.Key
	if c.Op == storage.Added {
		from = "/dev/null"
	}
	if c.Op == storage.Deleted {
		to = "/dev/null"
	}
	return udiff.Unified(from, to, string(a), string(b)), nil
}
