// Package txn implements branch transactions: a provisional change kept on
// a real Git branch (refs/heads/txn/<id>), read and written like main,
// previewed against main, approved and reported on, then committed to main
// in one merge commit, or aborted.
//
// A transaction's metadata (status, approvals, reports) is kept in Git too,
// as one JSON file per transaction on the ref refs/gitstate/txns, so it
// survives restarts and the loss of the index. Status changes are written
// in the same atomic group as the ref changes they go with (the merge on
// main and the removal of the branch, say); only the committed revision
// number is filled in afterwards, and repaired at start when a crash lost it.
package txn

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/storage"
)

// MetaRef is the ref whose tree holds every transaction's record.
const MetaRef = "refs/gitstate/txns"

// BranchPrefix is the branch namespace of transactions.
const BranchPrefix = "txn/"

// Trailers of a transaction's merge commit.
const (
	TrailerTxn        = "Gitstate-Txn"
	TrailerTxnAuthor  = "Gitstate-Txn-Author"
	TrailerApprovedBy = "Gitstate-Approved-By"
)

// Status is the state of a transaction.
type Status string

// The states.
const (
	Open      Status = "open"
	Committed Status = "committed"
	Aborted   Status = "aborted"
	Expired   Status = "expired"
)

// Approval is one approval, bound to the branch head it approved.
type Approval struct {
	Approver string    `json:"approver"`
	Comment  string    `json:"comment,omitempty"`
	Commit   string    `json:"commit"`
	Time     time.Time `json:"time"`
}

// Report is what a reconciler that dry-ran the transaction's branch says
// would happen, bound to the head commit it was made for. By is the
// identity that posted it (the API lets a token report only under its own
// name, or a sub-name of it, unless it is an administrator's); records
// written before it was kept have none.
type Report struct {
	Reporter string          `json:"reporter"`
	By       string          `json:"by,omitempty"`
	Status   string          `json:"status"`
	Summary  string          `json:"summary,omitempty"`
	Details  json.RawMessage `json:"details,omitempty"`
	Commit   string          `json:"commit"`
	Time     time.Time       `json:"time"`
}

