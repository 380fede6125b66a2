package main

import (
	"bytes"
	"encoding/json"
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

// scenario is an end-to-end test run through every driver, in a repo of
// its own.
type scenario struct {
	name string
	run  func(t *testing.T, d driver, repo string)
}

// TestE2E runs every scenario through the Go client and through the
// binary, against the real server on a loopback port.
func TestE2E(t *testing.T) {
	url := startServer(t, "")
	drivers := []struct {
		name string
		d    driver
	}{
		{"client", newClientDriver(t, url)},
		{"cli", cliDriver{t: t, url: url}},
	}
	for _, dr := range drivers {
		t.Run(dr.name, func(t *testing.T) {
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					t.Parallel()
					d := dr.d
					if cd, ok := d.(cliDriver); ok {
						cd.t = t
						d = cd
					}
					repo := dr.name + "-" + sc.name
					if _, err := d.CreateRepo(repo); err != nil {
						t.Fatalf("create repo %s: %v", repo, err)
					}
					sc.run(t, d, repo)
				})
			}
		})
	}
}

var scenarios = []scenario{
	{"put-get", func(t *testing.T, d driver, repo string) {
		w1 := must(d.Put(repo, "apps/web/replicas", []byte("3"), client.PutOptions{Message: "scale web"}))(t)
		if !w1.Changed || w1.Revision != 1 || len(w1.ETag) != 40 || len(w1.Commit) != 40 {
			t.Fatalf("put = %+v", w1)
		}
		v := must(d.Get(repo, "apps/web/replicas", ""))(t)
		if string(v.Data) != "3" || v.ETag != w1.ETag || v.Revision != 1 || v.ModRevision != 1 || v.Commit != w1.Commit || v.Size != 1 {
			t.Errorf("get = %+v", v)
		}
		if same := must(d.Put(repo, "apps/web/replicas", []byte("3"), client.PutOptions{}))(t); same.Changed || same.Revision != 1 {
			t.Errorf("put of the same value = %+v, want unchanged", same)
		}
		w2 := must(d.Put(repo, "apps/web/replicas", []byte("5"), client.PutOptions{}))(t)
		if w2.Revision != 2 {
			t.Errorf("second put = %+v", w2)
		}
		for _, rev := range []wire.Rev{"1", wire.Rev(w1.Commit), wire.Rev(w1.Commit[:8])} {
			if old := must(d.Get(repo, "apps/web/replicas", rev))(t); string(old.Data) != "3" || old.Revision != 1 {
				t.Errorf("get at %s = %+v", rev, old)
			}
		}
		bin := []byte{0, 1, 2, 0xff, '\n'}
		must(d.Put(repo, "bin", bin, client.PutOptions{}))(t)
		if v := must(d.Get(repo, "bin", ""))(t); string(v.Data) != string(bin) {
			t.Errorf("binary value = %q, want %q", v.Data, bin)
		}
	}},
	{"create-only", func(t *testing.T, d driver, repo string) {
		must(d.Put(repo, "lock", []byte("me"), client.PutOptions{Create: true}))(t)
		_, err := d.Put(repo, "lock", []byte("you"), client.PutOptions{Create: true})
		wantErr(t, err, gitstate.ErrPreconditionFailed)
		if keys := errKeys(err); !slices.Equal(keys, []string{"lock"}) {
			t.Errorf("failed create names %q, want lock", keys)
		}
		if v := must(d.Get(repo, "lock", ""))(t); string(v.Data) != "me" {
			t.Errorf("lock = %q after a failed create", v.Data)
		}
	}},
	{"if-match", func(t *testing.T, d driver, repo string) {
		w1 := must(d.Put(repo, "k", []byte("v1"), client.PutOptions{}))(t)
		w2 := must(d.Put(repo, "k", []byte("v2"), client.PutOptions{IfMatch: w1.ETag}))(t)
		_, err := d.Put(repo, "k", []byte("v3"), client.PutOptions{IfMatch: w1.ETag})
		wantErr(t, err, gitstate.ErrPreconditionFailed)
		_, err = d.Put(repo, "absent", []byte("x"), client.PutOptions{IfMatch: "*"})
		wantErr(t, err, gitstate.ErrPreconditionFailed)
		_, err = d.Del(repo, "k", client.DeleteOptions{IfMatch: w1.ETag})
		wantErr(t, err, gitstate.ErrPreconditionFailed)
		if v := must(d.Get(repo, "k", ""))(t); string(v.Data) != "v2" {
			t.Errorf("k = %q after failed writes", v.Data)
		}
		del := must(d.Del(repo, "k", client.DeleteOptions{IfMatch: w2.ETag}))(t)
		if !del.Changed || del.Revision != 3 {
			t.Errorf("delete = %+v", del)
		}
		_, err = d.Get(repo, "k", "")
		wantErr(t, err, gitstate.ErrKeyNotFound)
	}},
	{"not-found", func(t *testing.T, d driver, repo string) {
		must(d.Put(repo, "k", []byte("v"), client.PutOptions{}))(t)
		_, err := d.Get(repo, "nope", "")
		wantErr(t, err, gitstate.ErrKeyNotFound)
		_, err = d.Del(repo, "nope", client.DeleteOptions{})
		wantErr(t, err, gitstate.ErrKeyNotFound)
		_, err = d.Get(repo, "k", "99")
		wantErr(t, err, gitstate.ErrRevisionNotFound)
		_, err = d.Get("no-such-repo", "k", "")
		wantErr(t, err, gitstate.ErrRepoNotFound)
		_, err = d.Log("no-such-repo", client.LogOptions{})
		wantErr(t, err, gitstate.ErrRepoNotFound)
		_, err = d.Get(repo, "a/../k", "")
		wantErr(t, err, gitstate.ErrInvalidKey)
		_, err = d.Diff(repo, "1", "7", client.DiffOptions{})
		wantErr(t, err, gitstate.ErrRevisionNotFound)
	}},
	{"ls", func(t *testing.T, d driver, repo string) {
		var want []string
		for i := range 7 {
			k := fmt.Sprintf("a/%d", i)
			want = append(want, k)
			must(d.Put(repo, k, []byte(fmt.Sprintf("v%d", i)), client.PutOptions{}))(t)
		}
		must(d.Put(repo, "b/x", []byte("other"), client.PutOptions{}))(t)
		must(d.Put(repo, "a/bin", []byte{0xff, 0xfe}, client.PutOptions{}))(t)
		want = append(want, "a/bin")

		all := must(d.List(repo, client.ListOptions{Prefix: "a/", Limit: 2}, 0))(t)
		if got := itemKeys(all.Items); !slices.Equal(got, want) || all.Next != "" || all.Revision != 9 {
			t.Errorf("ls a/ (pages of 2) = %q next %q rev %d", got, all.Next, all.Revision)
		}
		vals := must(d.List(repo, client.ListOptions{Prefix: "a/", Values: true}, 0))(t)
		for _, it := range vals.Items {
			switch {
			case it.Key == "a/bin" && (it.ValueBase64 == nil || *it.ValueBase64 != "//4="):
				t.Errorf("a/bin = %+v, want value_base64", it)
			case it.Key != "a/bin" && (it.Value == nil || *it.Value != "v"+strings.TrimPrefix(it.Key, "a/")):
				t.Errorf("%s = %+v", it.Key, it)
			}
		}
		first := must(d.List(repo, client.ListOptions{Prefix: "a/", Limit: 2}, 3))(t)
		if got := itemKeys(first.Items); !slices.Equal(got, want[:3]) || first.Next != want[2] {
			t.Errorf("ls --limit 3 = %q next %q", got, first.Next)
		}
		rest := must(d.List(repo, client.ListOptions{Prefix: "a/", After: first.Next}, 0))(t)
		if got := itemKeys(rest.Items); !slices.Equal(got, want[3:]) {
			t.Errorf("ls --after %s = %q", first.Next, got)
		}
		old := must(d.List(repo, client.ListOptions{Rev: "2"}, 0))(t)
		if got := itemKeys(old.Items); !slices.Equal(got, want[:2]) || old.Revision != 2 {
			t.Errorf("ls --rev 2 = %q at %d", got, old.Revision)
		}
		empty := must(d.List(repo, client.ListOptions{Prefix: "zzz/"}, 0))(t)
		if empty.Items == nil || len(empty.Items) != 0 {
			t.Errorf("ls of nothing = %#v, want an empty list", empty.Items)
		}
	}},
	{"del-prefix", func(t *testing.T, d driver, repo string) {
		for _, k := range []string{"apps/web/a", "apps/web/b", "apps/webx", "apps/db/a"} {
			must(d.Put(repo, k, []byte("v"), client.PutOptions{}))(t)
		}
		res := must(d.Del(repo, "apps/web", client.DeleteOptions{Prefix: true}))(t)
		if !res.Changed || res.Revision != 5 {
			t.Errorf("del --prefix = %+v", res)
		}
		left := must(d.List(repo, client.ListOptions{}, 0))(t)
		if got := itemKeys(left.Items); !slices.Equal(got, []string{"apps/db/a", "apps/webx"}) {
			t.Errorf("keys left = %q", got)
		}
		_, err := d.Del(repo, "apps/web", client.DeleteOptions{Prefix: true})
		wantErr(t, err, gitstate.ErrKeyNotFound)
	}},
	{"log", func(t *testing.T, d driver, repo string) {
		history(t, d, repo)
		page := must(d.Log(repo, client.LogOptions{Limit: 2}))(t)
		if commitRevs(page) != "5 4" || page.Next != 4 || page.Revision != 5 {
			t.Errorf("log --limit 2 = %s next %d", commitRevs(page), page.Next)
		}
		if next := must(d.Log(repo, client.LogOptions{Limit: 10, After: page.Next}))(t); commitRevs(next) != "3 2 1" || next.Next != 0 {
			t.Errorf("log --after 4 = %s next %d", commitRevs(next), next.Next)
		}
		if byKey := must(d.Log(repo, client.LogOptions{Key: "apps/web"}))(t); commitRevs(byKey) != "3 1" {
			t.Errorf("log --key apps/web = %s", commitRevs(byKey))
		}
		byPrefix := must(d.Log(repo, client.LogOptions{Prefix: "infra/"}))(t)
		if commitRevs(byPrefix) != "4" || len(byPrefix.Commits[0].Changes) != 1 || byPrefix.Commits[0].Changes[0].Key != "infra/net" {
			t.Errorf("log --prefix infra/ = %+v", byPrefix)
		}
		if c := page.Commits[0]; c.Author == "" || c.Time.IsZero() || len(c.Parents) != 1 || !strings.HasPrefix(c.Message, "db v2") {
			t.Errorf("commit 5 = %+v", c)
		}
	}},
	{"diff", func(t *testing.T, d driver, repo string) {
		history(t, d, repo)
		df := must(d.Diff(repo, "2", "", client.DiffOptions{}))(t)
		if df.From != 2 || df.To != 5 || diffOps(df) != "modified apps/db, modified apps/web, added infra/net" {
			t.Errorf("diff 2 = %d..%d %s", df.From, df.To, diffOps(df))
		}
		if df := must(d.Diff(repo, "2", "4", client.DiffOptions{Prefix: "apps/"}))(t); diffOps(df) != "modified apps/web" {
			t.Errorf("diff 2 4 --prefix apps/ = %s", diffOps(df))
		}
		pd := must(d.Diff(repo, "0", "1", client.DiffOptions{Patch: true}))(t)
		if diffOps(pd) != "added apps/web" || !strings.Contains(pd.Changes[0].Patch, "+v1") {
			t.Errorf("diff 0 1 --patch = %+v", pd)
		}
		if d0 := must(d.Diff(repo, "3", "3", client.DiffOptions{}))(t); len(d0.Changes) != 0 || d0.Changes == nil {
			t.Errorf("diff 3 3 = %#v, want no changes", d0.Changes)
		}
	}},
	{"revert", func(t *testing.T, d driver, repo string) {
		history(t, d, repo)
		res := must(d.Revert(repo, "3", false))(t)
		if !res.Changed || res.Revision != 6 {
			t.Errorf("revert 3 = %+v", res)
		}
		if v := must(d.Get(repo, "apps/web", ""))(t); string(v.Data) != "v1\n" {
			t.Errorf("apps/web after revert = %q", v.Data)
		}
		_, err := d.Revert(repo, "2", false)
		wantErr(t, err, &gitstate.Error{Kind: gitstate.KindConflict, Code: "revert_conflict"})
		if keys := errKeys(err); !slices.Equal(keys, []string{"apps/db"}) {
			t.Errorf("revert conflict names %q, want apps/db", keys)
		}
		must(d.Revert(repo, "2", true))(t)
		_, err = d.Get(repo, "apps/db", "")
		wantErr(t, err, gitstate.ErrKeyNotFound)
		_, err = d.Revert(repo, "42", false)
		wantErr(t, err, gitstate.ErrRevisionNotFound)
	}},
	{"rollback", func(t *testing.T, d driver, repo string) {
		history(t, d, repo)
		res := must(d.Rollback(repo, "3", "apps/"))(t)
		if !res.Changed || res.Revision != 6 {
			t.Errorf("rollback 3 --prefix apps/ = %+v", res)
		}
		state := must(d.List(repo, client.ListOptions{Values: true}, 0))(t)
		if got := itemValues(state.Items); got != "apps/db=v1\n apps/web=v2\n infra/net=v1\n" {
			t.Errorf("state after rollback = %q", got)
		}
		if again := must(d.Rollback(repo, "3", "apps/"))(t); again.Changed || again.Revision != 6 {
			t.Errorf("second rollback = %+v, want unchanged", again)
		}
		must(d.Rollback(repo, "0", ""))(t)
		if empty := must(d.List(repo, client.ListOptions{}, 0))(t); len(empty.Items) != 0 {
			t.Errorf("after rollback to 0: %q", itemKeys(empty.Items))
		}
	}},
	{"repos", func(t *testing.T, d driver, repo string) {
		_, err := d.CreateRepo(repo)
		wantErr(t, err, gitstate.ErrRepoExists)
		_, err = d.CreateRepo("Not_A_Name")
		wantErr(t, err, gitstate.ErrInvalidRepoName)
		must(d.Put(repo, "k", []byte("v"), client.PutOptions{}))(t)
		list := must(d.ListRepos())(t)
		i := slices.IndexFunc(list.Repos, func(r wire.Repo) bool { return r.Name == repo })
		if i < 0 || list.Repos[i].Revision != 1 || len(list.Repos[i].Commit) != 40 {
			t.Errorf("repos = %+v, want %s at revision 1", list.Repos, repo)
		}
		if !slices.ContainsFunc(list.Repos, func(r wire.Repo) bool { return r.Name == "default" }) {
			t.Errorf("repos = %+v, want default", list.Repos)
		}
	}},
	{"txn", txnScenario},
}

