package txn

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/storage"
)

// View is a transaction's record with what is computed from Git: its
// branch head, the keys it changes, its conflicts with main, which
// approvals and reports are current, and what committing it needs.
type View struct {
	Txn
	Branch string `json:"branch"`
	// Head is the branch's head commit.
	Head string `json:"head_commit"`
	// MainRevision is main's revision now.
	MainRevision int64 `json:"main_revision"`
	// Keys lists the keys the transaction changes.
	Keys []string `json:"keys"`
	// Conflicts lists the keys it changes that committing would find in
	// conflict with main: main changed them too, to other values, since
	// its base, or made one a directory, or put a value above one, where
	// the transaction writes a value.
	Conflicts      []string       `json:"conflicts"`
	ApprovalStates []ApprovalView `json:"approval_states"`
	ReportStates   []ReportView   `json:"report_states"`
	Requirements   Requirements   `json:"requirements"`
}

// ApprovalView is an approval and whether it still holds: an approval binds
// to the head it approved, so a later write voids it.
type ApprovalView struct {
	Approval
	Valid bool `json:"valid"`
}

// ReportView is the latest report of a reporter and whether it is for the
// current head.
type ReportView struct {
	Report
	Current bool `json:"current"`
}

// Requirements is what the repo's policy asks before the transaction may
// commit, and whether it is met.
type Requirements struct {
	Approvals      int      `json:"approvals"`
	ValidApprovals int      `json:"valid_approvals"`
	Reports        []string `json:"reports"`
	MissingReports []string `json:"missing_reports"`
	ProtectedKeys  []string `json:"protected_keys"`
	Met            bool     `json:"met"`
}

// Describe returns a transaction's View.
func (m *Manager) Describe(ctx context.Context, repo, id string) (*View, error) {
	rt, e, err := m.entry(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	t := m.snapshot(rt, e)
	return m.describe(ctx, rt, &t)
}

func (m *Manager) describe(ctx context.Context, rt *repoTxns, t *Txn) (*View, error) {
	v := &View{Txn: *t, Branch: t.Branch(), MainRevision: rt.repo.Head().Revision, Keys: []string{}, Conflicts: []string{},
		ApprovalStates: []ApprovalView{}, ReportStates: []ReportView{}}
	head := rt.repo.Backend().Ref(branchRef(t.ID))
	if t.Status != Open || head.IsZero() {
		head, _ = storage.ParseHash(t.HeadCommit)
	}
	if !head.IsZero() {
		v.Head = head.String()
	}
	base, _ := storage.ParseHash(t.BaseCommit)
	changes, err := rt.repo.Diff(ctx, base, head, "")
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		v.Keys = append(v.Keys, c.Key)
	}
	if t.Status == Open {
		if v.Conflicts, err = conflicts(ctx, rt.repo, changes); err != nil {
			return nil, err
		}
	}
	for _, a := range t.Approvals {
		v.ApprovalStates = append(v.ApprovalStates, ApprovalView{Approval: a, Valid: a.Commit == v.Head && a.Approver != t.Author})
	}
	for _, r := range t.Reports {
		v.ReportStates = append(v.ReportStates, ReportView{Report: r, Current: r.Commit == v.Head})
	}
	p, err := m.policies.load(ctx, rt.repo)
	if err != nil {
		p = nil // shown as no requirements; commit refuses a broken policy
	}
	v.Requirements = requirements(p, t, v.Keys, v.Head)
	return v, nil
}

