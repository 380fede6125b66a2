package txn

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/storage"
)

var (
	alice = Actor{Name: "alice", Email: "alice@example.com"}
	bob   = Actor{Name: "bob", Email: "bob@example.com"}
	admin = Actor{Name: "root", Admin: true}
)

type fixture struct {
	t     *testing.T
	dir   string
	store *storage.Store
	m     *Manager
	repo  *storage.Repo
	now   time.Time
	mu    sync.Mutex
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), now: time.Now()}
	f.open()
	t.Cleanup(func() {
		f.close()
		out, err := exec.Command("git", "-C", filepath.Join(f.dir, "repos", "default.git"), "fsck", "--strict", "--no-progress", "--no-dangling").CombinedOutput()
		if err != nil || strings.Contains(string(out), "error") || strings.Contains(string(out), "missing") {
			t.Errorf("git fsck: %v\n%s", err, out)
		}
	})
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	s, err := storage.Open(context.Background(), f.dir, storage.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	f.store = s
	f.m = NewManager(s, Options{SweepInterval: time.Hour, Now: f.clock})
	if err := f.m.Load(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.repo, _ = s.Repo(storage.DefaultRepo)
}

func (f *fixture) close() {
	if f.m != nil {
		f.m.Close()
		f.store.Close()
		f.m = nil
	}
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *fixture) putMain(key, value string) {
	f.t.Helper()
	if _, err := f.repo.WriteOne(context.Background(), &storage.Batch{Ops: []storage.Op{{Kind: storage.OpPut, Key: key, Value: []byte(value)}}}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) mainValue(key string) string {
	f.t.Helper()
	v, err := f.repo.Get(context.Background(), key, 0)
	if errors.Is(err, gitstate.ErrKeyNotFound) {
		return "<absent>"
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return string(v.Data)
}

func (f *fixture) begin(a Actor) *Txn {
	f.t.Helper()
	t, err := f.m.Begin(context.Background(), storage.DefaultRepo, a, "change", 0, -1)
	if err != nil {
		f.t.Fatal(err)
	}
	return t
}

func (f *fixture) put(id string, a Actor, key, value string) error {
	_, err := f.m.Write(context.Background(), storage.DefaultRepo, id, a, &storage.Batch{Ops: []storage.Op{{Kind: storage.OpPut, Key: key, Value: []byte(value)}}})
	return err
}

func (f *fixture) mustPut(id string, a Actor, key, value string) {
	f.t.Helper()
	if err := f.put(id, a, key, value); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) txnValue(id, key string) string {
	f.t.Helper()
	head, _, err := f.m.Head(context.Background(), storage.DefaultRepo, id)
	if err != nil {
		f.t.Fatal(err)
	}
	v, err := f.repo.GetAt(context.Background(), head, key)
	if errors.Is(err, gitstate.ErrKeyNotFound) {
		return "<absent>"
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return string(v.Data)
}

func code(err error) string {
	var ge *gitstate.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	if err == nil {
		return ""
	}
	return "other: " + err.Error()
}

func TestReadYourWritesAndCommit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.putMain("apps/web/replicas", "1")
	tx := f.begin(alice)
	if tx.BaseRevision != 1 || tx.Status != Open {
		t.Fatalf("begin: %+v", tx)
	}
	f.mustPut(tx.ID, alice, "apps/web/replicas", "3")
	f.mustPut(tx.ID, alice, "apps/web/image", "v2")
	if got := f.txnValue(tx.ID, "apps/web/replicas"); got != "3" {
		t.Errorf("read in txn: %q", got)
	}
	if got := f.mainValue("apps/web/replicas"); got != "1" {
		t.Errorf("main sees the txn's write: %q", got)
	}
	// Main moves on elsewhere: not a conflict.
	f.putMain("apps/api/replicas", "2")
	v, err := f.m.Describe(ctx, storage.DefaultRepo, tx.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(v.Keys, ",") != "apps/web/image,apps/web/replicas" || len(v.Conflicts) != 0 {
		t.Errorf("describe: keys %v conflicts %v", v.Keys, v.Conflicts)
	}
	changes, err := f.m.Diff(ctx, storage.DefaultRepo, tx.ID, true)
	if err != nil || len(changes) != 2 {
		t.Fatalf("diff against head: %v %v", changes, err)
	}
	done, res, err := f.m.Commit(ctx, storage.DefaultRepo, tx.ID, alice)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != Committed || done.Revision != 3 || res.Revision != 3 {
		t.Errorf("commit: %+v %+v", done, res)
	}
	if f.mainValue("apps/web/replicas") != "3" || f.mainValue("apps/web/image") != "v2" || f.mainValue("apps/api/replicas") != "2" {
		t.Error("merge lost a change")
	}
	c, _ := f.repo.ReadCommit(res.Commit)
	if len(c.Parents) != 2 {
		t.Errorf("merge commit has %d parents", len(c.Parents))
	}
	if !strings.Contains(c.Message, "Gitstate-Txn: "+tx.ID) {
		t.Errorf("merge message lacks the txn trailer: %q", c.Message)
	}
	if err := f.put(tx.ID, alice, "x", "y"); code(err) != "txn_committed" {
		t.Errorf("write after commit: %v", err)
	}
	if !f.repo.Backend().Ref("refs/heads/txn/" + tx.ID).IsZero() {
		t.Error("branch still there after commit")
	}
}

func TestConcurrentTransactions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.putMain("shared", "0")
	a, b := f.begin(alice), f.begin(bob)
	f.mustPut(a.ID, alice, "a/key", "1")
	f.mustPut(b.ID, bob, "b/key", "1")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, tx := range []*Txn{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := alice
			if i == 1 {
				who = bob
			}
			_, _, errs[i] = f.m.Commit(ctx, storage.DefaultRepo, tx.ID, who)
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("disjoint commits: %v, %v", errs[0], errs[1])
	}
	// Overlapping: the second gets a conflict naming the key.
	c, d := f.begin(alice), f.begin(bob)
	f.mustPut(c.ID, alice, "shared", "c")
	f.mustPut(d.ID, bob, "shared", "d")
	if _, _, err := f.m.Commit(ctx, storage.DefaultRepo, c.ID, alice); err != nil {
		t.Fatal(err)
	}
	_, _, err := f.m.Commit(ctx, storage.DefaultRepo, d.ID, bob)
	var ge *gitstate.Error
	if !errors.As(err, &ge) || ge.Code != "merge_conflict" || gitstate.KindOf(err) != gitstate.KindConflict || len(ge.Keys) != 1 || ge.Keys[0] != "shared" {
		t.Fatalf("overlapping commit: %v", err)
	}
	if f.mainValue("shared") != "c" {
		t.Error("the losing commit changed main")
	}
	v, _ := f.m.Describe(ctx, storage.DefaultRepo, d.ID)
	if strings.Join(v.Conflicts, ",") != "shared" {
		t.Errorf("conflicts: %v", v.Conflicts)
	}
	// The same value on both sides is not a conflict.
	e := f.begin(bob)
	f.mustPut(e.ID, bob, "shared", "c")
	if _, _, err := f.m.Commit(ctx, storage.DefaultRepo, e.ID, bob); err != nil {
		t.Errorf("same-value commit: %v", err)
	}
}

func TestRebase(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.putMain("k", "0")
	tx := f.begin(alice)
	f.mustPut(tx.ID, alice, "k", "txn")
	f.putMain("other", "main")
	got, err := f.m.Rebase(ctx, storage.DefaultRepo, tx.ID, alice)
	if err != nil {
		t.Fatal(err)
	}
	if got.BaseRevision != 2 {
		t.Errorf("base after rebase: %d", got.BaseRevision)
	}
	if f.txnValue(tx.ID, "other") != "main" || f.txnValue(tx.ID, "k") != "txn" {
		t.Error("rebased branch does not hold main plus the txn")
	}
	changes, _ := f.m.Diff(ctx, storage.DefaultRepo, tx.ID, false)
	if len(changes) != 1 || changes[0].Key != "k" {
		t.Errorf("preview after rebase: %+v", changes)
	}
	// A conflicting rebase changes nothing.
	f.putMain("k", "main-again")
	if _, err := f.m.Rebase(ctx, storage.DefaultRepo, tx.ID, alice); code(err) != "merge_conflict" {
		t.Errorf("conflicting rebase: %v", err)
	}
	f.putMain("k", "0")
	f.putMain("k", "txn")
	if _, _, err := f.m.Commit(ctx, storage.DefaultRepo, tx.ID, alice); err != nil {
		t.Errorf("commit after main converged: %v", err)
	}
}

func TestApprovalsAndPolicy(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	policy := `protected:
  - prefix: prod/
    approvals: 1
    reports: [plan]
schemas:
  - pattern: apps/*/replicas.json
    schema:
      type: object
      required: [replicas]
      properties:
        replicas: {type: integer, minimum: 1}
  - pattern: apps/*/limits.yaml
    schema: {type: object}
`
	// The policy itself goes in through a transaction, by an administrator.
	if err := f.m.CheckWrite(ctx, storage.DefaultRepo, admin, []storage.Op{{Kind: storage.OpPut, Key: PolicyKey, Value: []byte(policy)}}, true); code(err) != "protected_prefix" {
		t.Fatalf("direct policy write: %v", err)
	}
	p := f.begin(admin)
	if err := f.put(p.ID, alice, PolicyKey, policy); code(err) != "forbidden" {
		t.Errorf("non-owner write: %v", err)
	}
	for _, bad := range []string{
		"protected: [{prefix: ''}]",
		"protected: [{prefix: prod/, reports: ['plan bot']}]", // no report can carry that name
		"protected: [{prefix: prod/, reports: [plan-bot/]}]",
	} {
		if err := f.put(p.ID, admin, PolicyKey, bad); code(err) != "invalid_policy" {
			t.Errorf("invalid policy %q: %v", bad, err)
		}
	}
	f.mustPut(p.ID, admin, PolicyKey, policy)
	if _, _, err := f.m.Commit(ctx, storage.DefaultRepo, p.ID, admin); err != nil {
		t.Fatal(err)
	}

	// Protected prefix: refused on main.
	err := f.m.CheckWrite(ctx, storage.DefaultRepo, alice, []storage.Op{{Kind: storage.OpPut, Key: "prod/db", Value: []byte("x")}}, true)
	if code(err) != "protected_prefix" || gitstate.KindOf(err) != gitstate.KindForbidden {
		t.Errorf("direct write to prod/: %v", err)
	}
	// Schema: refused on main and in transactions alike.
	for _, direct := range []bool{true, false} {
		err := f.m.CheckWrite(ctx, storage.DefaultRepo, alice, []storage.Op{{Kind: storage.OpPut, Key: "apps/web/replicas.json", Value: []byte(`{"replicas": 0}`)}}, direct)
		var ge *gitstate.Error
		if !errors.As(err, &ge) || ge.Code != "schema_violation" || ge.Kind != gitstate.KindUnprocessable || len(ge.Details) == 0 || ge.Details[0].Path != "/replicas" {
			t.Errorf("schema (direct=%v): %v %+v", direct, err, ge)
		}
	}
	// A value that does not parse fails at the root, with the parse error.
	for _, c := range []struct{ key, value, says string }{
		{"apps/web/replicas.json", "notjson", "not valid JSON"},
		{"apps/web/replicas.json", "", "not valid JSON"},
		{"apps/web/limits.yaml", "a: [", "not valid YAML"},
	} {
		err := f.m.CheckWrite(ctx, storage.DefaultRepo, alice, []storage.Op{{Kind: storage.OpPut, Key: c.key, Value: []byte(c.value)}}, true)
		var ge *gitstate.Error
		if !errors.As(err, &ge) || ge.Code != "schema_violation" || len(ge.Details) != 1 || ge.Details[0].Path != "" ||
			ge.Details[0].Key != c.key || !strings.HasPrefix(ge.Details[0].Message, c.says) {
			t.Errorf("%s = %q: %v %+v, want one detail at the root saying %s", c.key, c.value, err, ge, c.says)
		}
	}
	tx := f.begin(alice)
	if err := f.put(tx.ID, alice, "apps/web/replicas.json", `{"replicas": "three"}`); code(err) != "schema_violation" {
		t.Errorf("schema in txn: %v", err)
	}
	f.mustPut(tx.ID, alice, "apps/web/replicas.json", `{"replicas": 3}`)
	f.mustPut(tx.ID, alice, "prod/db", "big")

	if _, _, err := f.m.Commit(ctx, storage.DefaultRepo, tx.ID, alice); code(err) != "approvals_required" {
		t.Fatalf("commit without approval: %v", err)
	}
	if _, err := f.m.Approve(ctx, storage.DefaultRepo, tx.ID, alice, "lgtm"); code(err) != "self_approval" {
		t.Errorf("self approval: %v", err)
	}
	if _, err := f.m.Approve(ctx, storage.DefaultRepo, tx.ID, bob, "lgtm"); err != nil {
		t.Fatal(err)
	}
	// A later write voids the approval.
	f.mustPut(tx.ID, alice, "prod/db", "bigger")
	v, _ := f.m.Describe(ctx, storage.DefaultRepo, tx.ID)
	if len(v.ApprovalStates) != 1 || v.ApprovalStates[0].Valid || v.Requirements.ValidApprovals != 0 {
		t.Errorf("approval after a write: %+v %+v", v.ApprovalStates, v.Requirements)
	}
	if _, _, err := f.m.Commit(ctx, storage.DefaultRepo, tx.ID, alice); code(err) != "approvals_required" {
		t.Fatalf("commit with a voided approval: %v", err)
	}
	if _, err := f.m.Approve(ctx, storage.DefaultRepo, tx.ID, bob, "again"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.m.Commit(ctx, storage.DefaultRepo, tx.ID, alice); code(err) != "reports_required" {
		t.Fatalf("commit without the plan report: %v", err)
	}
	if _, err := f.m.AddReport(ctx, storage.DefaultRepo, tx.ID, Report{Reporter: "plan", Status: "failed"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.m.Commit(ctx, storage.DefaultRepo, tx.ID, alice); code(err) != "reports_required" {
		t.Fatalf("commit with a failed report: %v", err)
	}
	if _, err := f.m.AddReport(ctx, storage.DefaultRepo, tx.ID, Report{Reporter: "plan", Status: "ok", Summary: "2 to change"}); err != nil {
		t.Fatal(err)
	}
	done, _, err := f.m.Commit(ctx, storage.DefaultRepo, tx.ID, alice)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := f.repo.ReadCommit(f.repo.Head().Commit)
	if !strings.Contains(c.Message, "Gitstate-Approved-By: bob") || done.Status != Committed {
		t.Errorf("merge message: %q", c.Message)
	}
}

func TestExpiryAndAbort(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tx, err := f.m.Begin(ctx, storage.DefaultRepo, alice, "", time.Minute, -1)
	if err != nil {
		t.Fatal(err)
	}
	f.mustPut(tx.ID, alice, "k", "v")
	f.advance(2 * time.Minute)
	if err := f.put(tx.ID, alice, "k", "w"); code(err) != "txn_expired" {
		t.Errorf("write after expiry: %v", err)
	}
	if _, _, err := f.m.Commit(ctx, storage.DefaultRepo, tx.ID, alice); code(err) != "txn_expired" {
		t.Errorf("commit after expiry: %v", err)
	}
	if err := f.m.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := f.m.Get(ctx, storage.DefaultRepo, tx.ID)
	if got.Status != Expired || !f.repo.Backend().Ref("refs/heads/txn/"+tx.ID).IsZero() {
		t.Errorf("after sweep: %+v", got)
	}
	ab := f.begin(alice)
	f.mustPut(ab.ID, alice, "k", "v")
	if _, err := f.m.Abort(ctx, storage.DefaultRepo, ab.ID, bob); code(err) != "forbidden" {
		t.Errorf("abort by another: %v", err)
	}
	if _, err := f.m.Abort(ctx, storage.DefaultRepo, ab.ID, alice); err != nil {
		t.Fatal(err)
	}
	if err := f.put(ab.ID, alice, "k", "w"); code(err) != "txn_aborted" {
		t.Errorf("write after abort: %v", err)
	}
	if f.mainValue("k") != "<absent>" {
		t.Error("aborted write reached main")
	}
	// The records survive a restart, and the deletion of the index.
	f.close()
	if err := removeIndex(f.dir); err != nil {
		t.Fatal(err)
	}
	f.open()
	for _, id := range []string{tx.ID, ab.ID} {
		got, err := f.m.Get(ctx, storage.DefaultRepo, id)
		if err != nil || got.Status == Open {
			t.Errorf("after restart %s: %+v %v", id, got, err)
		}
	}
}

// TestExpiredBeforeSweep checks that a transaction past its expires_at is
// expired for every client at once, before the sweeper closes it: reads
// say so and still see its writes, lists filter by it, every change
// (abort included) is refused with txn_expired, and the sweeper then
// records what clients were already shown.
func TestExpiredBeforeSweep(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tx, err := f.m.Begin(ctx, storage.DefaultRepo, alice, "", time.Minute, -1)
	if err != nil {
		t.Fatal(err)
	}
	f.mustPut(tx.ID, alice, "k", "v")
	branch := f.repo.Backend().Ref("refs/heads/txn/" + tx.ID)
	f.advance(2 * time.Minute)

	check := func(when string) {
		t.Helper()
		got, err := f.m.Get(ctx, storage.DefaultRepo, tx.ID)
		if err != nil || got.Status != Expired || got.ClosedAt == nil || !got.ClosedAt.Equal(tx.ExpiresAt) ||
			got.ClosedBy != "gitstate" || got.HeadCommit != branch.String() {
			t.Errorf("%s: Get = %+v, %v; want expired at %s with head %s", when, got, err, tx.ExpiresAt, branch)
		}
		v, err := f.m.Describe(ctx, storage.DefaultRepo, tx.ID)
		if err != nil || v.Status != Expired || v.Head != branch.String() || !slices.Equal(v.Keys, []string{"k"}) {
			t.Errorf("%s: Describe = %+v, %v", when, v, err)
		}
		if got := f.txnValue(tx.ID, "k"); got != "v" {
			t.Errorf("%s: read in the transaction = %q, want v", when, got)
		}
		for _, c := range []struct {
			status Status
			want   int
		}{{Open, 0}, {Expired, 1}, {"", 1}} {
			ts, err := f.m.List(ctx, storage.DefaultRepo, c.status, "")
			if err != nil || len(ts) != c.want || (c.want == 1 && ts[0].Status != Expired) {
				t.Errorf("%s: List(%q) = %+v, %v; want %d expired", when, c.status, ts, err, c.want)
			}
		}
	}
	check("before the sweep")

	for _, c := range []struct {
		name string
		do   func() error
	}{
		{"write", func() error { return f.put(tx.ID, alice, "k", "w") }},
		{"commit", func() error { _, _, err := f.m.Commit(ctx, storage.DefaultRepo, tx.ID, alice); return err }},
		{"rebase", func() error { _, err := f.m.Rebase(ctx, storage.DefaultRepo, tx.ID, alice); return err }},
		{"approve", func() error { _, err := f.m.Approve(ctx, storage.DefaultRepo, tx.ID, bob, ""); return err }},
		{"report", func() error {
			_, err := f.m.AddReport(ctx, storage.DefaultRepo, tx.ID, Report{Reporter: "plan", Status: "ok"})
			return err
		}},
		{"abort", func() error { _, err := f.m.Abort(ctx, storage.DefaultRepo, tx.ID, alice); return err }},
	} {
		if err := c.do(); code(err) != "txn_expired" || gitstate.KindOf(err) != gitstate.KindConflict {
			t.Errorf("%s after expiry: %v, want 409 txn_expired", c.name, err)
		}
	}
	// Nothing above closed it: the clean-up is the sweeper's.
	if f.repo.Backend().Ref("refs/heads/txn/"+tx.ID) != branch {
		t.Fatal("the branch moved or went before the sweep")
	}
	if err := f.m.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if !f.repo.Backend().Ref("refs/heads/txn/" + tx.ID).IsZero() {
		t.Error("the sweep left the branch")
	}
	check("after the sweep")
	// And as recorded in Git, across a restart.
	f.close()
	f.open()
	check("after a restart")
}

func removeIndex(dir string) error {
	return exec.Command("rm", "-rf", filepath.Join(dir, "index")).Run()
}

// A crash after the merge commit, before the committed revision was
// recorded, is repaired at the next start.
func TestRepairLostRevision(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tx := f.begin(alice)
	f.mustPut(tx.ID, alice, "k", "v")
	_, res, err := f.m.Commit(ctx, storage.DefaultRepo, tx.ID, alice)
	if err != nil {
		t.Fatal(err)
	}
	// Undo the second record write, as a crash before it would have.
	rec, _ := f.m.Get(ctx, storage.DefaultRepo, tx.ID)
	rec.Revision, rec.Commit = 0, ""
	if _, err := f.repo.Write(ctx, metaBatch(*rec, "simulated crash")); err != nil {
		t.Fatal(err)
	}
	// And an open transaction whose branch is gone.
	orphan := f.begin(bob)
	zero := storage.ZeroHash
	if _, err := f.repo.Write(ctx, &storage.Batch{Ref: branchRef(orphan.ID), ResetTo: &zero}); err != nil {
		t.Fatal(err)
	}
	f.close()
	f.open()
	got, _ := f.m.Get(ctx, storage.DefaultRepo, tx.ID)
	if got.Status != Committed || got.Revision != res.Revision || got.Commit != res.Commit.String() {
		t.Errorf("repaired record: %+v, want revision %d", got, res.Revision)
	}
	got, _ = f.m.Get(ctx, storage.DefaultRepo, orphan.ID)
	if got.Status != Aborted {
		t.Errorf("orphan: %+v", got)
	}
}

func TestMatchPattern(t *testing.T) {
	for _, c := range []struct {
		pattern, key string
		want         bool
	}{
		{"apps/*/replicas.json", "apps/web/replicas.json", true},
		{"apps/*/replicas.json", "apps/web/x/replicas.json", false},
		{"apps/**/replicas.json", "apps/web/x/replicas.json", true},
		{"apps/**/replicas.json", "apps/replicas.json", true},
		{"**", "a/b/c", true},
		{"*.yaml", "a.yaml", true},
		{"*.yaml", "d/a.yaml", false},
	} {
		if got := MatchPattern(c.pattern, c.key); got != c.want {
			t.Errorf("MatchPattern(%q, %q) = %v", c.pattern, c.key, got)
		}
	}
}

// A transaction that changes nothing makes no merge commit: its record
// names no revision, before a restart and after, as when a crash lost the
// record's second write (repair has no merge to find).
func TestCommitNothingRecordsNoRevision(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.putMain("k", "v")
	tx := f.begin(alice)
	got, res, err := f.m.Commit(ctx, storage.DefaultRepo, tx.ID, alice)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed || res.Revision != 1 {
		t.Fatalf("commit of nothing: %+v, want unchanged at revision 1", res)
	}
	check := func(when string, got *Txn) {
		t.Helper()
		if got.Status != Committed || got.Revision != 0 || got.Commit != "" {
			t.Errorf("%s: status %s, revision %d, commit %q; want committed, none", when, got.Status, got.Revision, got.Commit)
		}
	}
	check("answer", got)
	rec, _ := f.m.Get(ctx, storage.DefaultRepo, tx.ID)
	check("record", rec)
	f.close()
	f.open()
	rec, _ = f.m.Get(ctx, storage.DefaultRepo, tx.ID)
	check("after a restart", rec)
}
