package api

import (
	"context"
	"net/http"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/txn"
)

// target is where a key-value request reads and writes: main, or the
// branch of a transaction (routes under /txns/{id}/).
type target struct {
	s     *Server
	repo  *storage.Repo
	txnID string
	actor txn.Actor
	p     *Principal
}

// targetOf returns the request's target after checking the caller's scope:
// read for reads; write on main, txn in a transaction, for writes.
func (s *Server) targetOf(r *http.Request, write bool, keys ...string) (*target, error) {
	id := pathVar(r, "id")
	scope := ScopeRead
	if write {
		scope = ScopeWrite
		if id != "" {
			scope = ScopeTxn
		}
	}
	return s.targetWith(r, []Scope{scope}, keys...)
}

// targetWith returns the request's target after checking that the caller
// holds every one of scopes on the repo and may touch keys.
func (s *Server) targetWith(r *http.Request, scopes []Scope, keys ...string) (*target, error) {
	id := pathVar(r, "id")
	repo, err := s.repoOf(r, scopes[0], keys...)
	if err != nil {
		return nil, err
	}
	for _, sc := range scopes[1:] {
		if err := authorize(r, sc, repo.Name(), keys...); err != nil {
			return nil, err
		}
	}
	t := &target{s: s, repo: repo, txnID: id, actor: actorOf(r), p: PrincipalOf(r)}
	if id != "" {
		if err := s.checkTxn(r.Context(), repo, id); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// checkTxn fails unless id names a transaction of repo, open or closed:
// 404 txn_not_found (not_found when the server runs without transactions).
func (s *Server) checkTxn(ctx context.Context, repo *storage.Repo, id string) error {
	if s.opts.Txns == nil {
		return gitstate.Errorf(gitstate.KindNotFound, "not_found", "transactions are not enabled")
	}
	if !txn.ValidID(id) {
		return gitstate.Errorf(gitstate.KindNotFound, "txn_not_found", "transaction %q does not exist", id)
	}
	_, err := s.opts.Txns.Get(ctx, repo.Name(), id)
	return err
}

// actorOf returns the transaction actor of the request's principal.
func actorOf(r *http.Request) txn.Actor {
	p := PrincipalOf(r)
	if p == nil {
		return txn.Actor{}
	}
	return txn.Actor{Name: p.Name, Email: p.Email, Admin: p.HasScope(ScopeAdmin)}
}

// inTxn reports whether the target is a transaction.
func (t *target) inTxn() bool { return t.txnID != "" }

// get reads key at revision rev of main (headRev: head), or at the
// transaction's head.
func (t *target) get(ctx context.Context, key string, rev int64) (*storage.Value, error) {
	if !t.inTxn() {
		switch rev {
		case headRev:
			return t.repo.Get(ctx, key, 0)
		case 0:
			// The empty state before the first commit holds no key.
			return nil, gitstate.Errorf(gitstate.KindNotFound, "key_not_found", "key %q does not exist at revision 0", key).WithKeys(key)
		}
		return t.repo.Get(ctx, key, rev)
	}
	head, _, err := t.s.opts.Txns.Head(ctx, t.repo.Name(), t.txnID)
	if err != nil {
		return nil, err
	}
	return t.repo.GetAt(ctx, head, key)
}

func (t *target) list(ctx context.Context, o storage.ListOptions) (*storage.ListResult, error) {
	if !t.inTxn() {
		switch o.Revision {
		case headRev:
			o.Revision = 0
		case 0:
			return &storage.ListResult{}, nil
		}
		return t.repo.List(ctx, o)
	}
	head, _, err := t.s.opts.Txns.Head(ctx, t.repo.Name(), t.txnID)
	if err != nil {
		return nil, err
	}
	return t.repo.ListAt(ctx, head, o)
}

// write applies a batch after the repo's policy: changing a secret's file
// needs scope secrets:write, and the file must hold an encrypted document
// (checkSecretWrites); on main, protected keys are
// refused and values checked against their schemas; in a transaction the
// transaction checks them.
func (t *target) write(ctx context.Context, b *storage.Batch) (*storage.Result, error) {
	if err := checkSecretScope(t.p, opKeys(b.Ops)); err != nil {
		return nil, err
	}
	if err := t.s.checkSecretWrites(b.Ops); err != nil {
		return nil, err
	}
	if t.inTxn() {
		return t.s.opts.Txns.Write(ctx, t.repo.Name(), t.txnID, t.actor, b)
	}
	if err := t.s.checkDirect(ctx, t.repo, t.actor, b.Ops); err != nil {
		return nil, err
	}
	return t.repo.WriteOne(ctx, b)
}

// checkDirect applies the policy to a direct write on main. Every write to
// main that does not come through a transaction passes here: PUT and
// DELETE of keys, atomic commits, reverts and rollbacks, and each revision
// a git push brings (push.go, with the pushed values in its ops). With
// transactions on, as the server runs, it defers to txn.Manager.CheckWrite,
// which writes in transactions (API and push alike) and commits followed
// from an upstream pass too.
func (s *Server) checkDirect(ctx context.Context, repo *storage.Repo, a txn.Actor, ops []storage.Op) error {
	if s.opts.Txns != nil {
		return s.opts.Txns.CheckWrite(ctx, repo.Name(), a, ops, true)
	}
	// Without transactions, administrators change the configuration
	// directly.
	for _, op := range ops {
		for _, k := range []string{op.Key, op.From} {
			if storage.IsReserved(k) && !a.Admin {
				return gitstate.Errorf(gitstate.KindForbidden, "reserved_key",
					"keys under %s are the server's configuration; only an administrator may change them", storage.ReservedPrefix).WithKeys(k)
			}
		}
	}
	return nil
}
