package api

import (
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/secrets"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/watch"
)

// opValue returns the value of a put op: value (UTF-8) or value_base64,
// exactly one of them.
func opValue(op wire.Op, i int) ([]byte, error) {
	switch {
	case op.Value != nil && op.ValueBase64 != nil:
		return nil, badRequest("ops[%d]: give value or value_base64, not both", i)
	case op.Value != nil:
		return []byte(*op.Value), nil
	case op.ValueBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*op.ValueBase64)
		if err != nil {
			return nil, badRequest("ops[%d]: value_base64 is not valid base64", i)
		}
		return b, nil
	}
	return nil, badRequest("ops[%d]: a put needs value or value_base64", i)
}

// storageOps validates a batch's ops and turns them into storage ops,
// returning the keys they touch and the secrets to encrypt: a put_secret op
// becomes a put of the secret's file (<key>.sops.json) whose value is left
// empty until writeSecrets encrypts it, so that no plaintext can reach a
// tree by mistake. The secrets are returned even with an error, for the
// caller to clear. A batch changes each key once (duplicateKey). Errors
// name a put_secret's secret by its key, not its file (secretError).
func (s *Server) storageOps(ops []wire.Op) ([]storage.Op, []string, []sealOp, error) {
	if len(ops) == 0 {
		return nil, nil, nil, badRequest("ops must not be empty")
	}
	out := make([]storage.Op, 0, len(ops))
	var keys []string
	var seal []sealOp
	for i, op := range ops {
		switch op.Op {
		case "put_secret":
			if err := secrets.ValidateKey(op.Key); err != nil {
				return nil, nil, seal, err
			}
			path := secrets.PathOf(op.Key)
			if err := storage.ValidateKey(path); err != nil {
				return nil, nil, seal, secretError(err, path)
			}
			v, err := opValue(op, i)
			if err != nil {
				return nil, nil, seal, err
			}
			seal = append(seal, sealOp{index: len(out), plaintext: v})
			if int64(len(v)) > s.opts.MaxValueSize {
				return nil, nil, seal, gitstate.Errorf(gitstate.KindTooLarge, "value_too_large",
					"ops[%d]: the secret %q is %d bytes; the limit is %d", i, op.Key, len(v), s.opts.MaxValueSize).WithKeys(op.Key)
			}
			out = append(out, storage.Op{Kind: storage.OpPut, Key: path})
			keys = append(keys, path)
		case "put":
			if err := storage.ValidateKey(op.Key); err != nil {
				return nil, nil, seal, err
			}
			v, err := opValue(op, i)
			if err != nil {
				return nil, nil, seal, err
			}
			if int64(len(v)) > s.opts.MaxValueSize {
				return nil, nil, seal, gitstate.Errorf(gitstate.KindTooLarge, "value_too_large",
					"ops[%d]: value of %q is %d bytes; the limit is %d", i, op.Key, len(v), s.opts.MaxValueSize).WithKeys(op.Key)
			}
			out = append(out, storage.Op{Kind: storage.OpPut, Key: op.Key, Value: v})
			keys = append(keys, op.Key)
		case "delete":
			if err := storage.ValidateKey(op.Key); err != nil {
				return nil, nil, seal, err
			}
			out = append(out, storage.Op{Kind: storage.OpDelete, Key: op.Key})
			keys = append(keys, op.Key)
		case "move":
			to := op.To
			if to == "" {
				to = op.Key
			}
			for _, k := range []string{op.From, to} {
				if err := storage.ValidateKey(k); err != nil {
					return nil, nil, seal, err
				}
			}
			out = append(out, storage.Op{Kind: storage.OpMove, From: op.From, Key: to})
			keys = append(keys, op.From, to)
		default:
			return nil, nil, seal, gitstate.Errorf(gitstate.KindInvalid, "unknown_op", "ops[%d]: unknown op %q", i, op.Op)
		}
	}
	if err := duplicateKey(out); err != nil {
		// Two put_secret ops of one secret name it; a put_secret and a
		// plain op on its file name the file, which both change.
		plain := map[string]bool{}
		for i, op := range out {
			if !slices.ContainsFunc(seal, func(so sealOp) bool { return so.index == i }) {
				plain[op.Key], plain[op.From] = true, true
			}
		}
		var paths []string
		for _, p := range secretOpKeys(out, seal) {
			if !plain[p] {
				paths = append(paths, p)
			}
		}
		return nil, nil, seal, secretError(err, paths...)
	}
	return out, keys, seal, nil
}

