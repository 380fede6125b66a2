package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
)

// Transaction statuses (wire.Txn.Status).
const (
	TxnOpen      = "open"
	TxnCommitted = "committed"
	TxnAborted   = "aborted"
	TxnExpired   = "expired"
)

// Report statuses (wire.ReportRequest.Status).
const (
	ReportOK      = "ok"
	ReportFailed  = "failed"
	ReportPending = "pending"
)

// BeginTxnOptions are the options of BeginTxn. The zero value opens a
// transaction on main's head that lives for the server's default, 24h.
type BeginTxnOptions struct {
	// Message describes the change; it becomes the message of the merge
	// commit on main.
	Message string
	// TTL is how long the transaction stays open (0: the server's default,
	// 24h). Once it is up the transaction is closed as expired.
	TTL time.Duration
	// Base is the revision of main the transaction starts from: a number
	// or a commit id (empty: the head).
	Base wire.Rev
}

// BeginTxn opens a transaction (POST /v1/repos/{repo}/txns): a branch
// txn/<id> of main whose writes are invisible on main until CommitTxn. The
// caller becomes its author. opts may be nil. Work inside it through
// Repo.Txn with the returned ID.
func (r *Repo) BeginTxn(ctx context.Context, opts *BeginTxnOptions) (*wire.Txn, error) {
	if opts == nil {
		opts = &BeginTxnOptions{}
	}
	req := wire.BeginTxnRequest{Message: opts.Message, Base: opts.Base}
	if opts.TTL != 0 {
		ttl := wire.Duration(opts.TTL)
		req.TTL = &ttl
	}
	var out wire.Txn
	if err := r.c.doJSON(ctx, http.MethodPost, repoPath(r.name, "/txns"), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTxnsOptions select the transactions of ListTxns. The zero value lists
// them all.
type ListTxnsOptions struct {
	// Status keeps the transactions in this state: TxnOpen, TxnCommitted,
	// TxnAborted or TxnExpired.
	Status string
	// Author keeps the transactions this principal opened.
	Author string
}

// ListTxns lists the repo's transactions, newest first
// (GET /v1/repos/{repo}/txns). Each is its record only: no keys,
// conflicts or requirements (GetTxn has them). opts may be nil.
func (r *Repo) ListTxns(ctx context.Context, opts *ListTxnsOptions) (*wire.TxnList, error) {
	if opts == nil {
		opts = &ListTxnsOptions{}
	}
	q := url.Values{}
	if opts.Status != "" {
		q.Set("status", opts.Status)
	}
	if opts.Author != "" {
		q.Set("author", opts.Author)
	}
	var out wire.TxnList
	if err := r.c.do(ctx, &request{method: http.MethodGet, path: repoPath(r.name, "/txns"), query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetTxn describes transaction id (GET /v1/repos/{repo}/txns/{id}): its
// status, base and head, the keys it changes, its conflicts with main,
// approvals (valid or voided), reports and the policy's requirements. A
// missing transaction gives an error with code "txn_not_found".
func (r *Repo) GetTxn(ctx context.Context, id string) (*wire.Txn, error) {
	return r.txnCall(ctx, http.MethodGet, id, "", nil)
}

// TxnDiffOptions are the options of TxnDiff.
type TxnDiffOptions struct {
	// AgainstHead compares with main as it is now, which is what
	// committing would change, instead of with the transaction's base.
	AgainstHead bool
	// Patch adds a unified diff to each change whose values are text.
	Patch bool
}

// TxnDiff previews transaction id (GET /v1/repos/{repo}/txns/{id}/diff):
// the keys it changes, in key order, against its base or (AgainstHead)
// against main now. opts may be nil.
func (r *Repo) TxnDiff(ctx context.Context, id string, opts *TxnDiffOptions) (*wire.TxnDiff, error) {
	if opts == nil {
		opts = &TxnDiffOptions{}
	}
	if err := checkSegment("transaction id", id); err != nil {
		return nil, err
	}
	q := url.Values{}
	if opts.AgainstHead {
		q.Set("against", "head")
	}
	if opts.Patch {
		q.Set("patch", "true")
	}
	var out wire.TxnDiff
	if err := r.c.do(ctx, &request{method: http.MethodGet, path: r.txnPath(id, "/diff"), query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ApproveTxn approves transaction id's current head
// (POST /v1/repos/{repo}/txns/{id}/approvals) and returns the transaction
// as GetTxn describes it. The token needs scope approve and must not be the
// author's (code "self_approval"). A later write to the transaction voids
// the approval.
func (r *Repo) ApproveTxn(ctx context.Context, id, comment string) (*wire.Txn, error) {
	return r.txnCall(ctx, http.MethodPost, id, "/approvals", wire.ApproveRequest{Comment: comment})
}

// ReportTxn records a reconciler's dry-run report on transaction id
// (POST /v1/repos/{repo}/txns/{id}/reports) and returns the transaction as
// GetTxn describes it. The report replaces the reporter's previous one and
// is bound to rep.Commit (default: the current head).
func (r *Repo) ReportTxn(ctx context.Context, id string, rep *wire.ReportRequest) (*wire.Txn, error) {
	return r.txnCall(ctx, http.MethodPost, id, "/reports", rep)
}

// CommitTxn commits transaction id (POST /v1/repos/{repo}/txns/{id}/commit):
// its changes are applied to main's head in one merge commit, or nothing
// is. When main changed one of its keys to another value since its base,
// it fails with a conflict (code "merge_conflict") naming the keys in the
// error's Keys; keys changed only on main are no conflict. Keys under a
// protected prefix without enough valid approvals of the current head give
// code "approvals_required".
func (r *Repo) CommitTxn(ctx context.Context, id string) (*wire.CommitResult, error) {
	if err := checkSegment("transaction id", id); err != nil {
		return nil, err
	}
	var out wire.CommitResult
	if err := r.c.do(ctx, &request{method: http.MethodPost, path: r.txnPath(id, "/commit")}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RebaseTxn moves open transaction id onto main's head
// (POST /v1/repos/{repo}/txns/{id}/rebase) and returns it as GetTxn
// describes it. It fails with code "merge_conflict" naming the keys main
// changed to other values. Its head moves, so earlier approvals are voided.
func (r *Repo) RebaseTxn(ctx context.Context, id string) (*wire.Txn, error) {
	return r.txnCall(ctx, http.MethodPost, id, "/rebase", nil)
}

// AbortTxn closes open transaction id without committing it
// (DELETE /v1/repos/{repo}/txns/{id}) and returns its record: its branch is
// removed, its record kept with status aborted.
func (r *Repo) AbortTxn(ctx context.Context, id string) (*wire.Txn, error) {
	return r.txnCall(ctx, http.MethodDelete, id, "", nil)
}

// txnCall sends a request about transaction id (with in as its JSON body
// when not nil) and decodes the wire.Txn it answers.
func (r *Repo) txnCall(ctx context.Context, method, id, rest string, in any) (*wire.Txn, error) {
	if err := checkSegment("transaction id", id); err != nil {
		return nil, err
	}
	var out wire.Txn
	var err error
	if in != nil {
		err = r.c.doJSON(ctx, method, r.txnPath(id, rest), in, &out)
	} else {
		err = r.c.do(ctx, &request{method: method, path: r.txnPath(id, rest)}, &out)
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// txnPath returns the escaped path of a route of transaction id.
func (r *Repo) txnPath(id, rest string) string {
	return repoPath(r.name, "/txns/"+url.PathEscape(id)+rest)
}

// Txn is a handle on the keys of one transaction: the same key-value calls
// as Repo's, on the transaction's branch (the routes under
// /v1/repos/{repo}/txns/{id}/). Reads see the transaction's own writes over
// its base; writes make commits on its branch and leave main untouched.
// The transaction's life (commit, approve, abort...) is Repo's: CommitTxn,
// ApproveTxn, AbortTxn and the like.
//
// A branch has no revision numbers: values and listings are read at the
// branch's head (GetOptions.Rev and ListOptions.Rev are refused), their
// Revision and ModRevision are 0, and write results have Revision 0 and
// the branch's new head as Commit. Making a Txn sends no request. It is
// safe for concurrent use.
type Txn struct {
	repo *Repo
	id   string
	kv   keys
}

// Txn returns a handle on the keys of transaction id (BeginTxn's ID).
func (r *Repo) Txn(id string) *Txn {
	t := &Txn{repo: r, id: id, kv: keys{c: r.c, base: r.txnPath(id, ""), txn: true}}
	t.kv.err = checkSegment("transaction id", id)
	return t
}

// ID returns the transaction's id.
func (t *Txn) ID() string { return t.id }

// Repo returns the repo the transaction belongs to.
func (t *Txn) Repo() *Repo { return t.repo }

// Branch returns the name of the transaction's Git branch, "txn/<id>": what
// WatchOptions.Branch takes to follow it.
func (t *Txn) Branch() string { return "txn/" + t.id }

// Get reads key at the transaction's head
// (GET /v1/repos/{repo}/txns/{id}/kv/{key}). A key the transaction deleted,
// or that neither it nor its base has, gives gitstate.ErrKeyNotFound. opts
// may be nil.
func (t *Txn) Get(ctx context.Context, key string, opts *GetOptions) (*Value, error) {
	return t.kv.read(ctx, http.MethodGet, key, opts)
}

// Stat is Get without the value (HEAD /v1/repos/{repo}/txns/{id}/kv/{key}).
// As with Repo.Stat, a failed Stat's error carries no message.
func (t *Txn) Stat(ctx context.Context, key string, opts *GetOptions) (*Value, error) {
	return t.kv.read(ctx, http.MethodHead, key, opts)
}

// Put sets key to value in one commit on the transaction's branch
// (PUT /v1/repos/{repo}/txns/{id}/kv/{key}). The write moves the branch's
// head, which voids earlier approvals. A transaction that is not open gives
// a conflict with code "txn_committed", "txn_aborted" or "txn_expired".
// opts may be nil.
func (t *Txn) Put(ctx context.Context, key string, value []byte, opts *PutOptions) (*wire.WriteResult, error) {
	return t.kv.put(ctx, key, value, opts)
}

// Delete removes key, or with Prefix every key under it, in one commit on
// the transaction's branch (DELETE /v1/repos/{repo}/txns/{id}/kv/{key}).
// opts may be nil.
func (t *Txn) Delete(ctx context.Context, key string, opts *DeleteOptions) (*wire.DeleteResult, error) {
	return t.kv.delete(ctx, key, opts)
}

// List reads one page of keys at the transaction's head
// (GET /v1/repos/{repo}/txns/{id}/kv). opts may be nil.
func (t *Txn) List(ctx context.Context, opts *ListOptions) (*wire.ListResponse, error) {
	return t.kv.list(ctx, opts)
}

// Pages returns an iterator over every page of a listing of the
// transaction. Each page is read at the branch's head when it is read: the
// pages are one snapshot unless the transaction is written meanwhile (only
// its author or an administrator can). Iteration stops after the first
// error, which is yielded with a nil page. opts may be nil.
func (t *Txn) Pages(ctx context.Context, opts *ListOptions) iter.Seq2[*wire.ListResponse, error] {
	return t.kv.pages(ctx, opts)
}

// Items returns an iterator over every key of a listing of the
// transaction, read as with Pages. opts may be nil.
func (t *Txn) Items(ctx context.Context, opts *ListOptions) iter.Seq2[wire.ListItem, error] {
	return t.kv.items(ctx, opts)
}

// ListAll reads a listing of the transaction to its end, or to maxItems
// keys when maxItems > 0, read as with Pages. Next is empty when every key
// was read and otherwise the After that continues the listing. opts may be
// nil.
func (t *Txn) ListAll(ctx context.Context, opts *ListOptions, maxItems int) (*wire.ListResponse, error) {
	return t.kv.listAll(ctx, opts, maxItems)
}

// Commit applies a batch of ops in one atomic commit on the transaction's
// branch (POST /v1/repos/{repo}/txns/{id}/commits), or changes nothing.
// req.BaseRevision is refused. This does not commit the transaction to
// main: that is Repo.CommitTxn.
func (t *Txn) Commit(ctx context.Context, req *wire.CommitRequest) (*wire.CommitResult, error) {
	return t.kv.commit(ctx, req)
}

// checkSegment refuses an empty path segment (a transaction, webhook or
// token id, a reconciler's name): its URL would name another route.
func checkSegment(what, v string) error {
	if v == "" {
		return &gitstate.Error{Kind: gitstate.KindInvalid, Code: gitstate.ErrInvalidRequest.Code, Message: what + " must not be empty"}
	}
	return nil
}