// requirements evaluates the policy for a transaction at head.
func requirements(p *Policy, t *Txn, keys []string, head string) Requirements {
	need, reporters, protected := p.Requirements(keys)
	rq := Requirements{Approvals: need, Reports: reporters, MissingReports: []string{}, ProtectedKeys: protected}
	if rq.Reports == nil {
		rq.Reports = []string{}
	}
	if rq.ProtectedKeys == nil {
		rq.ProtectedKeys = []string{}
	}
	approvers := map[string]bool{}
	for _, a := range t.Approvals {
		if a.Commit == head && a.Approver != t.Author {
			approvers[a.Approver] = true
		}
	}
	rq.ValidApprovals = len(approvers)
	for _, name := range reporters {
		ok := false
		for _, r := range t.Reports {
			if r.Reporter == name && r.Commit == head && r.Status == "ok" {
				ok = true
			}
		}
		if !ok {
			rq.MissingReports = append(rq.MissingReports, name)
		}
	}
	rq.Met = rq.ValidApprovals >= rq.Approvals && len(rq.MissingReports) == 0
	return rq
}

// conflicts returns the keys of changes (the transaction's, against its
// base) that committing would find in conflict on main, as the merge
// (storage's applyMerge) does: a key whose value on main (none for a
// directory) differs both from the base's and from the transaction's, and
// a key the transaction sets where main now has a directory, or a value
// above it, that the transaction does not delete. It costs a few index
// lookups per changed key and level of its path.
func conflicts(ctx context.Context, repo *storage.Repo, changes []storage.Change) ([]string, error) {
	conflicting := map[string]bool{}
	for _, c := range changes {
		v, err := repo.Lookup(ctx, c.Key, 0)
		if err != nil {
			return nil, err
		}
		var cur storage.Hash
		if v != nil {
			cur = v.Blob
		}
		if cur != c.From.Hash && cur != c.To.Hash {
			conflicting[c.Key] = true
		}
	}
	// What the merge deletes first, and how many of those keys lie under
	// each directory.
	deleted, under := map[string]bool{}, map[string]int{}
	for _, c := range changes {
		if c.Op != storage.Deleted || conflicting[c.Key] {
			continue
		}
		deleted[c.Key] = true
		for i := range len(c.Key) {
			if c.Key[i] == '/' {
				under[c.Key[:i]]++
			}
		}
	}
	for _, c := range changes {
		if c.Op == storage.Deleted || conflicting[c.Key] {
			continue
		}
		clash, err := keyDirClash(ctx, repo, c.Key, deleted, under[c.Key])
		if err != nil {
			return nil, err
		}
		conflicting[c.Key] = clash
	}
	out := []string{}
	for _, c := range changes {
		if conflicting[c.Key] {
			out = append(out, c.Key)
		}
	}
	return out, nil
}

// keyDirClash reports whether key cannot hold a value on main once the
// keys in deleted are gone: a value is at a directory of key, or keys are
// under key/ (of which nDeleted are in deleted).
func keyDirClash(ctx context.Context, repo *storage.Repo, key string, deleted map[string]bool, nDeleted int) (bool, error) {
	for i := range len(key) {
		if key[i] != '/' || deleted[key[:i]] {
			continue
		}
		v, err := repo.Lookup(ctx, key[:i], 0)
		if err != nil {
			return false, err
		}
		if v != nil {
			return true, nil
		}
	}
	page, err := repo.List(ctx, storage.ListOptions{Prefix: key + "/", Limit: nDeleted + 1})
	if err != nil {
		return false, err
	}
	for _, it := range page.Items {
		if !deleted[it.Key] {
			return true, nil
		}
	}
	return false, nil
}

