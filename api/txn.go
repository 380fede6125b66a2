package api

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/txn"
)

// txnOf checks scope on the request's repo and returns the manager and
// the transaction id.
func (s *Server) txnOf(r *http.Request, scope Scope) (*txn.Manager, string, string, error) {
	repo, err := s.repoOf(r, scope)
	if err != nil {
		return nil, "", "", err
	}
	if s.opts.Txns == nil {
		return nil, "", "", gitstate.Errorf(gitstate.KindNotFound, "not_found", "transactions are not enabled")
	}
	id := pathVar(r, "id")
	if id != "" && !txn.ValidID(id) {
		return nil, "", "", gitstate.Errorf(gitstate.KindNotFound, "txn_not_found", "transaction %q does not exist", id)
	}
	return s.opts.Txns, repo.Name(), id, nil
}

func wireTxn(t *txn.Txn) wire.Txn {
	w := wire.Txn{
		ID: t.ID, Branch: t.Branch(), Status: string(t.Status), Author: t.Author, Message: t.Message,
		BaseRevision: t.BaseRevision, BaseCommit: t.BaseCommit, HeadCommit: t.HeadCommit,
		CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, ClosedAt: t.ClosedAt, ClosedBy: t.ClosedBy,
		Revision: t.Revision, Commit: t.Commit,
		Approvals: []wire.Approval{}, Reports: []wire.Report{},
	}
	for _, a := range t.Approvals {
		w.Approvals = append(w.Approvals, wire.Approval{Approver: a.Approver, Comment: a.Comment, Commit: a.Commit, Time: a.Time})
	}
	for _, rp := range t.Reports {
		w.Reports = append(w.Reports, wire.Report{Reporter: rp.Reporter, By: rp.By, Status: rp.Status, Summary: rp.Summary, Details: rp.Details, Commit: rp.Commit, Time: rp.Time})
	}
	return w
}

// wireView is v as the caller p sees it: a token limited to prefixes is not
// told the names of the transaction's keys outside them (its keys, its
// conflicts, the protected keys it touches), as diffs and history leave
// them out.
func wireView(v *txn.View, p *Principal) wire.Txn {
	see := seeFor(p)
	w := wireTxn(&v.Txn)
	w.HeadCommit, w.MainRevision = v.Head, v.MainRevision
	w.Keys, w.Conflicts = visibleKeys(v.Keys, see), visibleKeys(v.Conflicts, see)
	for i, a := range v.ApprovalStates {
		w.Approvals[i].Valid = a.Valid
	}
	for i, rp := range v.ReportStates {
		w.Reports[i].Current = rp.Current
	}
	rq := v.Requirements
	w.Requirements = &wire.TxnRequirements{Approvals: rq.Approvals, ValidApprovals: rq.ValidApprovals, Reports: rq.Reports,
		MissingReports: rq.MissingReports, ProtectedKeys: visibleKeys(rq.ProtectedKeys, see), Met: rq.Met}
	return w
}

// visibleKeys returns the keys see accepts (all of them when see is nil),
// keys itself when that is all of them.
func visibleKeys(keys []string, see func(string) bool) []string {
	if see == nil || !slices.ContainsFunc(keys, func(k string) bool { return !see(k) }) {
		return keys
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if see(k) {
			out = append(out, k)
		}
	}
	return out
}

// conflictFor returns err as r's caller is told it: a merge_conflict
// names, in its keys and its message, only the keys the caller may read,
// as the transaction's description does (the others are said to exist, no
// more). The request's audit line, which only an administrator reads,
// still names them all. Other errors are err.
func conflictFor(r *http.Request, err error) error {
	see := seeFor(PrincipalOf(r))
	ge, ok := errors.AsType[*gitstate.Error](err)
	cs, isConflict := errors.AsType[storage.MergeConflicts](err)
	if see == nil || !ok || ge.Code != "merge_conflict" || !isConflict {
		return err
	}
	if info := infoOf(r); info != nil && len(info.keys) == 0 {
		info.keys = ge.Keys
	}
	c := *ge
	c.Message, c.Keys = cs.Describe(see)
	return &c
}