// duplicateKey fails with 400 duplicate_key, naming the key, when two of a
// batch's ops (one per wire op, in order) touch the same key, a move
// touching its from and its to. Applying both would let the last one win
// silently; etcd likewise refuses a key twice in one transaction.
func duplicateKey(ops []storage.Op) error {
	if len(ops) < 2 {
		return nil
	}
	opOf := make(map[string]int, len(ops)+1)
	for i, op := range ops {
		for _, k := range []string{op.From, op.Key} {
			if k == "" {
				continue
			}
			if j, ok := opOf[k]; ok && j != i {
				return gitstate.Errorf(gitstate.KindInvalid, "duplicate_key",
					"ops[%d] and ops[%d] both change %q: a batch changes each key once", j, i, k).WithKeys(k)
			}
			opOf[k] = i
		}
	}
	return nil
}

func storagePreconditions(ps []wire.Precondition) ([]storage.Precondition, []string, error) {
	out := make([]storage.Precondition, 0, len(ps))
	var keys []string
	for i, p := range ps {
		if err := storage.ValidateKey(p.Key); err != nil {
			return nil, nil, err
		}
		sp := storage.Precondition{Key: p.Key, Absent: p.Absent}
		switch {
		case p.Absent && p.ETag != "":
			return nil, nil, badRequest("preconditions[%d]: give etag or absent, not both", i)
		case p.ETag != "":
			h, ok := parseETag(p.ETag)
			if !ok {
				return nil, nil, badRequest("preconditions[%d]: etag must be a 40-digit blob id", i)
			}
			sp.ETag = h
		case !p.Absent:
			return nil, nil, badRequest("preconditions[%d]: give etag or absent", i)
		}
		out = append(out, sp)
		keys = append(keys, p.Key)
	}
	return out, keys, nil
}

func (s *Server) createCommit(w http.ResponseWriter, r *http.Request) {
	var req wire.CommitRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	ops, keys, seal, err := s.storageOps(req.Ops)
	defer func() {
		for _, so := range seal {
			clear(so.plaintext)
		}
	}()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// From here on, errors name the batch's secrets by their keys.
	secretPaths := secretOpKeys(ops, seal)
	fail := func(err error) { s.writeError(w, r, secretError(err, secretPaths...)) }
	pre, pkeys, err := storagePreconditions(req.Preconditions)
	if err != nil {
		fail(err)
		return
	}
	t, err := s.targetOf(r, true, append(keys, pkeys...)...)
	if err != nil {
		fail(err)
		return
	}
	if len(seal) > 0 {
		if s.opts.Secrets == nil {
			fail(secretsDisabled())
			return
		}
		if err := authorize(r, ScopeSecretsWrite, t.repo.Name(), secretPaths...); err != nil {
			fail(err)
			return
		}
	}
	b := s.batchFor(r, req.Message)
	b.Ops, b.Preconditions = ops, pre
	if req.BaseRevision != "" {
		if t.inTxn() {
			fail(badRequest("base_revision is not supported inside a transaction"))
			return
		}
		if b.BaseRevision, err = t.repo.ResolveRevision(string(req.BaseRevision)); err != nil {
			fail(err)
			return
		}
		b.CheckBase = true
	}
	var res *storage.Result
	if len(seal) > 0 {
		res, err = s.writeSecrets(r.Context(), t, &b, seal)
	} else {
		s.noteWrite(r, t, &b)
		res, err = t.write(r.Context(), &b)
	}
	if err != nil {
		fail(err)
		return
	}
	noted(r, res)
	made(r, res)
	writeJSON(w, http.StatusOK, wire.CommitResult{Revision: res.Revision, Commit: res.Commit.String(), Changed: res.Changed})
}