// Txn is a transaction's record, as kept in Git.
type Txn struct {
	ID           string     `json:"id"`
	Author       string     `json:"author"`
	AuthorEmail  string     `json:"author_email,omitempty"`
	Message      string     `json:"message,omitempty"`
	Status       Status     `json:"status"`
	BaseRevision int64      `json:"base_revision"`
	BaseCommit   string     `json:"base_commit"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	ClosedAt     *time.Time `json:"closed_at,omitempty"`
	ClosedBy     string     `json:"closed_by,omitempty"`
	// HeadCommit is the branch's head when the transaction closed (while
	// open, the branch itself is the truth).
	HeadCommit string     `json:"head_commit,omitempty"`
	Approvals  []Approval `json:"approvals"`
	Reports    []Report   `json:"reports"`
	// Revision and Commit are main's after the transaction committed.
	Revision int64  `json:"revision,omitempty"`
	Commit   string `json:"commit,omitempty"`
}

// Branch returns the transaction's branch name (txn/<id>).
func (t *Txn) Branch() string { return BranchPrefix + t.ID }

func branchRef(id string) string { return "refs/heads/" + BranchPrefix + id }

func recordKey(id string) string { return id[:2] + "/" + id + ".json" }

// Actor is who acts on a transaction.
type Actor struct {
	Name  string
	Email string
	// Admin may act on any transaction (commit, abort, write) and change
	// the server's configuration.
	Admin bool
}

func (a Actor) sig() storage.Signature { return storage.Signature{Name: a.Name, Email: a.Email} }

// Options configures a Manager.
type Options struct {
	// DefaultTTL is a transaction's lifetime when none is given (24h).
	DefaultTTL time.Duration
	// MaxTTL bounds the lifetime (30 days).
	MaxTTL time.Duration
	// SweepInterval is how often expired transactions are closed (30s).
	SweepInterval time.Duration
	Logger        *slog.Logger
	// Now returns the time (for tests).
	Now func() time.Time
}

// Manager runs the transactions of every repo of a store. It is safe for
// concurrent use.
type Manager struct {
	store    *storage.Store
	opts     Options
	log      *slog.Logger
	policies policyCache

	mu    sync.Mutex // guards repos
	repos map[string]*repoTxns

	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup // background record writes
}

// repoTxns is the transactions of one repo.
type repoTxns struct {
	repo *storage.Repo
	mu   sync.Mutex // guards txns
	txns map[string]*entry
}

// entry is one transaction; its lock serializes changes to its record.
type entry struct {
	mu sync.Mutex
	t  Txn
}

// NewManager returns a Manager over store and starts its sweeper.
func NewManager(store *storage.Store, opts Options) *Manager {
	if opts.DefaultTTL <= 0 {
		opts.DefaultTTL = 24 * time.Hour
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = 30 * 24 * time.Hour
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{store: store, opts: opts, log: opts.Logger, repos: map[string]*repoTxns{}, cancel: cancel, done: make(chan struct{})}
	go m.sweepLoop(ctx)
	return m
}

// Close stops the sweeper and waits for background record writes.
func (m *Manager) Close() {
	m.cancel()
	<-m.done
	m.wg.Wait()
}

func (m *Manager) sweepLoop(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.Sweep(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("expiring transactions", "err", err)
			}
		}
	}
}

// Load reads every repo's transactions and repairs what a crash left
// behind. Repos are otherwise loaded on first use.
func (m *Manager) Load(ctx context.Context) error {
	for _, name := range m.store.Repos() {
		if _, err := m.repoTxns(ctx, name); err != nil {
			return fmt.Errorf("transactions of %s: %w", name, err)
		}
	}
	return nil
}

func (m *Manager) repoTxns(ctx context.Context, name string) (*repoTxns, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rt, ok := m.repos[name]; ok {
		return rt, nil
	}
	repo, err := m.store.Repo(name)
	if err != nil {
		return nil, err
	}
	rt := &repoTxns{repo: repo, txns: map[string]*entry{}}
	if err := m.load(ctx, rt); err != nil {
		return nil, err
	}
	m.repos[name] = rt
	return rt, nil
}

// load reads the records of a repo and repairs them.
func (m *Manager) load(ctx context.Context, rt *repoTxns) error {
	head := rt.repo.Backend().Ref(MetaRef)
	if head.IsZero() {
		return nil
	}
	after := ""
	for {
		page, err := rt.repo.ListAt(ctx, head, storage.ListOptions{After: after, Values: true})
		if err != nil {
			return err
		}
		for _, it := range page.Items {
			var t Txn
			if err := json.Unmarshal(it.Value, &t); err != nil {
				m.log.Error("unreadable transaction record", "repo", rt.repo.Name(), "key", it.Key, "err", err)
				continue
			}
			rt.txns[t.ID] = &entry{t: t}
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	for _, e := range rt.txns {
		if err := m.repair(ctx, rt, e); err != nil {
			return err
		}
	}
	return nil
}

// repair fixes a record that a crash left behind: a commit whose revision
// was not recorded, an open transaction whose branch is gone, a closed one
// whose branch remains.
func (m *Manager) repair(ctx context.Context, rt *repoTxns, e *entry) error {
	t := &e.t
	branch := rt.repo.Backend().Ref(branchRef(t.ID))
	switch {
	case t.Status == Committed && t.Revision == 0:
		rev, commit, err := findMerge(ctx, rt.repo, t)
		if err != nil {
			return err
		}
		if rev == 0 {
			return nil // a commit that changed nothing: no merge to find
		}
		m.log.Info("recording the revision of a committed transaction", "repo", rt.repo.Name(), "txn", t.ID, "revision", rev)
		next := *t
		next.Revision, next.Commit = rev, commit
		return m.save(ctx, rt, e, next)
	case t.Status == Open && branch.IsZero():
		m.log.Warn("transaction branch missing; marking it aborted", "repo", rt.repo.Name(), "txn", t.ID)
		next := *t
		m.close(&next, Aborted, serverName)
		return m.save(ctx, rt, e, next)
	case t.Status != Open && !branch.IsZero():
		zero := storage.ZeroHash
		_, err := rt.repo.Write(ctx, &storage.Batch{Ref: branchRef(t.ID), ResetTo: &zero})
		return err
	}
	return nil
}

// findMerge looks on main, after the transaction's base, for the merge
// commit that carries its id.
func findMerge(ctx context.Context, repo *storage.Repo, t *Txn) (int64, string, error) {
	head := repo.Head().Revision
	for rev := t.BaseRevision + 1; rev <= head; rev++ {
		ri, err := repo.Revision(rev)
		if err != nil {
			return 0, "", err
		}
		for _, tr := range storage.Trailers(ri.Message) {
			if tr.Key == TrailerTxn && tr.Value == t.ID {
				return rev, ri.Commit, nil
			}
		}
		if err := ctx.Err(); err != nil {
			return 0, "", err
		}
	}
	return 0, "", nil
}

// metaBatch writes a record.
func metaBatch(t Txn, what string) *storage.Batch {
	b, _ := json.MarshalIndent(t, "", "  ")
	return &storage.Batch{
		Ref:     MetaRef,
		Ops:     []storage.Op{{Kind: storage.OpPut, Key: recordKey(t.ID), Value: append(b, '\n')}},
		Message: fmt.Sprintf("txn %s: %s", t.ID, what),
		Author:  storage.Signature{Name: "gitstate", Email: "gitstate@localhost"},
	}
}

// save writes a record on its own and makes it current.
func (m *Manager) save(ctx context.Context, rt *repoTxns, e *entry, next Txn) error {
	if _, err := rt.repo.Write(ctx, metaBatch(next, string(next.Status))); err != nil {
		return err
	}
	e.t = next
	return nil
}

// serverName is who closes a transaction that the server closes itself
// (one expired, one whose branch a crash lost).
const serverName = "gitstate"

// close sets t's status to s, closed now by by; an expired transaction
// closed at its expires_at, as effective shows it before the sweeper runs.
func (m *Manager) close(t *Txn, s Status, by string) {
	at := m.opts.Now().UTC()
	if s == Expired {
		at = t.ExpiresAt
	}
	t.Status, t.ClosedAt, t.ClosedBy = s, &at, by
}

func newID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b [12]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[b[i]%32]
	}
	return string(b[:])
}

// ValidID reports whether id can be a transaction id.
func ValidID(id string) bool {
	if len(id) < 4 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ErrNotFound is returned for an unknown transaction.
var ErrNotFound = &gitstate.Error{Kind: gitstate.KindNotFound, Code: "txn_not_found"}

func (m *Manager) entry(ctx context.Context, repo, id string) (*repoTxns, *entry, error) {
	rt, err := m.repoTxns(ctx, repo)
	if err != nil {
		return nil, nil, err
	}
	rt.mu.Lock()
	e, ok := rt.txns[id]
	rt.mu.Unlock()
	if !ok {
		return nil, nil, gitstate.Errorf(gitstate.KindNotFound, "txn_not_found", "transaction %q does not exist in repo %s", id, repo)
	}
	return rt, e, nil
}

// notOpen is the error for acting on a closed transaction: its code says
// which state it is in (txn_committed, txn_aborted, txn_expired).
func notOpen(t *Txn) error {
	if t.Status == Expired {
		return gitstate.Errorf(gitstate.KindConflict, "txn_expired", "transaction %s expired at %s", t.ID, t.ExpiresAt.Format(time.RFC3339))
	}
	return gitstate.Errorf(gitstate.KindConflict, "txn_"+string(t.Status), "transaction %s is %s", t.ID, t.Status)
}

// checkOpen fails unless t, a transaction as clients see it (from
// snapshot or effective), is open.
func checkOpen(t *Txn) error {
	if t.Status != Open {
		return notOpen(t)
	}
	return nil
}

// due reports whether t is open past its time: expired, though the sweeper
// may not have closed it yet.
func (m *Manager) due(t *Txn) bool {
	return t.Status == Open && m.opts.Now().After(t.ExpiresAt)
}

// effective returns t, a record of rt, as clients see it. A transaction
// is expired from the moment its time is up, whether or not the sweeper
// has closed it yet: a record still open past its expires_at is given
// status Expired, closed_at its expires_at, closed_by "gitstate" and the
// head its branch has, as the sweeper records them. Every answer about a
// transaction (reads, lists, refusals) goes through here; the sweeper only
// does the clean-up (removing the branch, writing the record).
func (m *Manager) effective(rt *repoTxns, t Txn) Txn {
	if !m.due(&t) {
		return t
	}
	at := t.ExpiresAt
	t.Status, t.ClosedAt, t.ClosedBy = Expired, &at, serverName
	if h := rt.repo.Backend().Ref(branchRef(t.ID)); !h.IsZero() {
		t.HeadCommit = h.String()
	}
	return t
}

// snapshot returns e's record, of rt, as clients see it (effective).
// e.mu must not be held.
func (m *Manager) snapshot(rt *repoTxns, e *entry) Txn {
	e.mu.Lock()
	defer e.mu.Unlock()
	return m.effective(rt, e.t)
}

func checkOwner(t *Txn, a Actor) error {
	if a.Admin || a.Name == t.Author {
		return nil
	}
	e := gitstate.Errorf(gitstate.KindForbidden, "forbidden", "transaction %s belongs to %s", t.ID, t.Author)
	return e
}

// CheckTTL fails (invalid_request) unless ttl is a lifetime a transaction
// may be given: from 1s to Options.MaxTTL. Begin takes 0 for the default;
// the API checks a ttl its caller gave with CheckTTL first, so that an
// explicit "0s" is refused rather than taken for the default.
func (m *Manager) CheckTTL(ttl time.Duration) error {
	if ttl < time.Second || ttl > m.opts.MaxTTL {
		return gitstate.Errorf(gitstate.KindInvalid, "invalid_request", "ttl must be from 1s to %s", m.opts.MaxTTL)
	}
	return nil
}

// Begin opens a transaction on repo based on revision base (-1: head) that
// lives for ttl (0: the default).
func (m *Manager) Begin(ctx context.Context, repo string, a Actor, message string, ttl time.Duration, base int64) (*Txn, error) {
	rt, err := m.repoTxns(ctx, repo)
	if err != nil {
		return nil, err
	}
	if ttl == 0 {
		ttl = m.opts.DefaultTTL
	}
	if err := m.CheckTTL(ttl); err != nil {
		return nil, err
	}
	if base < 0 {
		base = rt.repo.Head().Revision
	}
	baseCommit, err := rt.repo.RevisionCommit(base)
	if err != nil {
		return nil, err
	}
	now := m.opts.Now().UTC()
	t := Txn{
		ID:           newID(),
		Author:       a.Name,
		AuthorEmail:  a.Email,
		Message:      message,
		Status:       Open,
		BaseRevision: base,
		BaseCommit:   baseCommit.String(),
		CreatedAt:    now,
		ExpiresAt:    now.Add(ttl),
		Approvals:    []Approval{},
		Reports:      []Report{},
	}
	zero := storage.ZeroHash
	branch := &storage.Batch{Ref: branchRef(t.ID), ExpectRef: &zero, ResetTo: &baseCommit}
	if baseCommit.IsZero() {
		// A branch needs a commit: start an empty repo's transaction with an
		// empty one.
		branch = &storage.Batch{Ref: branchRef(t.ID), ExpectRef: &zero, AllowEmpty: true,
			Message: "Begin transaction " + t.ID, Author: a.sig()}
	}
	if _, err := rt.repo.Write(ctx, branch, metaBatch(t, "begin")); err != nil {
		return nil, err
	}
	rt.mu.Lock()
	rt.txns[t.ID] = &entry{t: t}
	rt.mu.Unlock()
	return &t, nil
}

// Get returns a transaction's record, as clients see it: one past its
// expires_at is Expired even before the sweeper closes it.
func (m *Manager) Get(ctx context.Context, repo, id string) (*Txn, error) {
	rt, e, err := m.entry(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	t := m.snapshot(rt, e)
	return &t, nil
}

// List returns a repo's transactions, newest first, optionally only those
// with the given status or author (the status clients see, as Get gives
// it).
func (m *Manager) List(ctx context.Context, repo string, status Status, author string) ([]Txn, error) {
	rt, err := m.repoTxns(ctx, repo)
	if err != nil {
		return nil, err
	}
	rt.mu.Lock()
	es := make([]*entry, 0, len(rt.txns))
	for _, e := range rt.txns {
		es = append(es, e)
	}
	rt.mu.Unlock()
	out := []Txn{}
	for _, e := range es {
		t := m.snapshot(rt, e)
		if (status == "" || t.Status == status) && (author == "" || t.Author == author) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b Txn) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Head returns the commit a transaction's reads see: its branch's head
// while open, the head it closed with afterwards.
func (m *Manager) Head(ctx context.Context, repo, id string) (storage.Hash, *Txn, error) {
	rt, e, err := m.entry(ctx, repo, id)
	if err != nil {
		return storage.ZeroHash, nil, err
	}
	t := m.snapshot(rt, e)
	if t.Status == Open {
		if h := rt.repo.Backend().Ref(branchRef(id)); !h.IsZero() {
			return h, &t, nil
		}
	}
	h, _ := storage.ParseHash(t.HeadCommit)
	return h, &t, nil
}

// Repo returns the storage repo of a repo name.
func (m *Manager) Repo(name string) (*storage.Repo, error) { return m.store.Repo(name) }

// Write applies a batch to an open transaction's branch. The batch's Ref is
// set by Write.
func (m *Manager) Write(ctx context.Context, repo, id string, a Actor, b *storage.Batch) (*storage.Result, error) {
	rt, e, err := m.entry(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	t := m.snapshot(rt, e)
	if err := checkOpen(&t); err != nil {
		return nil, err
	}
	if err := checkOwner(&t, a); err != nil {
		return nil, err
	}
	if err := m.CheckWrite(ctx, repo, a, b.Ops, false); err != nil {
		return nil, err
	}
	b.Ref = branchRef(id)
	b.RequireRef = true
	b.CheckBase = false
	if b.Author.Name == "" {
		b.Author = a.sig()
	}
	res, err := rt.repo.WriteOne(ctx, b)
	var ge *gitstate.Error
	if errors.As(err, &ge) && ge.Code == "ref_not_found" {
		// Closed meanwhile.
		t = m.snapshot(rt, e)
		return nil, notOpen(&t)
	}
	return res, err
}

// Advance moves an open transaction's branch to commits made elsewhere (a
// git push to txn/<id>): the same checks as Write apply to what each commit
// of the advance's first-parent line changes, then the branch moves with a
// compare-and-swap. Approvals bound to the old head are void, as after any
// write.
func (m *Manager) Advance(ctx context.Context, repo, id string, a Actor, adv *storage.Advance) (*storage.Result, error) {
	rt, e, err := m.entry(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	t := m.snapshot(rt, e)
	if err := checkOpen(&t); err != nil {
		return nil, err
	}
	if err := checkOwner(&t, a); err != nil {
		return nil, err
	}
	if adv.Ref != branchRef(id) {
		return nil, fmt.Errorf("txn: advance of %s for transaction %s", adv.Ref, id)
	}
	for _, c := range adv.Line {
		ops, err := adv.Ops(c)
		if err != nil {
			return nil, err
		}
		if err := m.CheckWrite(ctx, repo, a, ops, false); err != nil {
			return nil, storage.InCommit(c.Hash, err)
		}
	}
	res, err := rt.repo.WriteOne(ctx, &storage.Batch{Ref: adv.Ref, Advance: adv, RequireRef: true})
	var ge *gitstate.Error
	if errors.As(err, &ge) && ge.Code == "ref_not_found" {
		t = m.snapshot(rt, e)
		return nil, notOpen(&t)
	}
	return res, err
}

// Policy returns a repo's policy at head.
func (m *Manager) Policy(ctx context.Context, repo string) (*Policy, error) {
	r, err := m.store.Repo(repo)
	if err != nil {
		return nil, err
	}
	return m.policies.load(ctx, r)
}

// CheckWrite applies a repo's policy to ops before they are written: on
// main (direct) protected keys are refused; everywhere, values must match
// their schemas, only an administrator may change the server's
// configuration, and a new policy must be valid.
//
// Every write reaches it: the API's on main (through the API's
// checkDirect) and in transactions, each revision of a git push to main or
// to txn/<id>, and each commit followed from an upstream. (The checks of
// secrets' files run in the API, before it, on the same paths.)
func (m *Manager) CheckWrite(ctx context.Context, repo string, a Actor, ops []storage.Op, direct bool) error {
	r, err := m.store.Repo(repo)
	if err != nil {
		return err
	}
	p, err := m.policies.load(ctx, r)
	if err != nil && direct {
		// A broken policy fails closed on main; a transaction may fix it.
		return err
	}
	var keys []string
	for _, op := range ops {
		keys = append(keys, op.Key)
		if op.Kind == storage.OpMove {
			keys = append(keys, op.From)
		}
	}
	if direct {
		if err := p.CheckDirect(keys); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if storage.IsReserved(k) && !a.Admin {
			return gitstate.Errorf(gitstate.KindForbidden, "reserved_key",
				"keys under %s are the server's configuration; only an administrator may change them", storage.ReservedPrefix).WithKeys(k)
		}
	}
	for _, op := range ops {
		if op.Kind != storage.OpPut || op.Value == nil {
			continue
		}
		if op.Key == PolicyKey {
			if _, err := ParsePolicy(op.Value, func(key string) ([]byte, error) {
				v, err := r.Get(ctx, key, 0)
				if err != nil {
					return nil, err
				}
				return v.Data, nil
			}); err != nil {
				return err
			}
		}
		if err := p.Validate(op.Key, op.Value); err != nil {
			return err
		}
	}
	return nil
}