// txnScenario takes transactions through their life: writes inside, read
// your writes against main, preview, approvals (valid, then voided), a
// commit, an overlapping transaction refused with the key named, a rebase,
// an abort.
func txnScenario(t *testing.T, d driver, repo string) {
	must(d.Put(repo, "a", []byte("1\n"), client.PutOptions{}))(t)
	must(d.Put(repo, "shared", []byte("0\n"), client.PutOptions{}))(t)
	t1 := must(d.BeginTxn(repo, client.BeginTxnOptions{Message: "change a", TTL: time.Hour}))(t)
	if t1.Status != "open" || t1.BaseRevision != 2 || t1.Message != "change a" || t1.Branch != "txn/"+t1.ID {
		t.Fatalf("begin = %+v", t1)
	}
	tx := d.InTxn(t1.ID)
	if w := must(tx.Put(repo, "a", []byte("2\n"), client.PutOptions{}))(t); !w.Changed || w.Revision != 0 || len(w.Commit) != 40 {
		t.Errorf("put in the transaction = %+v", w)
	}
	must(tx.Put(repo, "b", []byte("new\n"), client.PutOptions{}))(t)
	must(tx.Del(repo, "shared", client.DeleteOptions{}))(t)

	// Read your writes; main is untouched.
	if v := must(tx.Get(repo, "a", ""))(t); string(v.Data) != "2\n" || v.Revision != 0 {
		t.Errorf("a in the transaction = %+v", v)
	}
	if v := must(d.Get(repo, "a", ""))(t); string(v.Data) != "1\n" || v.Revision != 2 {
		t.Errorf("a on main = %+v", v)
	}
	_, err := tx.Get(repo, "shared", "")
	wantErr(t, err, gitstate.ErrKeyNotFound)
	_, err = d.Get(repo, "b", "")
	wantErr(t, err, gitstate.ErrKeyNotFound)
	if l := must(tx.List(repo, client.ListOptions{Limit: 1, Values: true}, 0))(t); itemValues(l.Items) != "a=2\n b=new\n" {
		t.Errorf("ls in the transaction = %q", itemValues(l.Items))
	}

	// The preview, and the description.
	df := must(d.TxnDiff(repo, t1.ID, client.TxnDiffOptions{Patch: true}))(t)
	if df.Against != "base" || diffOps(&wire.DiffResponse{Changes: df.Changes}) != "modified a, added b, deleted shared" ||
		!strings.Contains(df.Changes[0].Patch, "-1\n+2\n") {
		t.Errorf("txn diff --patch = %+v", df)
	}
	show := must(d.ShowTxn(repo, t1.ID))(t)
	if !slices.Equal(show.Keys, []string{"a", "b", "shared"}) || len(show.Conflicts) != 0 || show.Author != "admin" || show.Requirements == nil {
		t.Errorf("txn show = %+v", show)
	}

	// Approvals: not the author's; another's binds to the head, and a later
	// write voids it.
	_, err = d.ApproveTxn(repo, t1.ID, "")
	wantErr(t, err, &gitstate.Error{Kind: gitstate.KindForbidden, Code: "self_approval"})
	bob := d.As(must(d.CreateToken("bob-"+repo, "read", "approve"))(t).Secret)
	ap := must(bob.ApproveTxn(repo, t1.ID, "ok by me"))(t)
	if len(ap.Approvals) != 1 || ap.Approvals[0].Approver != "bob-"+repo || !ap.Approvals[0].Valid {
		t.Errorf("approvals = %+v", ap.Approvals)
	}
	must(tx.Put(repo, "b", []byte("newer\n"), client.PutOptions{}))(t)
	if show := must(d.ShowTxn(repo, t1.ID))(t); len(show.Approvals) != 1 || show.Approvals[0].Valid {
		t.Errorf("approvals after a later write = %+v, want voided", show.Approvals)
	}
	must(bob.ApproveTxn(repo, t1.ID, "again"))(t)
	rep := must(d.ReportTxn(repo, t1.ID, wire.ReportRequest{Reporter: "plan-bot", Status: "ok", Details: []byte(`{"changes":2}`)}))(t)
	// (The CLI's -o json is indented, details included.)
	if len(rep.Reports) != 1 || !rep.Reports[0].Current || compactJSON(t, rep.Reports[0].Details) != `{"changes":2}` {
		t.Errorf("reports = %+v", rep.Reports)
	}

	// An overlapping transaction, begun before t1 commits.
	t2 := must(d.BeginTxn(repo, client.BeginTxnOptions{Message: "also a"}))(t)
	must(d.InTxn(t2.ID).Put(repo, "a", []byte("3\n"), client.PutOptions{}))(t)

	res := must(d.CommitTxn(repo, t1.ID))(t)
	if !res.Changed || res.Revision != 3 {
		t.Errorf("txn commit = %+v", res)
	}
	if log := must(d.Log(repo, client.LogOptions{Limit: 1}))(t); len(log.Commits[0].Parents) != 2 || !strings.HasPrefix(log.Commits[0].Message, "change a") {
		t.Errorf("merge commit = %+v", log.Commits[0])
	}
	_, err = tx.Put(repo, "a", []byte("4\n"), client.PutOptions{})
	wantErr(t, err, &gitstate.Error{Kind: gitstate.KindConflict, Code: "txn_committed"})

	// t2 changed a too, to another value: refused, naming a.
	if show := must(d.ShowTxn(repo, t2.ID))(t); !slices.Equal(show.Conflicts, []string{"a"}) {
		t.Errorf("conflicts of t2 = %q", show.Conflicts)
	}
	_, err = d.CommitTxn(repo, t2.ID)
	wantErr(t, err, &gitstate.Error{Kind: gitstate.KindConflict, Code: "merge_conflict"})
	if keys := errKeys(err); !slices.Equal(keys, []string{"a"}) {
		t.Errorf("merge conflict names %q, want a", keys)
	}
	_, err = d.RebaseTxn(repo, t2.ID)
	wantErr(t, err, &gitstate.Error{Kind: gitstate.KindConflict, Code: "merge_conflict"})
	if ab := must(d.AbortTxn(repo, t2.ID))(t); ab.Status != "aborted" {
		t.Errorf("abort = %+v", ab)
	}
	_, err = d.AbortTxn(repo, t2.ID)
	wantErr(t, err, &gitstate.Error{Kind: gitstate.KindConflict, Code: "txn_aborted"})

	// A disjoint transaction rebased onto a newer main, then committed.
	t3 := must(d.BeginTxn(repo, client.BeginTxnOptions{}))(t)
	must(d.InTxn(t3.ID).Put(repo, "c", []byte("1\n"), client.PutOptions{}))(t)
	must(d.Put(repo, "d", []byte("1\n"), client.PutOptions{}))(t)
	if rb := must(d.RebaseTxn(repo, t3.ID))(t); rb.BaseRevision != 4 {
		t.Errorf("rebase = %+v, want base revision 4", rb)
	}
	if v := must(d.InTxn(t3.ID).Get(repo, "d", ""))(t); string(v.Data) != "1\n" {
		t.Errorf("d in the rebased transaction = %q", v.Data)
	}
	must(d.CommitTxn(repo, t3.ID))(t)

	state := must(d.List(repo, client.ListOptions{Values: true}, 0))(t)
	if got := itemValues(state.Items); got != "a=2\n b=newer\n c=1\n d=1\n" {
		t.Errorf("main at the end = %q", got)
	}
	if l := must(d.ListTxns(repo, client.ListTxnsOptions{Status: "committed", Author: "admin"}))(t); len(l.Txns) != 2 {
		t.Errorf("committed transactions = %+v", l.Txns)
	}
	_, err = d.ShowTxn(repo, "nosuchtxn000")
	wantErr(t, err, &gitstate.Error{Kind: gitstate.KindNotFound, Code: "txn_not_found"})
}