// Diff returns a transaction's changes: against its base, or, with
// againstHead, what committing it would change on main as it is now.
func (m *Manager) Diff(ctx context.Context, repo, id string, againstHead bool) ([]storage.Change, error) {
	rt, e, err := m.entry(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	t := m.snapshot(rt, e)
	head := rt.repo.Backend().Ref(branchRef(id))
	if t.Status != Open || head.IsZero() {
		head, _ = storage.ParseHash(t.HeadCommit)
	}
	base, _ := storage.ParseHash(t.BaseCommit)
	changes, err := rt.repo.Diff(ctx, base, head, "")
	if err != nil || !againstHead {
		return changes, err
	}
	// Against main: each key the transaction changes, from main's value
	// to the transaction's; keys main already has at that value drop out.
	out := changes[:0]
	for _, c := range changes {
		v, err := rt.repo.Get(ctx, c.Key, 0)
		var cur storage.TreeEntry
		switch {
		case err == nil:
			cur = storage.TreeEntry{Name: c.Key, Mode: v.Mode, Hash: v.Blob}
		case errors.Is(err, gitstate.ErrKeyNotFound):
		default:
			return nil, err
		}
		if cur.Hash == c.To.Hash {
			continue
		}
		c.From = cur
		switch {
		case cur.Hash.IsZero():
			c.Op = storage.Added
		case c.To.Hash.IsZero():
			c.Op = storage.Deleted
		default:
			c.Op = storage.Modified
		}
		out = append(out, c)
	}
	return out, nil
}

// Approve records a's approval of the transaction's current head.
func (m *Manager) Approve(ctx context.Context, repo, id string, a Actor, comment string) (*Txn, error) {
	rt, e, err := m.entry(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := m.effective(rt, e.t); t.Status != Open {
		return nil, notOpen(&t)
	}
	if a.Name == e.t.Author {
		return nil, gitstate.Errorf(gitstate.KindForbidden, "self_approval", "%s opened transaction %s and cannot approve it", a.Name, id)
	}
	head := rt.repo.Backend().Ref(branchRef(id))
	next := e.t
	next.Approvals = append(slices.Clone(e.t.Approvals), Approval{Approver: a.Name, Comment: comment, Commit: head.String(), Time: m.opts.Now().UTC()})
	if err := m.save(ctx, rt, e, next); err != nil {
		return nil, err
	}
	t := e.t
	return &t, nil
}

// Valid report statuses.
var reportStatuses = []string{"ok", "failed", "pending"}

// AddReport records a reconciler's report on the transaction. With an empty
// commit it is bound to the current head.
func (m *Manager) AddReport(ctx context.Context, repo, id string, r Report) (*Txn, error) {
	if r.Reporter == "" || len(r.Reporter) > 128 {
		return nil, gitstate.Errorf(gitstate.KindInvalid, "invalid_request", "reporter is required (at most 128 characters)")
	}
	if !slices.Contains(reportStatuses, r.Status) {
		return nil, gitstate.Errorf(gitstate.KindInvalid, "invalid_request", "status must be ok, failed or pending")
	}
	if len(r.Details) > 256<<10 {
		return nil, gitstate.Errorf(gitstate.KindTooLarge, "body_too_large", "details must be at most 256 KiB")
	}
	rt, e, err := m.entry(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := m.effective(rt, e.t); t.Status != Open {
		return nil, notOpen(&t)
	}
	if r.Commit == "" {
		r.Commit = rt.repo.Backend().Ref(branchRef(id)).String()
	} else if _, ok := storage.ParseHash(r.Commit); !ok {
		return nil, gitstate.Errorf(gitstate.KindInvalid, "invalid_request", "commit must be a full commit id")
	}
	r.Time = m.opts.Now().UTC()
	next := e.t
	next.Reports = nil
	for _, old := range e.t.Reports {
		if old.Reporter != r.Reporter {
			next.Reports = append(next.Reports, old)
		}
	}
	next.Reports = append(next.Reports, r)
	if err := m.save(ctx, rt, e, next); err != nil {
		return nil, err
	}
	t := e.t
	return &t, nil
}

// Commit applies the transaction's changes to main in one merge commit,
// after checking the policy's approvals, reports and schemas. It fails with
// merge_conflict (409) naming the keys that main changed differently, or
// where main has a directory, or a value above, where the transaction
// writes a value (the keys Describe lists as conflicts).
func (m *Manager) Commit(ctx context.Context, repo, id string, a Actor) (*Txn, *storage.Result, error) {
	rt, e, err := m.entry(ctx, repo, id)
	if err != nil {
		return nil, nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t := m.effective(rt, e.t)
	if err := checkOpen(&t); err != nil {
		return nil, nil, err
	}
	if err := checkOwner(&t, a); err != nil {
		return nil, nil, err
	}
	head := rt.repo.Backend().Ref(branchRef(id))
	base, _ := storage.ParseHash(t.BaseCommit)
	changes, err := rt.repo.Diff(ctx, base, head, "")
	if err != nil {
		return nil, nil, err
	}
	p, err := m.policies.load(ctx, rt.repo)
	if err != nil {
		if !touches(changes, PolicyKey) {
			return nil, nil, err
		}
		p = &Policy{} // the transaction fixes a broken policy
	}
	keys := make([]string, len(changes))
	for i, c := range changes {
		keys[i] = c.Key
	}
	rq := requirements(p, &t, keys, head.String())
	if rq.ValidApprovals < rq.Approvals {
		return nil, nil, gitstate.Errorf(gitstate.KindForbidden, "approvals_required",
			"transaction %s changes protected keys and needs %d approval(s) of its current head; it has %d", id, rq.Approvals, rq.ValidApprovals).WithKeys(rq.ProtectedKeys...)
	}
	if len(rq.MissingReports) > 0 {
		return nil, nil, gitstate.Errorf(gitstate.KindForbidden, "reports_required",
			"transaction %s needs an ok report of its current head from: %v", id, rq.MissingReports).WithKeys(rq.ProtectedKeys...)
	}
	for _, c := range changes {
		if c.Op == storage.Deleted {
			continue
		}
		if storage.IsReserved(c.Key) && !a.Admin {
			return nil, nil, gitstate.Errorf(gitstate.KindForbidden, "reserved_key", "only an administrator may commit changes to %s", c.Key).WithKeys(c.Key)
		}
		data, err := rt.repo.ReadBlob(c.To.Hash)
		if err != nil {
			return nil, nil, err
		}
		if err := p.Validate(c.Key, data); err != nil {
			return nil, nil, err
		}
	}
	msg := t.Message
	if msg == "" {
		msg = "Commit transaction " + id
	}
	trailers := []storage.Trailer{{Key: TrailerTxn, Value: id}, {Key: TrailerTxnAuthor, Value: t.Author}}
	seen := map[string]bool{}
	for _, ap := range t.Approvals {
		if ap.Commit == head.String() && ap.Approver != t.Author && !seen[ap.Approver] {
			seen[ap.Approver] = true
			trailers = append(trailers, storage.Trailer{Key: TrailerApprovedBy, Value: ap.Approver})
		}
	}
	next := t
	m.close(&next, Committed, a.Name)
	next.HeadCommit = head.String()
	zero := storage.ZeroHash
	res, err := rt.repo.Write(ctx,
		&storage.Batch{Merge: &storage.Merge{Base: base, Source: head}, Message: msg, Author: a.sig(), Trailers: trailers},
		&storage.Batch{Ref: branchRef(id), ExpectRef: &head, ResetTo: &zero},
		metaBatch(next, "committed"),
	)
	if err != nil {
		var ge *gitstate.Error
		if errors.As(err, &ge) && ge.Code == "ref_changed" {
			return nil, nil, gitstate.Errorf(gitstate.KindConflict, "txn_changed", "transaction %s changed while it was being committed; try again", id)
		}
		return nil, nil, err
	}
	merge := res[0]
	e.t = next
	if !merge.Changed {
		// No merge commit: the record names none, as it would after a
		// crash (repair has nothing to find).
		out := e.t
		return &out, merge, nil
	}
	// The revision is known only now. It is recorded in the background so
	// that the answer does not wait for a second sync; if that write is
	// lost, the next start finds the merge commit by its trailer.
	next.Revision, next.Commit = merge.Revision, merge.Commit.String()
	e.t = next
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, err := rt.repo.Write(context.Background(), metaBatch(e.t, "committed at revision "+fmt.Sprint(e.t.Revision))); err != nil {
			m.log.Warn("recording a committed transaction's revision", "txn", id, "err", err)
		}
	}()
	out := e.t
	return &out, merge, nil
}

func touches(changes []storage.Change, key string) bool {
	for _, c := range changes {
		if c.Key == key {
			return true
		}
	}
	return false
}

// Rebase moves an open transaction onto main's head: its changes are
// replayed there as one commit, unless a key conflicts (merge_conflict).
// Approvals of the old head no longer hold.
func (m *Manager) Rebase(ctx context.Context, repo, id string, a Actor) (*Txn, error) {
	rt, e, err := m.entry(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t := m.effective(rt, e.t)
	if err := checkOpen(&t); err != nil {
		return nil, err
	}
	if err := checkOwner(&t, a); err != nil {
		return nil, err
	}
	head := rt.repo.Backend().Ref(branchRef(id))
	base, _ := storage.ParseHash(t.BaseCommit)
	main := rt.repo.Head()
	if main.Commit == base {
		return &t, nil
	}
	next := t
	next.BaseRevision, next.BaseCommit = main.Revision, main.Commit.String()
	onto := main.Commit
	b := &storage.Batch{
		Ref: branchRef(id), ExpectRef: &head, Onto: &onto,
		Merge:   &storage.Merge{Base: base, Source: head, Squash: true},
		Message: fmt.Sprintf("Rebase transaction %s onto revision %d", id, main.Revision),
		Author:  a.sig(),
	}
	if _, err := rt.repo.Write(ctx, b, metaBatch(next, "rebase")); err != nil {
		var ge *gitstate.Error
		if errors.As(err, &ge) && ge.Code == "ref_changed" {
			return nil, gitstate.Errorf(gitstate.KindConflict, "txn_changed", "transaction %s changed during the rebase; try again", id)
		}
		return nil, err
	}
	e.t = next
	return &next, nil
}

// Abort closes an open transaction without committing it: its branch is
// removed, its record kept.
func (m *Manager) Abort(ctx context.Context, repo, id string, a Actor) (*Txn, error) {
	rt, e, err := m.entry(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := m.effective(rt, e.t); t.Status != Open {
		return nil, notOpen(&t)
	}
	if err := checkOwner(&e.t, a); err != nil {
		return nil, err
	}
	return m.closeLocked(ctx, rt, e, Aborted, a.Name)
}

func (m *Manager) closeLocked(ctx context.Context, rt *repoTxns, e *entry, s Status, by string) (*Txn, error) {
	next := e.t
	head := rt.repo.Backend().Ref(branchRef(next.ID))
	m.close(&next, s, by)
	next.HeadCommit = head.String()
	if head.IsZero() {
		next.HeadCommit = ""
	}
	zero := storage.ZeroHash
	if _, err := rt.repo.Write(ctx, &storage.Batch{Ref: branchRef(next.ID), ResetTo: &zero}, metaBatch(next, string(s))); err != nil {
		return nil, err
	}
	e.t = next
	out := next
	return &out, nil
}

// Sweep closes the open transactions whose time is up: it removes their
// branches and records them expired. Clients see them expired before it
// runs (effective); Sweep only cleans up.
func (m *Manager) Sweep(ctx context.Context) error {
	m.mu.Lock()
	rts := make([]*repoTxns, 0, len(m.repos))
	for _, rt := range m.repos {
		rts = append(rts, rt)
	}
	m.mu.Unlock()
	var errs []error
	for _, rt := range rts {
		rt.mu.Lock()
		var due []*entry
		for _, e := range rt.txns {
			due = append(due, e)
		}
		rt.mu.Unlock()
		for _, e := range due {
			e.mu.Lock()
			if m.due(&e.t) {
				if _, err := m.closeLocked(ctx, rt, e, Expired, serverName); err != nil {
					errs = append(errs, err)
				} else {
					m.log.Info("transaction expired", "repo", rt.repo.Name(), "txn", e.t.ID)
				}
			}
			e.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}