// commitInfo converts a revision record for the wire as p may see it:
// without the changes, nor the names of keys, outside p's prefixes
// (watch.Redact). It returns false when p may see none of the changes.
func commitInfo(ri *storage.RevisionInfo, p *Principal) (wire.CommitInfo, bool) {
	all := len(ri.Changes)
	if see := seeFor(p); see != nil {
		if ri = watch.Redact(ri, see); len(ri.Changes) == 0 && all > 0 {
			return wire.CommitInfo{}, false
		}
	}
	ci := wire.CommitInfo{
		Revision:    ri.Revision,
		Commit:      ri.Commit,
		Parents:     ri.Parents,
		Author:      ri.Author,
		AuthorEmail: ri.Email,
		Time:        time.Unix(ri.Time, 0).UTC(),
		Message:     ri.Message,
		Changes:     make([]wire.Change, 0, len(ri.Changes)),
	}
	if ci.Parents == nil {
		ci.Parents = []string{}
	}
	for _, c := range ri.Changes {
		ci.Changes = append(ci.Changes, wire.Change{Key: c.Key, Op: c.Op, From: c.From, ETag: c.ETag})
	}
	return ci, true
}

func (s *Server) listCommits(w http.ResponseWriter, r *http.Request) {
	repo, err := s.repoOf(r, ScopeRead)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	limit, err := intParam(r, "limit", 100, 1, maxCommitLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	key, prefix := q.Get("key"), q.Get("prefix")
	if key != "" {
		if err := storage.ValidateKey(key); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if err := storage.ValidatePrefix(prefix); err != nil {
		s.writeError(w, r, err)
		return
	}
	var after int64
	if q.Get("after") != "" {
		if after, err = repo.ResolveRevision(q.Get("after")); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	p := PrincipalOf(r)
	if q.Has("wait") {
		wait, err := time.ParseDuration(q.Get("wait"))
		if err != nil || wait < 0 || wait > maxWait {
			s.writeError(w, r, badRequest("wait must be a duration from 0s to %s", maxWait))
			return
		}
		s.longPoll(w, r, repo, after, int(limit), key, prefix, wait)
		return
	}
	opts := storage.LogOptions{Limit: int(limit), Key: key, Prefix: prefix}
	if q.Get("after") != "" {
		opts.Before = after
	}
	head := repo.Head().Revision
	out := wire.CommitList{Commits: []wire.CommitInfo{}, Revision: head}
	// more reports that older revisions remain: next is 0 on the page that
	// reaches the oldest revision the filters keep (as far as Log knows).
	more := false
	for {
		ris, next, err := repo.Log(r.Context(), opts)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		for _, ri := range ris {
			ci, ok := commitInfo(ri, p)
			if !ok {
				continue
			}
			if len(out.Commits) == int(limit) {
				more = true
				break
			}
			out.Commits = append(out.Commits, ci)
		}
		// A prefix-limited token may have had commits filtered out: fill
		// the page from older ones.
		if more || next == 0 {
			break
		}
		if len(out.Commits) == int(limit) {
			more = true
			break
		}
		opts.Before = next
	}
	if more {
		out.Next = out.Commits[len(out.Commits)-1].Revision
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getCommit(w http.ResponseWriter, r *http.Request) {
	repo, err := s.repoOf(r, ScopeRead)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rev, err := repo.ResolveRevision(pathVar(r, "rev"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ri, err := repo.Revision(rev)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ci, ok := commitInfo(ri, PrincipalOf(r))
	if !ok {
		s.writeError(w, r, forbidden("prefix", "revision %d changes no key this token may read", rev))
		return
	}
	writeJSON(w, http.StatusOK, ci)
}

func (s *Server) revert(w http.ResponseWriter, r *http.Request) {
	var req wire.RevertRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	repo, err := s.repoOf(r, ScopeWrite)
	if err != nil {
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
	ri, err := repo.Revision(rev)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var keys []string
	for _, c := range ri.Changes {
		keys = append(keys, c.Key)
		if c.From != "" {
			keys = append(keys, c.From)
		}
	}
	if err := authorize(r, ScopeWrite, repo.Name(), keys...); err != nil {
		// Name no key the token may not see, as GET of the revision does
		// not: the revision's keys are not the caller's to learn.
		var me *missingErr
		if errors.As(err, &me) && strings.HasPrefix(me.what, "prefix:") {
			err = forbidden("prefix", "revision %d changes keys outside this token's prefixes", rev)
		}
		s.writeError(w, r, err)
		return
	}
	if err := checkSecretScope(PrincipalOf(r), keys); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.checkDirect(r.Context(), repo, actorOf(r), deleteOps(keys)); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := repo.Revert(r.Context(), rev, req.Force, s.batchFor(r, req.Message))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	made(r, res)
	writeJSON(w, http.StatusOK, wire.CommitResult{Revision: res.Revision, Commit: res.Commit.String(), Changed: res.Changed})
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) {
	var req wire.RollbackRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	repo, err := s.repoOf(r, ScopeWrite)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.To == "" {
		s.writeError(w, r, badRequest("to is required"))
		return
	}
	if err := storage.ValidatePrefix(req.Prefix); err != nil {
		s.writeError(w, r, err)
		return
	}
	to, err := repo.ResolveRevision(string(req.To))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := PrincipalOf(r)
	if info := infoOf(r); info != nil && req.Prefix != "" {
		info.keys = []string{req.Prefix}
	}
	if !p.overlapsPrefix(req.Prefix) {
		s.writeError(w, r, forbidden("prefix:"+req.Prefix, "token may not write any key under %q", req.Prefix))
		return
	}
	// Keys the caller may not write are left as they are: a prefix-limited
	// token rolls back its own keys, and only an administrator rolls back
	// the server's configuration.
	keep := func(key string) bool {
		return p.CanKey(key) && (!storage.IsReserved(key) || p.HasScope(ScopeAdmin))
	}
	// Protected keys change only through transactions: refuse a rollback
	// that would touch them.
	targetCommit, err := repo.RevisionCommit(to)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	changes, err := repo.Diff(r.Context(), repo.Head().Commit, targetCommit, req.Prefix)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var keys []string
	for _, c := range changes {
		if keep(c.Key) {
			keys = append(keys, c.Key)
		}
	}
	if err := checkSecretScope(p, keys); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.checkDirect(r.Context(), repo, actorOf(r), deleteOps(keys)); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := repo.Rollback(r.Context(), to, req.Prefix, keep, s.batchFor(r, req.Message))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	made(r, res)
	writeJSON(w, http.StatusOK, wire.CommitResult{Revision: res.Revision, Commit: res.Commit.String(), Changed: res.Changed})
}

// deleteOps describes keys about to change, for a policy check that needs
// only their names.
func deleteOps(keys []string) []storage.Op {
	ops := make([]storage.Op, len(keys))
	for i, k := range keys {
		ops[i] = storage.Op{Kind: storage.OpDelete, Key: k}
	}
	return ops
}

// maxWait bounds a long poll.
const maxWait = 5 * time.Minute

// longPoll answers GET .../commits?after=N&wait=D: the revisions after N
// (oldest first) as soon as there is one the caller may see, or an empty
// list when D passes. Revision is the head, so that a client whose filter
// skipped revisions can move its cursor past them. A token revoked or
// expired while it waits gets 401, not the revisions made since.
func (s *Server) longPoll(w http.ResponseWriter, r *http.Request, repo *storage.Repo, after int64, limit int, key, prefix string, wait time.Duration) {
	p := PrincipalOf(r)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	guard := s.guardToken(p)
	defer guard.stop()
	scan := after
	for {
		changed := repo.Changed()
		head := repo.Head().Revision
		out := wire.CommitList{Commits: []wire.CommitInfo{}, Revision: head}
		if head > scan {
			ris, _, err := repo.Log(r.Context(), storage.LogOptions{After: scan, Limit: limit, Key: key, Prefix: prefix, Ascending: true})
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			// Every revision listed was committed before this check.
			if err := guard.check(); err != nil {
				s.writeError(w, r, err)
				return
			}
			for _, ri := range ris {
				if ci, ok := commitInfo(ri, p); ok {
					out.Commits = append(out.Commits, ci)
				}
			}
			if len(out.Commits) > 0 {
				out.Next = out.Commits[len(out.Commits)-1].Revision
				writeJSON(w, http.StatusOK, out)
				return
			}
			if len(ris) < limit {
				scan = head
			} else {
				scan = ris[len(ris)-1].Revision
				continue
			}
		}
		var closing <-chan struct{}
		if s.opts.Watch != nil {
			closing = s.opts.Watch.Done()
		}
		select {
		case <-changed:
		case <-guard.recheck():
			if err := guard.check(); err != nil {
				s.writeError(w, r, err)
				return
			}
		case <-timer.C:
			writeJSON(w, http.StatusOK, out)
			return
		case <-closing:
			writeJSON(w, http.StatusOK, out)
			return
		case <-r.Context().Done():
			return
		}
	}
}