// history writes five revisions:
//
//	1 apps/web=v1  2 apps/db=v1  3 apps/web=v2  4 infra/net=v1  5 apps/db=v2
func history(t *testing.T, d driver, repo string) {
	t.Helper()
	for _, w := range [][2]string{{"apps/web", "v1"}, {"apps/db", "v1"}, {"apps/web", "v2"}, {"infra/net", "v1"}, {"apps/db", "v2"}} {
		must(d.Put(repo, w[0], []byte(w[1]+"\n"), client.PutOptions{Message: strings.TrimPrefix(w[0], "apps/") + " " + w[1]}))(t)
	}
}

// must returns a function that fails the test on err and returns v
// otherwise: must(d.Get(...))(t).
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// wantErr checks that err matches want (by code), and for the CLI that its
// exit status is the one of want's kind.
func wantErr(t *testing.T, err error, want *gitstate.Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	var ce *cliError
	if errors.As(err, &ce) {
		var ee *exitErr
		if errors.As(withExitCode(want), &ee) && ce.exit != ee.ExitCode() {
			t.Errorf("exit status %d for %s, want %d", ce.exit, want.Code, ee.ExitCode())
		}
		if ce.err.Message == "" {
			t.Errorf("error %s has no message", want.Code)
		}
	}
}

// errKeys returns the keys an error names.
func errKeys(err error) []string {
	var ge *gitstate.Error
	if errors.As(err, &ge) {
		return ge.Keys
	}
	return nil
}

func itemKeys(items []wire.ListItem) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Key)
	}
	return out
}

func itemValues(items []wire.ListItem) string {
	var out []string
	for _, it := range items {
		out = append(out, it.Key+"="+*it.Value)
	}
	return strings.Join(out, " ")
}

func commitRevs(l *wire.CommitList) string {
	var out []string
	for _, c := range l.Commits {
		out = append(out, fmt.Sprint(c.Revision))
	}
	return strings.Join(out, " ")
}

// compactJSON returns b without insignificant space.
func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compact %q: %v", b, err)
	}
	return buf.String()
}

func diffOps(d *wire.DiffResponse) string {
	var out []string
	for _, c := range d.Changes {
		out = append(out, c.Op+" "+c.Key)
	}
	return strings.Join(out, ", ")
}