func (s *Server) beginTxn(w http.ResponseWriter, r *http.Request) {
	var req wire.BeginTxnRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	m, repo, _, err := s.txnOf(r, ScopeTxn)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var ttl time.Duration // absent: the default
	if req.TTL != nil {
		// Given, it is checked as given: "0s" is not the default.
		ttl = time.Duration(*req.TTL)
		if err := m.CheckTTL(ttl); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	base := int64(-1)
	if req.Base != "" {
		rp, _ := s.store.Repo(repo)
		if base, err = rp.ResolveRevision(string(req.Base)); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	a := actorOf(r)
	a.Email = s.author(r).Email
	t, err := m.Begin(r.Context(), repo, a, req.Message, ttl, base)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	infoOf(r).keys = []string{t.Branch()}
	out := wireTxn(t)
	out.HeadCommit = t.BaseCommit
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listTxns(w http.ResponseWriter, r *http.Request) {
	m, repo, _, err := s.txnOf(r, ScopeRead)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	status := txn.Status(q.Get("status"))
	switch status {
	case "", txn.Open, txn.Committed, txn.Aborted, txn.Expired:
	default:
		s.writeError(w, r, badRequest("status must be open, committed, aborted or expired"))
		return
	}
	ts, err := m.List(r.Context(), repo, status, q.Get("author"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := wire.TxnList{Txns: make([]wire.Txn, 0, len(ts))}
	for i := range ts {
		out.Txns = append(out.Txns, wireTxn(&ts[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getTxn(w http.ResponseWriter, r *http.Request) {
	m, repo, id, err := s.txnOf(r, ScopeRead)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := m.Describe(r.Context(), repo, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wireView(v, PrincipalOf(r)))
}

func (s *Server) txnDiff(w http.ResponseWriter, r *http.Request) {
	m, repo, id, err := s.txnOf(r, ScopeRead)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	against := r.URL.Query().Get("against")
	if against != "" && against != "base" && against != "head" {
		s.writeError(w, r, badRequest("against must be base or head"))
		return
	}
	patch, err := boolParam(r, "patch")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	changes, err := m.Diff(r.Context(), repo, id, against == "head")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rp, _ := s.store.Repo(repo)
	out, err := diffChanges(rp, changes, PrincipalOf(r), patch)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if against == "" {
		against = "base"
	}
	writeJSON(w, http.StatusOK, wire.TxnDiff{Against: against, Changes: out})
}

func (s *Server) commitTxn(w http.ResponseWriter, r *http.Request) {
	m, repo, id, err := s.txnOf(r, ScopeTxn)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a := actorOf(r)
	a.Email = s.author(r).Email
	_, res, err := m.Commit(r.Context(), repo, id, a)
	if err != nil {
		s.writeError(w, r, conflictFor(r, err))
		return
	}
	made(r, res)
	writeJSON(w, http.StatusOK, wire.CommitResult{Revision: res.Revision, Commit: res.Commit.String(), Changed: res.Changed})
}

func (s *Server) rebaseTxn(w http.ResponseWriter, r *http.Request) {
	m, repo, id, err := s.txnOf(r, ScopeTxn)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a := actorOf(r)
	a.Email = s.author(r).Email
	if _, err := m.Rebase(r.Context(), repo, id, a); err != nil {
		s.writeError(w, r, conflictFor(r, err))
		return
	}
	s.getTxn(w, r)
}

func (s *Server) abortTxn(w http.ResponseWriter, r *http.Request) {
	m, repo, id, err := s.txnOf(r, ScopeTxn)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := m.Abort(r.Context(), repo, id, actorOf(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wireTxn(t))
}

func (s *Server) approveTxn(w http.ResponseWriter, r *http.Request) {
	var req wire.ApproveRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	m, repo, id, err := s.txnOf(r, ScopeApprove)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// An approval vouches for every change of the transaction: a token
	// limited to prefixes may not give one for changes it cannot read. (A
	// write after this check voids the approval anyway: it is bound to the
	// head it was given at.)
	if see := seeFor(PrincipalOf(r)); see != nil {
		v, err := m.Describe(r.Context(), repo, id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if len(visibleKeys(v.Keys, see)) < len(v.Keys) {
			s.writeError(w, r, gitstate.Errorf(gitstate.KindForbidden, "approver_cannot_see",
				"transaction %s changes keys outside your token's prefixes (%s): you cannot approve what you cannot read",
				id, strings.Join(PrincipalOf(r).Prefixes, ", ")))
			return
		}
	}
	if _, err := m.Approve(r.Context(), repo, id, actorOf(r), req.Comment); err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := m.Describe(r.Context(), repo, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, wireView(v, PrincipalOf(r)))
}

func (s *Server) reportTxn(w http.ResponseWriter, r *http.Request) {
	var req wire.ReportRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	m, repo, id, err := s.txnOf(r, ScopeTxn)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	reporter, err := reportAs(PrincipalOf(r), req.Reporter)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := m.AddReport(r.Context(), repo, id, txn.Report{Reporter: reporter, By: PrincipalOf(r).Name, Status: req.Status,
		Summary: req.Summary, Details: req.Details, Commit: req.Commit}); err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := m.Describe(r.Context(), repo, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, wireView(v, PrincipalOf(r)))
}
