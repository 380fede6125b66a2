package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
	"github.com/gitstate/gitstate/storage"
)

func TestNew(t *testing.T) {
	tests := []struct {
		url, base string
		ok        bool
	}{
		{"http://127.0.0.1:7070", "http://127.0.0.1:7070", true},
		{"http://127.0.0.1:7070/", "http://127.0.0.1:7070", true},
		{"https://example.com/gitstate/", "https://example.com/gitstate", true},
		{"127.0.0.1:7070", "", false},
		{"ftp://example.com", "", false},
		{"http://", "", false},
		{"http://example.com/?x=1", "", false},
		{"http://example.com/#x", "", false},
		{"http://[::1", "", false},
	}
	for _, tt := range tests {
		c, err := client.New(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("New(%q) err = %v, want ok = %v", tt.url, err, tt.ok)
			continue
		}
		if err == nil && c.BaseURL() != tt.base {
			t.Errorf("New(%q).BaseURL() = %q, want %q", tt.url, c.BaseURL(), tt.base)
		}
	}
}

func TestGetPut(t *testing.T) {
	ctx := context.Background()
	kv := newClient(t).Repo("default")

	w1, err := kv.Put(ctx, "apps/web/replicas", []byte("3"), &client.PutOptions{Message: "scale web"})
	if err != nil {
		t.Fatal(err)
	}
	if !w1.Changed || w1.Revision != 1 || w1.ETag == "" || w1.Commit == "" {
		t.Fatalf("first put = %+v", w1)
	}
	v, err := kv.Get(ctx, "apps/web/replicas", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := client.Value{Key: "apps/web/replicas", Data: []byte("3"), ETag: w1.ETag, Size: 1,
		Revision: 1, Commit: w1.Commit, ModRevision: 1}
	if !equalValue(*v, want) {
		t.Fatalf("Get = %+v, want %+v", *v, want)
	}

	// The same value again makes no commit.
	same, err := kv.Put(ctx, "apps/web/replicas", []byte("3"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if same.Changed || same.Revision != 1 {
		t.Errorf("rewrite of the same value = %+v, want unchanged at 1", same)
	}

	w2, err := kv.Put(ctx, "apps/web/replicas", []byte("5"), &client.PutOptions{IfMatch: w1.ETag})
	if err != nil {
		t.Fatal(err)
	}
	// Reading an old revision, by number and by commit id.
	for _, rev := range []wire.Rev{"1", wire.Rev(w1.Commit), wire.Rev(w1.Commit[:10])} {
		old, err := kv.Get(ctx, "apps/web/replicas", &client.GetOptions{Rev: rev})
		if err != nil {
			t.Fatalf("Get at %s: %v", rev, err)
		}
		if string(old.Data) != "3" || old.Revision != 1 || old.ETag != w1.ETag {
			t.Errorf("Get at %s = %+v", rev, old)
		}
	}

	// If-None-Match: 304 when the client has the value.
	nm, err := kv.Get(ctx, "apps/web/replicas", &client.GetOptions{IfNoneMatch: w2.ETag})
	if err != nil {
		t.Fatal(err)
	}
	if !nm.NotModified || nm.Data != nil || nm.ETag != w2.ETag || nm.Revision != 2 {
		t.Errorf("conditional Get = %+v, want NotModified", nm)
	}
	m, err := kv.Get(ctx, "apps/web/replicas", &client.GetOptions{IfNoneMatch: w1.ETag})
	if err != nil {
		t.Fatal(err)
	}
	if m.NotModified || string(m.Data) != "5" {
		t.Errorf("Get with a stale If-None-Match = %+v, want the value", m)
	}

	st, err := kv.Stat(ctx, "apps/web/replicas", nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Data != nil || st.Size != 1 || st.ETag != w2.ETag || st.ModRevision != 2 {
		t.Errorf("Stat = %+v", st)
	}
	if _, err := kv.Stat(ctx, "apps/web/nope", nil); !errors.Is(err, &gitstate.Error{Kind: gitstate.KindNotFound}) {
		t.Errorf("Stat of a missing key: %v, want kind not_found", err)
	}
}

func TestPreconditions(t *testing.T) {
	ctx := context.Background()
	kv := newClient(t).Repo("default")
	w, err := kv.Put(ctx, "k", []byte("v1"), &client.PutOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	other, err := kv.Put(ctx, "other", []byte("something else"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"create over an existing key", func() error {
			_, err := kv.Put(ctx, "k", []byte("x"), &client.PutOptions{Create: true})
			return err
		}, gitstate.ErrPreconditionFailed},
		{"put with a stale etag", func() error {
			_, err := kv.Put(ctx, "k", []byte("x"), &client.PutOptions{IfMatch: other.ETag})
			return err
		}, gitstate.ErrPreconditionFailed},
		{"put with a quoted etag", func() error {
			_, err := kv.Put(ctx, "k", []byte("v2"), &client.PutOptions{IfMatch: `"` + w.ETag + `"`})
			return err
		}, nil},
		{"put if exists on a missing key", func() error {
			_, err := kv.Put(ctx, "missing", []byte("x"), &client.PutOptions{IfMatch: "*"})
			return err
		}, gitstate.ErrPreconditionFailed},
		{"delete with a stale etag", func() error {
			_, err := kv.Delete(ctx, "k", &client.DeleteOptions{IfMatch: w.ETag})
			return err
		}, gitstate.ErrPreconditionFailed},
		{"delete of a missing key", func() error {
			_, err := kv.Delete(ctx, "missing", nil)
			return err
		}, gitstate.ErrKeyNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	v, err := kv.Get(ctx, "k", nil)
	if err != nil || string(v.Data) != "v2" {
		t.Fatalf("Get = %v, %v; want v2", v, err)
	}
}

// TestKeyEscaping writes keys whose characters mean something in a URL.
func TestKeyEscaping(t *testing.T) {
	ctx := context.Background()
	kv := newClient(t).Repo("default")
	keys := []string{"a b/c d", "q?x=1", "frag#ment", "pct%41", "plus+sign", "ünï/cödé", "semi;colon", "x/y&z=1"}
	for _, k := range keys {
		if _, err := kv.Put(ctx, k, []byte(k), nil); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
		v, err := kv.Get(ctx, k, nil)
		if err != nil {
			t.Fatalf("Get(%q): %v", k, err)
		}
		if string(v.Data) != k {
			t.Errorf("Get(%q) = %q", k, v.Data)
		}
	}
	list, err := kv.ListAll(ctx, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range list.Items {
		got = append(got, it.Key)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("keys = %q, want %q", got, want)
	}
	for _, bad := range []string{"", "a/../b", "/lead", "trail/", "a//b", "./x"} {
		if _, err := kv.Put(ctx, bad, []byte("x"), nil); !errors.Is(err, gitstate.ErrInvalidKey) {
			t.Errorf("Put(%q): %v, want invalid_key", bad, err)
		}
	}
}

func TestDeletePrefix(t *testing.T) {
	ctx := context.Background()
	kv := newClient(t).Repo("default")
	for _, k := range []string{"apps/web/a", "apps/web/b", "apps/webx", "apps/db/a"} {
		if _, err := kv.Put(ctx, k, []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
	}
	res, err := kv.Delete(ctx, "apps/web", &client.DeleteOptions{Prefix: true, Message: "drop web"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Revision != 5 {
		t.Errorf("Delete = %+v", res)
	}
	list, err := kv.ListAll(ctx, &client.ListOptions{Prefix: "apps/"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(list.Items); !slices.Equal(got, []string{"apps/db/a", "apps/webx"}) {
		t.Errorf("keys after delete = %q", got)
	}
	ci, err := kv.CommitInfo(ctx, wire.RevNumber(res.Revision))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ci.Message, "drop web") || len(ci.Changes) != 2 {
		t.Errorf("commit = %+v", ci)
	}
}

// TestPagesPinned writes between the pages of a listing: every page must
// come from the first page's revision.
func TestPagesPinned(t *testing.T) {
	ctx := context.Background()
	kv := newClient(t).Repo("default")
	var want []string
	for i := range 25 {
		k := fmt.Sprintf("k/%02d", i+10)
		want = append(want, k)
		if _, err := kv.Put(ctx, k, []byte("old"), nil); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var revs []int64
	n := 0
	for page, err := range kv.Pages(ctx, &client.ListOptions{Prefix: "k/", Limit: 10, Values: true}) {
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, page.Revision)
		for _, it := range page.Items {
			got = append(got, it.Key)
			if it.Value == nil || *it.Value != "old" {
				t.Errorf("%s = %v, want the old value", it.Key, it.Value)
			}
		}
		// A key that sorts first, a key that sorts last and a rewrite of
		// a key still to come: none may show.
		n++
		for _, k := range []string{fmt.Sprintf("k/0%d", n), fmt.Sprintf("k/9%d", n), "k/34"} {
			if _, err := kv.Put(ctx, k, []byte(fmt.Sprintf("new%d", n)), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("keys = %q, want %q", got, want)
	}
	if len(revs) != 3 || revs[0] != 25 || revs[1] != 25 || revs[2] != 25 {
		t.Errorf("page revisions = %v, want [25 25 25]", revs)
	}

	// Items and ListAll read the same way; ListAll stops at max with a
	// cursor that continues the listing.
	var items []string
	for it, err := range kv.Items(ctx, &client.ListOptions{Prefix: "k/", Limit: 4, Rev: "25"}) {
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it.Key)
	}
	if !slices.Equal(items, want) {
		t.Errorf("Items = %q, want %q", items, want)
	}
	part, err := kv.ListAll(ctx, &client.ListOptions{Prefix: "k/", Limit: 4, Rev: "25"}, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(part.Items); !slices.Equal(got, want[:7]) || part.Next != want[6] || part.Revision != 25 {
		t.Errorf("ListAll(max 7) = %q next %q rev %d", got, part.Next, part.Revision)
	}
	rest, err := kv.ListAll(ctx, &client.ListOptions{Prefix: "k/", After: part.Next, Rev: "25"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(rest.Items); !slices.Equal(got, want[7:]) || rest.Next != "" {
		t.Errorf("rest = %q next %q", got, rest.Next)
	}
	// Breaking out of the iterator stops it.
	for _, err := range kv.Pages(ctx, &client.ListOptions{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
}

func TestCommitBatch(t *testing.T) {
	ctx := context.Background()
	kv := newClient(t).Repo("default")
	a, err := kv.Put(ctx, "a", []byte("1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	bin := []byte{0xff, 0x00, 0xfe}
	res, err := kv.Commit(ctx, &wire.CommitRequest{
		Message:       "batch",
		Ops:           []wire.Op{client.PutOp("b", []byte("2")), client.PutOp("bin", bin), client.MoveOp("a", "moved/a")},
		Preconditions: []wire.Precondition{client.IfETag("a", a.ETag), client.IfAbsent("b")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Revision != 2 || !res.Changed {
		t.Errorf("Commit = %+v", res)
	}
	v, err := kv.Get(ctx, "bin", nil)
	if err != nil || string(v.Data) != string(bin) {
		t.Fatalf("binary value = %v, %v", v, err)
	}
	ci, err := kv.CommitInfo(ctx, "2")
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]wire.Change{}
	for _, c := range ci.Changes {
		ops[c.Key] = c
	}
	if m := ops["moved/a"]; m.Op != "move" || m.From != "a" {
		t.Errorf("changes = %+v, want a move from a to moved/a", ci.Changes)
	}

	// A failed precondition changes nothing and names the keys.
	_, err = kv.Commit(ctx, &wire.CommitRequest{
		Ops:           []wire.Op{client.DeleteOp("b"), client.PutOp("c", []byte("3"))},
		Preconditions: []wire.Precondition{client.IfAbsent("b")},
	})
	var ge *gitstate.Error
	if !errors.As(err, &ge) || !errors.Is(err, gitstate.ErrPreconditionFailed) || !slices.Contains(ge.Keys, "b") {
		t.Fatalf("failed precondition: %v (keys %v)", err, keysOfErr(err))
	}
	// base_revision: b changed after revision 1.
	_, err = kv.Commit(ctx, &wire.CommitRequest{Ops: []wire.Op{client.PutOp("b", []byte("9"))}, BaseRevision: "1"})
	if !errors.Is(err, gitstate.ErrChangedSinceBase) || gitstate.KindOf(err) != gitstate.KindConflict {
		t.Fatalf("stale base revision: %v", err)
	}
	if _, err := kv.Commit(ctx, &wire.CommitRequest{Ops: []wire.Op{{Op: "frobnicate", Key: "x"}}}); !errors.Is(err, &gitstate.Error{Code: "unknown_op"}) {
		t.Errorf("unknown op: %v", err)
	}
	if info, err := kv.Info(ctx); err != nil || info.Revision != 2 {
		t.Errorf("Info = %+v, %v; want revision 2", info, err)
	}
}

func TestHistory(t *testing.T) {
	ctx := context.Background()
	kv := newClient(t).Repo("default")
	put := func(k, v string) {
		t.Helper()
		if _, err := kv.Put(ctx, k, []byte(v), nil); err != nil {
			t.Fatal(err)
		}
	}
	put("apps/web", "v1\n")  // 1
	put("apps/db", "v1\n")   // 2
	put("apps/web", "v2\n")  // 3
	put("infra/net", "v1\n") // 4
	put("apps/db", "v2\n")   // 5

	log, err := kv.Log(ctx, &client.LogOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if revsOf(log.Commits) != "5 4" || log.Next != 4 || log.Revision != 5 {
		t.Errorf("log page 1 = %s next %d", revsOf(log.Commits), log.Next)
	}
	log, err = kv.Log(ctx, &client.LogOptions{Limit: 2, After: log.Next})
	if err != nil {
		t.Fatal(err)
	}
	if revsOf(log.Commits) != "3 2" {
		t.Errorf("log page 2 = %s", revsOf(log.Commits))
	}
	if log, err = kv.Log(ctx, &client.LogOptions{Key: "apps/web"}); err != nil || revsOf(log.Commits) != "3 1" {
		t.Errorf("log of apps/web = %s, %v", revsOf(log.Commits), err)
	}
	if log, err = kv.Log(ctx, &client.LogOptions{Prefix: "infra/"}); err != nil || revsOf(log.Commits) != "4" {
		t.Errorf("log of infra/ = %s, %v", revsOf(log.Commits), err)
	}

	d, err := kv.Diff(ctx, "2", "", &client.DiffOptions{Prefix: "apps/", Patch: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.From != 2 || d.To != 5 || len(d.Changes) != 2 || d.Changes[0].Key != "apps/db" || d.Changes[0].Op != "modified" ||
		!strings.Contains(d.Changes[1].Patch, "-v1\n+v2\n") {
		t.Errorf("diff = %+v", d)
	}
	full, err := kv.Diff(ctx, "", "1", nil)
	if err != nil || len(full.Changes) != 1 || full.Changes[0].Op != "added" || full.Changes[0].Patch != "" {
		t.Errorf("diff from the empty state = %+v, %v", full, err)
	}

	// Revert 3 (apps/web v1 -> v2): apps/web is v1 again.
	rv, err := kv.Revert(ctx, "3", &client.RevertOptions{Message: "undo web"})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := kv.Get(ctx, "apps/web", nil); rv.Revision != 6 || string(v.Data) != "v1\n" {
		t.Errorf("after revert: %+v, apps/web = %q", rv, v.Data)
	}
	// Reverting 2 conflicts: apps/db changed at 5. Force goes through.
	if _, err := kv.Revert(ctx, "2", nil); gitstate.KindOf(err) != gitstate.KindConflict || !slices.Contains(keysOfErr(err), "apps/db") {
		t.Errorf("revert of a key changed since: %v (keys %v)", err, keysOfErr(err))
	}
	if _, err := kv.Revert(ctx, "2", &client.RevertOptions{Force: true}); err != nil {
		t.Errorf("forced revert: %v", err)
	}
	if _, err := kv.Get(ctx, "apps/db", nil); !errors.Is(err, gitstate.ErrKeyNotFound) {
		t.Errorf("apps/db after forced revert of its creation: %v", err)
	}

	// Roll apps/ back to revision 3; infra/ stays.
	rb, err := kv.Rollback(ctx, "3", &client.RollbackOptions{Prefix: "apps/"})
	if err != nil {
		t.Fatal(err)
	}
	state, err := kv.ListAll(ctx, &client.ListOptions{Values: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, it := range state.Items {
		got[it.Key] = *it.Value
	}
	want := map[string]string{"apps/web": "v2\n", "apps/db": "v1\n", "infra/net": "v1\n"}
	if fmt.Sprint(got) != fmt.Sprint(want) || state.Revision != rb.Revision {
		t.Errorf("after rollback (rev %d): %v at %d, want %v", rb.Revision, got, state.Revision, want)
	}
	again, err := kv.Rollback(ctx, "3", &client.RollbackOptions{Prefix: "apps/"})
	if err != nil || again.Changed {
		t.Errorf("second rollback = %+v, %v; want unchanged", again, err)
	}
}

func TestRepos(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	r, err := c.CreateRepo(ctx, "team-a")
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "team-a" || r.Revision != 0 {
		t.Errorf("CreateRepo = %+v", r)
	}
	if _, err := c.CreateRepo(ctx, "team-a"); !errors.Is(err, gitstate.ErrRepoExists) {
		t.Errorf("second CreateRepo: %v", err)
	}
	if _, err := c.CreateRepo(ctx, "Bad_Name"); !errors.Is(err, gitstate.ErrInvalidRepoName) {
		t.Errorf("CreateRepo(Bad_Name): %v", err)
	}
	list, err := c.ListRepos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range list.Repos {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"default", "team-a"}) {
		t.Errorf("repos = %q", names)
	}
	if _, err := c.Repo("nope").Get(ctx, "k", nil); !errors.Is(err, gitstate.ErrRepoNotFound) {
		t.Errorf("Get in a missing repo: %v", err)
	}
	if _, err := c.Repo("nope").Info(ctx); !errors.Is(err, gitstate.ErrRepoNotFound) {
		t.Errorf("Info of a missing repo: %v", err)
	}
	if err := c.Health(ctx); err != nil {
		t.Errorf("Health: %v", err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	kv := newClient(t).Repo("default")
	if _, err := kv.Put(ctx, "k", []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want *gitstate.Error
	}{
		{"missing key", func() error { _, err := kv.Get(ctx, "nope", nil); return err }, gitstate.ErrKeyNotFound},
		{"unknown revision", func() error { _, err := kv.Get(ctx, "k", &client.GetOptions{Rev: "99"}); return err }, gitstate.ErrRevisionNotFound},
		{"bad revision", func() error { _, err := kv.Get(ctx, "k", &client.GetOptions{Rev: "HEAD~1"}); return err }, gitstate.ErrInvalidRevision},
		{"unknown commit", func() error { _, err := kv.CommitInfo(ctx, "deadbeefdeadbeef"); return err }, gitstate.ErrRevisionNotFound},
		{"empty revision", func() error { _, err := kv.CommitInfo(ctx, ""); return err }, gitstate.ErrInvalidRevision},
		{"bad list limit", func() error { _, err := kv.List(ctx, &client.ListOptions{Limit: 100000}); return err }, gitstate.ErrInvalidRequest},
		{"value too large", func() error { _, err := kv.Put(ctx, "big", make([]byte, 1<<20+1), nil); return err }, gitstate.ErrValueTooLarge},
		{"revert of nothing", func() error { _, err := kv.Revert(ctx, "", nil); return err }, gitstate.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ge *gitstate.Error
			if !errors.As(err, &ge) {
				t.Fatalf("err = %v (%T), want a *gitstate.Error", err, err)
			}
			if tt.want != nil && (!errors.Is(err, tt.want) || ge.Kind != tt.want.Kind) {
				t.Fatalf("err = %v (kind %v), want %v (kind %v)", err, ge.Kind, tt.want, tt.want.Kind)
			}
			if ge.Message == "" {
				t.Errorf("err %v has no message", err)
			}
		})
	}
}

// TestAuth checks the bearer token against a server with an admin token.
func TestAuth(t *testing.T) {
	ctx := context.Background()
	url := startServer(t, "s3cret")
	anon, _ := client.New(url)
	if _, err := anon.ListRepos(ctx); gitstate.KindOf(err) != gitstate.KindUnauthorized {
		t.Errorf("no token: %v, want unauthorized", err)
	}
	bad, _ := client.New(url, client.WithToken("wrong"))
	if _, err := bad.ListRepos(ctx); gitstate.KindOf(err) != gitstate.KindUnauthorized {
		t.Errorf("wrong token: %v, want unauthorized", err)
	}
	admin, _ := client.New(url, client.WithToken("s3cret"))
	if _, err := admin.Repo("default").Put(ctx, "k", []byte("v"), nil); err != nil {
		t.Errorf("admin token: %v", err)
	}
	if err := anon.Health(ctx); err != nil {
		t.Errorf("health needs no token: %v", err)
	}
}

// readOnly authenticates every request as a read-only principal.
type readOnly struct{}

func (readOnly) Authenticate(r *http.Request) (*api.Principal, error) {
	return &api.Principal{Name: "reader", Scopes: []api.Scope{api.ScopeRead}, Repos: []string{"*"}}, nil
}

// TestForbidden checks that a 403 carries what the token lacks.
func TestForbidden(t *testing.T) {
	st, err := storage.Open(context.Background(), t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := httptest.NewServer(api.New(api.Options{Store: st, Auth: readOnly{}}))
	t.Cleanup(ts.Close)
	c, _ := client.New(ts.URL, client.WithUserAgent("test-agent"))
	_, err = c.Repo("default").Put(context.Background(), "k", []byte("v"), nil)
	if gitstate.KindOf(err) != gitstate.KindForbidden || client.MissingOf(err) != "scope:write" {
		t.Fatalf("write with a read-only token: %v (missing %q)", err, client.MissingOf(err))
	}
	if !strings.HasSuffix(err.Error(), "missing scope:write") {
		t.Errorf("error text %q does not say what is missing", err)
	}
}

// TestNonAPIErrors checks responses that are not the API's JSON (a proxy in
// front of the server, say).
func TestNonAPIErrors(t *testing.T) {
	var gotUA, gotAuth string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUA, gotAuth = r.Header.Get("User-Agent"), r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/gw/v1/repos":
			http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
		default:
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		}
	}))
	defer ts.Close()
	c, _ := client.New(ts.URL+"/gw/", client.WithToken("t0k"), client.WithUserAgent("ua/1"), client.WithHTTPClient(ts.Client()))
	_, err := c.ListRepos(context.Background())
	var ge *gitstate.Error
	if !errors.As(err, &ge) || ge.Kind != gitstate.KindInternal || ge.Code != "internal" || !strings.Contains(ge.Message, "502") {
		t.Errorf("502: %#v", err)
	}
	if gotUA != "ua/1" || gotAuth != "Bearer t0k" {
		t.Errorf("headers: User-Agent %q, Authorization %q", gotUA, gotAuth)
	}
	_, err = c.Repo("default").Get(context.Background(), "k", nil)
	if !errors.Is(err, gitstate.ErrUnavailable) || !strings.Contains(err.Error(), "maintenance") {
		t.Errorf("503: %v", err)
	}
}

func equalValue(a, b client.Value) bool {
	return string(a.Data) == string(b.Data) && a.Key == b.Key && a.ETag == b.ETag && a.Size == b.Size &&
		a.Revision == b.Revision && a.Commit == b.Commit && a.ModRevision == b.ModRevision && a.NotModified == b.NotModified
}

func keysOf(items []wire.ListItem) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Key)
	}
	return out
}

func keysOfErr(err error) []string {
	var ge *gitstate.Error
	if errors.As(err, &ge) {
		return ge.Keys
	}
	return nil
}

func revsOf(cs []wire.CommitInfo) string {
	var s []string
	for _, c := range cs {
		s = append(s, fmt.Sprint(c.Revision))
	}
	return strings.Join(s, " ")
}
