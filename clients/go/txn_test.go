package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// newToken makes a token with the administrator's client c and returns a
// client that uses it.
func newToken(t *testing.T, c *client.Client, name string, scopes ...string) *client.Client {
	t.Helper()
	tok, err := c.CreateToken(context.Background(), &wire.CreateTokenRequest{Name: name, Scopes: scopes})
	if err != nil {
		t.Fatalf("create token %s: %v", name, err)
	}
	u, err := client.New(c.BaseURL(), client.WithToken(tok.Secret))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestTxnLife takes a transaction through its life: begin, writes inside,
// read-your-writes against main, diff, approval by another token, commit.
func TestTxnLife(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	kv := c.Repo("default")
	w0, err := kv.Put(ctx, "apps/web/replicas", []byte("3\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "apps/db/replicas", []byte("1\n"), nil); err != nil {
		t.Fatal(err)
	}

	begun, err := kv.BeginTxn(ctx, &client.BeginTxnOptions{Message: "scale web", TTL: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if begun.ID == "" || begun.Branch != "txn/"+begun.ID || begun.Status != client.TxnOpen || begun.BaseRevision != 2 ||
		begun.Author != "admin" || begun.Message != "scale web" {
		t.Fatalf("BeginTxn = %+v", begun)
	}
	if ttl := begun.ExpiresAt.Sub(begun.CreatedAt); ttl < time.Hour+59*time.Minute || ttl > 2*time.Hour+time.Minute {
		t.Errorf("ttl = %s, want 2h", ttl)
	}
	tx := kv.Txn(begun.ID)
	if tx.ID() != begun.ID || tx.Branch() != begun.Branch || tx.Repo() != kv {
		t.Errorf("handle: %q %q", tx.ID(), tx.Branch())
	}

	// Writes inside: a put, a batch, a delete.
	w1, err := tx.Put(ctx, "apps/web/replicas", []byte("5\n"), &client.PutOptions{IfMatch: w0.ETag, Message: "five"})
	if err != nil {
		t.Fatal(err)
	}
	if !w1.Changed || w1.Revision != 0 || len(w1.Commit) != 40 {
		t.Errorf("Put in the transaction = %+v, want revision 0 and the branch's head", w1)
	}
	if _, err := tx.Commit(ctx, &wire.CommitRequest{Message: "batch", Ops: []wire.Op{
		client.PutOp("apps/api/replicas", []byte("2\n")), client.PutOp("apps/api/image", []byte("api:1\n")),
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Delete(ctx, "apps/db/replicas", nil); err != nil {
		t.Fatal(err)
	}
	// Preconditions hold inside a transaction too.
	if _, err := tx.Put(ctx, "apps/web/replicas", []byte("6\n"), &client.PutOptions{IfMatch: w0.ETag}); !errors.Is(err, gitstate.ErrPreconditionFailed) {
		t.Errorf("stale If-Match in the transaction: %v", err)
	}
	if _, err := tx.Commit(ctx, &wire.CommitRequest{Ops: []wire.Op{client.PutOp("x", []byte("1"))}, BaseRevision: "1"}); !errors.Is(err, gitstate.ErrInvalidRequest) {
		t.Errorf("base_revision in the transaction: %v", err)
	}

	// Read your writes; main is untouched.
	in, err := tx.Get(ctx, "apps/web/replicas", nil)
	if err != nil || string(in.Data) != "5\n" || in.Revision != 0 || in.Commit == "" {
		t.Fatalf("Get in the transaction = %+v, %v", in, err)
	}
	if _, err := tx.Get(ctx, "apps/db/replicas", nil); !errors.Is(err, gitstate.ErrKeyNotFound) {
		t.Errorf("a key deleted in the transaction: %v", err)
	}
	if st, err := tx.Stat(ctx, "apps/api/image", nil); err != nil || st.Size != 6 {
		t.Errorf("Stat in the transaction = %+v, %v", st, err)
	}
	if _, err := tx.Get(ctx, "apps/web/replicas", &client.GetOptions{Rev: "1"}); !errors.Is(err, gitstate.ErrInvalidRequest) {
		t.Errorf("Get at a revision in the transaction: %v", err)
	}
	onMain, err := kv.Get(ctx, "apps/web/replicas", nil)
	if err != nil || string(onMain.Data) != "3\n" || onMain.Revision != 2 {
		t.Errorf("Get on main = %+v, %v; want the old value", onMain, err)
	}
	if _, err := kv.Get(ctx, "apps/api/image", nil); !errors.Is(err, gitstate.ErrKeyNotFound) {
		t.Errorf("a key written in the transaction shows on main: %v", err)
	}
	// A listing in pages of one: the pages of a branch are not pinned to a
	// revision (it has none).
	all, err := tx.ListAll(ctx, &client.ListOptions{Prefix: "apps/", Limit: 1, Values: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := itemsString(all.Items); got != "apps/api/image=api:1\n apps/api/replicas=2\n apps/web/replicas=5\n" || all.Revision != 0 {
		t.Errorf("ListAll in the transaction = %q at %d", got, all.Revision)
	}
	var paged []string
	for it, err := range tx.Items(ctx, &client.ListOptions{Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, it.Key)
	}
	if !slices.Equal(paged, keysOf(all.Items)) {
		t.Errorf("Items in the transaction = %q", paged)
	}
	if main, err := kv.ListAll(ctx, nil, 0); err != nil || !slices.Equal(keysOf(main.Items), []string{"apps/db/replicas", "apps/web/replicas"}) {
		t.Errorf("main's keys = %q, %v", keysOf(main.Items), err)
	}

	// The preview.
	d, err := kv.TxnDiff(ctx, begun.ID, &client.TxnDiffOptions{Patch: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Against != "base" || diffString(d.Changes) != "added apps/api/image, added apps/api/replicas, deleted apps/db/replicas, modified apps/web/replicas" ||
		!strings.Contains(d.Changes[3].Patch, "-3\n+5\n") {
		t.Errorf("TxnDiff = %+v", d)
	}
	// main catches up on one key: against head it drops out.
	if _, err := kv.Put(ctx, "apps/api/image", []byte("api:1\n"), nil); err != nil {
		t.Fatal(err)
	}
	dh, err := kv.TxnDiff(ctx, begun.ID, &client.TxnDiffOptions{AgainstHead: true})
	if err != nil {
		t.Fatal(err)
	}
	if dh.Against != "head" || diffString(dh.Changes) != "added apps/api/replicas, deleted apps/db/replicas, modified apps/web/replicas" || dh.Changes[0].Patch != "" {
		t.Errorf("TxnDiff against head = %+v", dh)
	}

	// Approvals: never the author's own; another token's binds to the head.
	if _, err := kv.ApproveTxn(ctx, begun.ID, "mine"); !errors.Is(err, &gitstate.Error{Code: "self_approval"}) {
		t.Errorf("self-approval: %v", err)
	}
	bob := newToken(t, c, "bob", "read", "approve").Repo("default")
	approved, err := bob.ApproveTxn(ctx, begun.ID, "looks good")
	if err != nil {
		t.Fatal(err)
	}
	if len(approved.Approvals) != 1 || a0(approved).Approver != "bob" || !a0(approved).Valid || a0(approved).Comment != "looks good" {
		t.Errorf("approvals = %+v", approved.Approvals)
	}
	reported, err := kv.ReportTxn(ctx, begun.ID, &wire.ReportRequest{Reporter: "plan-bot", Status: client.ReportOK, Summary: "1 change", Details: []byte(`{"n":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if len(reported.Reports) != 1 || !reported.Reports[0].Current || reported.Reports[0].Status != "ok" || string(reported.Reports[0].Details) != `{"n":1}` {
		t.Errorf("reports = %+v", reported.Reports)
	}
	info, err := kv.GetTxn(ctx, begun.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.Keys, []string{"apps/api/image", "apps/api/replicas", "apps/db/replicas", "apps/web/replicas"}) ||
		len(info.Conflicts) != 0 || info.MainRevision != 3 || info.HeadCommit != reported.HeadCommit || info.Requirements == nil || !info.Requirements.Met {
		t.Errorf("GetTxn = %+v", info)
	}
	if open, err := kv.ListTxns(ctx, &client.ListTxnsOptions{Status: client.TxnOpen, Author: "admin"}); err != nil || len(open.Txns) != 1 || open.Txns[0].ID != begun.ID {
		t.Errorf("ListTxns(open, admin) = %+v, %v", open, err)
	}
	if none, err := kv.ListTxns(ctx, &client.ListTxnsOptions{Author: "bob"}); err != nil || len(none.Txns) != 0 {
		t.Errorf("ListTxns(bob) = %+v, %v", none, err)
	}

	// Commit: one merge commit on main.
	res, err := kv.CommitTxn(ctx, begun.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Revision != 4 {
		t.Errorf("CommitTxn = %+v", res)
	}
	ci, err := kv.CommitInfo(ctx, "4")
	if err != nil {
		t.Fatal(err)
	}
	if len(ci.Parents) != 2 || !strings.Contains(ci.Message, "Gitstate-Txn: "+begun.ID) || !strings.Contains(ci.Message, "Gitstate-Approved-By: bob") {
		t.Errorf("merge commit = %+v", ci)
	}
	state, err := kv.ListAll(ctx, &client.ListOptions{Values: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := itemsString(state.Items); got != "apps/api/image=api:1\n apps/api/replicas=2\n apps/web/replicas=5\n" {
		t.Errorf("main after the commit = %q", got)
	}

	// A closed transaction refuses writes and a second commit, with a code
	// that says why; its record stays.
	if _, err := tx.Put(ctx, "k", []byte("v"), nil); !errors.Is(err, &gitstate.Error{Code: "txn_committed"}) || gitstate.KindOf(err) != gitstate.KindConflict {
		t.Errorf("write to a committed transaction: %v", err)
	}
	if _, err := kv.CommitTxn(ctx, begun.ID); !errors.Is(err, &gitstate.Error{Code: "txn_committed"}) {
		t.Errorf("second commit: %v", err)
	}
	if done, err := kv.GetTxn(ctx, begun.ID); err != nil || done.Status != client.TxnCommitted || done.Revision != 4 {
		t.Errorf("the committed transaction = %+v, %v", done, err)
	}
}

// TestTxnConflicts: disjoint transactions both commit, overlapping ones
// conflict (409 naming the keys), a rebase follows main, an abort drops.
func TestTxnConflicts(t *testing.T) {
	ctx := context.Background()
	kv := newClient(t).Repo("default")
	if _, err := kv.Put(ctx, "shared", []byte("0"), nil); err != nil {
		t.Fatal(err)
	}
	begin := func(msg string) *client.Txn {
		t.Helper()
		b, err := kv.BeginTxn(ctx, &client.BeginTxnOptions{Message: msg})
		if err != nil {
			t.Fatal(err)
		}
		return kv.Txn(b.ID)
	}
	put := func(tx *client.Txn, k, v string) {
		t.Helper()
		if _, err := tx.Put(ctx, k, []byte(v), nil); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c := begin("a"), begin("b"), begin("c")
	put(a, "a", "1")
	put(a, "shared", "a")
	put(b, "b", "1")
	put(c, "shared", "c")
	if _, err := kv.CommitTxn(ctx, a.ID()); err != nil {
		t.Fatal(err)
	}
	// b is disjoint from a: it commits on top.
	if _, err := kv.CommitTxn(ctx, b.ID()); err != nil {
		t.Fatalf("disjoint transaction: %v", err)
	}
	// c changed shared too, to another value: 409, nothing committed.
	if info, err := kv.GetTxn(ctx, c.ID()); err != nil || !slices.Equal(info.Conflicts, []string{"shared"}) {
		t.Errorf("conflicts = %+v, %v", info, err)
	}
	_, err := kv.CommitTxn(ctx, c.ID())
	var ge *gitstate.Error
	if !errors.As(err, &ge) || ge.Code != "merge_conflict" || ge.Kind != gitstate.KindConflict || !slices.Equal(ge.Keys, []string{"shared"}) {
		t.Fatalf("overlapping commit: %v (keys %v)", err, keysOfErr(err))
	}
	if _, err := kv.RebaseTxn(ctx, c.ID()); !errors.Is(err, &gitstate.Error{Code: "merge_conflict"}) {
		t.Errorf("rebase over a conflict: %v", err)
	}
	if v, _ := kv.Get(ctx, "shared", nil); string(v.Data) != "a" {
		t.Errorf("shared = %q after a refused commit", v.Data)
	}

	// Rebase: d starts before a key changes on main, then moves onto it.
	d := begin("d")
	put(d, "d", "1")
	if _, err := kv.Put(ctx, "other", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	rb, err := kv.RebaseTxn(ctx, d.ID())
	if err != nil {
		t.Fatal(err)
	}
	head, _ := kv.Info(ctx)
	if rb.BaseRevision != head.Revision || rb.Status != client.TxnOpen {
		t.Errorf("rebased = %+v, want base %d", rb, head.Revision)
	}
	if v, err := d.Get(ctx, "other", nil); err != nil || string(v.Data) != "x" {
		t.Errorf("rebased transaction reads other = %v, %v", v, err)
	}
	if _, err := kv.CommitTxn(ctx, d.ID()); err != nil {
		t.Fatal(err)
	}

	// Abort: the record stays, the writes are gone.
	ab, err := kv.AbortTxn(ctx, c.ID())
	if err != nil || ab.Status != client.TxnAborted {
		t.Fatalf("AbortTxn = %+v, %v", ab, err)
	}
	if _, err := kv.AbortTxn(ctx, c.ID()); !errors.Is(err, &gitstate.Error{Code: "txn_aborted"}) {
		t.Errorf("second abort: %v", err)
	}
	if l, err := kv.ListTxns(ctx, &client.ListTxnsOptions{Status: client.TxnCommitted}); err != nil || len(l.Txns) != 3 {
		t.Errorf("committed transactions = %+v, %v", l, err)
	}
	if _, err := kv.GetTxn(ctx, "nosuchtxn000"); !errors.Is(err, &gitstate.Error{Code: "txn_not_found"}) {
		t.Errorf("missing transaction: %v", err)
	}
	// An empty id is refused before any request: its URL is another route's.
	for name, call := range map[string]func() error{
		"GetTxn":    func() error { _, err := kv.GetTxn(ctx, ""); return err },
		"CommitTxn": func() error { _, err := kv.CommitTxn(ctx, ""); return err },
		"TxnDiff":   func() error { _, err := kv.TxnDiff(ctx, "", nil); return err },
		"Txn.Get":   func() error { _, err := kv.Txn("").Get(ctx, "k", nil); return err },
		"Txn.List":  func() error { _, err := kv.Txn("").List(ctx, nil); return err },
	} {
		if err := call(); !errors.Is(err, gitstate.ErrInvalidRequest) {
			t.Errorf("%s with an empty id: %v", name, err)
		}
	}
}

// TestTxnPolicy: a protected prefix is refused on main, and a transaction
// touching it commits only with a valid approval, which a later write
// voids. A schema violation carries its details.
func TestTxnPolicy(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	kv := c.Repo("default")
	policy := "protected:\n  - prefix: prod/\n    approvals: 1\nschemas:\n  - pattern: apps/*/replicas.json\n    schema: {type: object, required: [replicas]}\n"
	pt, err := kv.BeginTxn(ctx, &client.BeginTxnOptions{Message: "policy"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Txn(pt.ID).Put(ctx, ".gitstate/policy.yaml", []byte(policy), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.CommitTxn(ctx, pt.ID); err != nil {
		t.Fatal(err)
	}

	if _, err := kv.Put(ctx, "prod/db", []byte("x"), nil); !errors.Is(err, &gitstate.Error{Code: "protected_prefix"}) || gitstate.KindOf(err) != gitstate.KindForbidden {
		t.Errorf("direct write to prod/: %v", err)
	}
	_, err = kv.Put(ctx, "apps/web/replicas.json", []byte(`{"n": 1}`), nil)
	var ge *gitstate.Error
	if !errors.As(err, &ge) || ge.Code != "schema_violation" || ge.Kind != gitstate.KindUnprocessable || len(ge.Details) == 0 {
		t.Errorf("schema violation: %#v", err)
	}

	b, err := kv.BeginTxn(ctx, &client.BeginTxnOptions{Message: "prod change"})
	if err != nil {
		t.Fatal(err)
	}
	tx := kv.Txn(b.ID)
	if _, err := tx.Put(ctx, "prod/db", []byte("v1"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.CommitTxn(ctx, b.ID); !errors.Is(err, &gitstate.Error{Code: "approvals_required"}) || !slices.Equal(keysOfErr(err), []string{"prod/db"}) {
		t.Errorf("commit without approval: %v", err)
	}
	bob := newToken(t, c, "bob", "read", "approve").Repo("default")
	if _, err := bob.ApproveTxn(ctx, b.ID, ""); err != nil {
		t.Fatal(err)
	}
	// A later write voids the approval.
	if _, err := tx.Put(ctx, "prod/db", []byte("v2"), nil); err != nil {
		t.Fatal(err)
	}
	info, err := kv.GetTxn(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Approvals) != 1 || a0(info).Valid || info.Requirements.Met || info.Requirements.Approvals != 1 ||
		info.Requirements.ValidApprovals != 0 || !slices.Equal(info.Requirements.ProtectedKeys, []string{"prod/db"}) {
		t.Errorf("after a later write: approvals %+v, requirements %+v", info.Approvals, info.Requirements)
	}
	if _, err := kv.CommitTxn(ctx, b.ID); !errors.Is(err, &gitstate.Error{Code: "approvals_required"}) {
		t.Errorf("commit with a voided approval: %v", err)
	}
	if _, err := bob.ApproveTxn(ctx, b.ID, "again"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.CommitTxn(ctx, b.ID); err != nil {
		t.Fatalf("commit with a valid approval: %v", err)
	}
	if v, err := kv.Get(ctx, "prod/db", nil); err != nil || string(v.Data) != "v2" {
		t.Errorf("prod/db = %v, %v", v, err)
	}
}

func a0(t *wire.Txn) wire.Approval { return t.Approvals[0] }

func itemsString(items []wire.ListItem) string {
	var out []string
	for _, it := range items {
		v := "<no value>"
		if it.Value != nil {
			v = *it.Value
		}
		out = append(out, it.Key+"="+v)
	}
	return strings.Join(out, " ")
}

func diffString(cs []wire.DiffChange) string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s %s", c.Op, c.Key))
	}
	return strings.Join(out, ", ")
}
