package client_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// The test servers of this package (startServer) are real servers over a
// fresh data directory: the first start makes the server's age key there,
// the default recipient of every secret, so secrets need no setup.

// binaryValue holds every byte value, NUL and invalid UTF-8 included.
func binaryValue() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// noValueIn fails the test when err's text holds a secret's value.
func noValueIn(t *testing.T, err error, value []byte) {
	t.Helper()
	if err != nil && len(value) > 0 && strings.Contains(err.Error(), string(value)) {
		t.Errorf("error %q holds the secret's value", err)
	}
}

// TestSecretRoundTrip writes secrets and reads them back byte for byte,
// on main.
func TestSecretRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	kv := c.Repo("default")
	tests := []struct {
		name  string
		key   string
		value []byte
	}{
		{"text", "apps/web/db-password", []byte("s3cret")},
		{"trailing newline", "apps/web/newline", []byte("s3cret\n")},
		{"only a newline", "apps/web/lf", []byte("\n")},
		{"binary", "apps/web/binary", binaryValue()},
		{"JSON-looking", "apps/api/json", []byte(`{"data":"x","sops":{}}`)},
		{"large", "apps/api/large", bytes.Repeat([]byte("0123456789abcdef"), 16<<10)},
		{"key to escape", "apps/we b/p%ss?#", []byte("escaped")},
		{"key named like the rotate route", "rotate", []byte("not a rotation")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := kv.PutSecret(ctx, tt.key, tt.value, &client.PutOptions{Message: "set " + tt.name})
			if err != nil {
				t.Fatal(err)
			}
			if !w.Changed || w.Revision == 0 || len(w.Commit) != 40 || len(w.ETag) != 40 {
				t.Fatalf("PutSecret = %+v", w)
			}
			v, err := kv.GetSecret(ctx, tt.key, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(v.Data, tt.value) || v.Size != int64(len(tt.value)) {
				t.Errorf("GetSecret = %q (size %d), want %q", v.Data, v.Size, tt.value)
			}
			if v.Key != tt.key || v.ETag != w.ETag || v.Revision != w.Revision || v.ModRevision != w.Revision || v.Commit != w.Commit {
				t.Errorf("GetSecret metadata = %+v, want that of %+v", v, w)
			}
			// The kv routes see the encrypted document, not the value (a
			// value too short to be told from the document's own bytes
			// excepted).
			doc, err := kv.Get(ctx, tt.key+".sops.json", nil)
			if err != nil {
				t.Fatal(err)
			}
			leaked := len(tt.value) >= 6 && bytes.Contains(doc.Data, tt.value)
			if doc.ETag != w.ETag || leaked || !bytes.Contains(doc.Data, []byte(`"sops"`)) {
				t.Errorf("encrypted document (etag %s):\n%.300s", doc.ETag, doc.Data)
			}
			// The same plaintext again: no commit, the document kept.
			again, err := kv.PutSecret(ctx, tt.key, tt.value, nil)
			if err != nil {
				t.Fatal(err)
			}
			if again.Changed || again.ETag != w.ETag || again.Revision != w.Revision {
				t.Errorf("re-put = %+v, want unchanged %+v", again, w)
			}
			// If-None-Match on the etag held: not modified, no value.
			nm, err := kv.GetSecret(ctx, tt.key, &client.GetOptions{IfNoneMatch: w.ETag})
			if err != nil || !nm.NotModified || nm.Data != nil {
				t.Errorf("GetSecret with If-None-Match = %+v, %v", nm, err)
			}
		})
	}

	// A past revision gives the value it had then.
	w1, err := kv.PutSecret(ctx, "apps/web/db-password", []byte("v2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	old, err := kv.GetSecret(ctx, "apps/web/db-password", &client.GetOptions{Rev: wire.RevNumber(w1.Revision - 1)})
	if err != nil || string(old.Data) != "s3cret" {
		t.Errorf("GetSecret at revision %d = %+v, %v", w1.Revision-1, old, err)
	}
	// Delete, then it is gone.
	d, err := kv.DeleteSecret(ctx, "apps/web/db-password", &client.DeleteSecretOptions{IfMatch: w1.ETag, Message: "drop"})
	if err != nil || !d.Changed || d.Revision != w1.Revision+1 {
		t.Fatalf("DeleteSecret = %+v, %v", d, err)
	}
	if _, err := kv.GetSecret(ctx, "apps/web/db-password", nil); !errors.Is(err, gitstate.ErrKeyNotFound) {
		t.Errorf("GetSecret after DeleteSecret: %v", err)
	}
}

// TestSecretErrors checks the errors of the secret calls: their codes and
// kinds, matched with errors.Is, and that none holds the value sent.
func TestSecretErrors(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	kv := c.Repo("default")
	value := []byte("hunter2-do-not-leak")
	w, err := kv.PutSecret(ctx, "db", value, nil)
	if err != nil {
		t.Fatal(err)
	}
	stale := strings.Repeat("0", 40)
	tests := []struct {
		name string
		call func() error
		want error // a sentinel, or a bare kind
		code string
	}{
		{"If-Match a stale etag", func() error {
			_, err := kv.PutSecret(ctx, "db", value, &client.PutOptions{IfMatch: stale})
			return err
		}, gitstate.ErrPreconditionFailed, "precondition_failed"},
		{"If-Match a missing secret", func() error {
			_, err := kv.PutSecret(ctx, "absent", value, &client.PutOptions{IfMatch: "*"})
			return err
		}, gitstate.ErrPreconditionFailed, "precondition_failed"},
		{"Create an existing secret", func() error {
			_, err := kv.PutSecret(ctx, "db", append([]byte("other "), value...), &client.PutOptions{Create: true})
			return err
		}, gitstate.ErrPreconditionFailed, "precondition_failed"},
		{"delete with a stale etag", func() error {
			_, err := kv.DeleteSecret(ctx, "db", &client.DeleteSecretOptions{IfMatch: stale})
			return err
		}, gitstate.ErrPreconditionFailed, "precondition_failed"},
		{"get a missing secret", func() error {
			_, err := kv.GetSecret(ctx, "apps/none", nil)
			return err
		}, gitstate.ErrKeyNotFound, "key_not_found"},
		{"get a plain key as a secret", func() error {
			if _, err := kv.Put(ctx, "plain", value, nil); err != nil {
				return err
			}
			_, err := kv.GetSecret(ctx, "plain", nil)
			return err
		}, gitstate.ErrKeyNotFound, "key_not_found"},
		{"delete a missing secret", func() error {
			_, err := kv.DeleteSecret(ctx, "apps/none", nil)
			return err
		}, gitstate.ErrKeyNotFound, "key_not_found"},
		{"get at a revision not made yet", func() error {
			_, err := kv.GetSecret(ctx, "db", &client.GetOptions{Rev: "99"})
			return err
		}, gitstate.ErrRevisionNotFound, "revision_not_found"},
		{"a missing repo", func() error {
			_, err := c.Repo("nope").PutSecret(ctx, "db", value, nil)
			return err
		}, gitstate.ErrRepoNotFound, "repo_not_found"},
		{"an empty value", func() error {
			_, err := kv.PutSecret(ctx, "empty", nil, nil)
			return err
		}, gitstate.ErrInvalidRequest, "invalid_request"},
		{"the empty key", func() error {
			_, err := kv.PutSecret(ctx, "", value, nil)
			return err
		}, gitstate.ErrInvalidKey, "invalid_key"},
		{"a key ending in .sops.json", func() error {
			_, err := kv.PutSecret(ctx, "db.sops.json", value, nil)
			return err
		}, gitstate.ErrInvalidKey, "invalid_key"},
		{"a bad prefix", func() error {
			_, err := kv.ListSecrets(ctx, &client.ListSecretsOptions{Prefix: "a//b"})
			return err
		}, gitstate.ErrInvalidKey, "invalid_key"},
		{"a transaction without an id", func() error {
			_, err := kv.Txn("").GetSecret(ctx, "db", nil)
			return err
		}, gitstate.ErrInvalidRequest, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ge *gitstate.Error
			if !errors.Is(err, tt.want) || !errors.As(err, &ge) || ge.Code != tt.code {
				t.Fatalf("err = %v, want code %s", err, tt.code)
			}
			noValueIn(t, err, value)
		})
	}
	// None of them changed the secret.
	if v, err := kv.GetSecret(ctx, "db", nil); err != nil || !bytes.Equal(v.Data, value) || v.ETag != w.ETag {
		t.Errorf("after the failed calls: %+v, %v", v, err)
	}
	// A matching If-Match writes.
	if w2, err := kv.PutSecret(ctx, "db", []byte("new"), &client.PutOptions{IfMatch: w.ETag}); err != nil || !w2.Changed {
		t.Errorf("If-Match the current etag: %+v, %v", w2, err)
	}
}

// TestSecretScopes checks who may do what: secrets:read to read,
// secrets:write to write, and read enough to list.
func TestSecretScopes(t *testing.T) {
	ctx := context.Background()
	admin := newClient(t)
	value := []byte("scoped-s3cret")
	if _, err := admin.Repo("default").PutSecret(ctx, "db", value, nil); err != nil {
		t.Fatal(err)
	}
	reader := newToken(t, admin, "reader", "read", "write").Repo("default")
	sreader := newToken(t, admin, "sreader", "secrets:read").Repo("default")
	swriter := newToken(t, admin, "swriter", "secrets:write").Repo("default")

	tests := []struct {
		name    string
		call    func() error
		missing string // what the 403 says the token lacks; "" for success
	}{
		{"read cannot read a secret", func() error { _, err := reader.GetSecret(ctx, "db", nil); return err }, "scope:secrets:read"},
		{"read cannot write a secret", func() error { _, err := reader.PutSecret(ctx, "db", value, nil); return err }, "scope:secrets:write"},
		{"read cannot rotate", func() error { _, err := reader.RotateSecrets(ctx, nil); return err }, "scope:secrets:write"},
		{"read lists secrets", func() error { _, err := reader.ListSecrets(ctx, nil); return err }, ""},
		{"secrets:write cannot read a secret", func() error { _, err := swriter.GetSecret(ctx, "db", nil); return err }, "scope:secrets:read"},
		{"secrets:write writes", func() error { _, err := swriter.PutSecret(ctx, "other", value, nil); return err }, ""},
		{"secrets:read reads", func() error {
			v, err := sreader.GetSecret(ctx, "db", nil)
			if err == nil && !bytes.Equal(v.Data, value) {
				t.Errorf("sreader read %q", v.Data)
			}
			return err
		}, ""},
		{"secrets:read cannot write", func() error { _, err := sreader.DeleteSecret(ctx, "db", nil); return err }, "scope:secrets:write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if tt.missing == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if gitstate.KindOf(err) != gitstate.KindForbidden || !errors.Is(err, &gitstate.Error{Kind: gitstate.KindForbidden}) ||
				client.MissingOf(err) != tt.missing {
				t.Fatalf("err = %v (missing %q), want 403 missing %s", err, client.MissingOf(err), tt.missing)
			}
			noValueIn(t, err, value)
		})
	}
}

// TestSecretList lists secrets: keys, etags and revisions, never values,
// in pages read at one revision.
func TestSecretList(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	kv := c.Repo("default")
	etags := map[string]string{}
	for i, k := range []string{"apps/web/a", "apps/web/b", "apps/web/c", "apps/api/d"} {
		w, err := kv.PutSecret(ctx, k, []byte("value-of-"+k), nil)
		if err != nil {
			t.Fatal(err)
		}
		if w.Revision != int64(i+1) {
			t.Fatalf("put %s: revision %d", k, w.Revision)
		}
		etags[k] = w.ETag
	}
	// A plain key among them is no secret.
	if _, err := kv.Put(ctx, "apps/web/plain", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}

	keysOf := func(items []wire.SecretItem) []string {
		var out []string
		for _, it := range items {
			out = append(out, it.Key)
		}
		return out
	}
	page, err := kv.ListSecrets(ctx, &client.ListSecretsOptions{Prefix: "apps/web/", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if page.Revision != 5 || !slices.Equal(keysOf(page.Items), []string{"apps/web/a", "apps/web/b"}) || page.Next != "apps/web/b" {
		t.Fatalf("first page = %+v", page)
	}
	if it := page.Items[0]; it.ETag != etags["apps/web/a"] || it.ModRevision != 1 {
		t.Errorf("item = %+v", it)
	}
	// Every page is read at the first one's revision: a secret written
	// meanwhile does not show in the following pages.
	var seen []string
	for it, err := range kv.SecretItems(ctx, &client.ListSecretsOptions{Prefix: "apps/web/", Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		if seen = append(seen, it.Key); len(seen) == 1 {
			if _, err := kv.PutSecret(ctx, "apps/web/bb", []byte("late"), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if want := []string{"apps/web/a", "apps/web/b", "apps/web/c"}; !slices.Equal(seen, want) {
		t.Errorf("SecretItems while writing = %q, want %q", seen, want)
	}
	all, err := kv.ListAllSecrets(ctx, &client.ListSecretsOptions{Prefix: "apps/", Limit: 1, Rev: "5"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"apps/api/d", "apps/web/a", "apps/web/b", "apps/web/c"}; all.Revision != 5 || all.Next != "" || !slices.Equal(keysOf(all.Items), want) {
		t.Errorf("ListAllSecrets at 5 = %+v, want %q", all, want)
	}
	// maxItems stops the listing, and Next continues it.
	some, err := kv.ListAllSecrets(ctx, &client.ListSecretsOptions{Prefix: "apps/web/", Limit: 1}, 2)
	if err != nil || len(some.Items) != 2 || some.Next != "apps/web/b" {
		t.Fatalf("ListAllSecrets to 2 = %+v, %v", some, err)
	}
	var rest []string
	for it, err := range kv.SecretItems(ctx, &client.ListSecretsOptions{Prefix: "apps/web/", After: some.Next, Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, it.Key)
	}
	if !slices.Equal(rest, []string{"apps/web/bb", "apps/web/c"}) {
		t.Errorf("SecretItems after %s = %q", some.Next, rest)
	}
	// No values anywhere.
	for _, it := range all.Items {
		if strings.Contains(it.Key+it.ETag, "value-of") {
			t.Errorf("listed a value: %+v", it)
		}
	}
	// Nothing under a prefix.
	none, err := kv.ListAllSecrets(ctx, &client.ListSecretsOptions{Prefix: "nothing/"}, 0)
	if err != nil || len(none.Items) != 0 || none.Items == nil {
		t.Errorf("empty listing = %+v, %v", none, err)
	}
}

// TestSecretRotate re-encrypts secrets in one commit; their values stay.
func TestSecretRotate(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	kv := c.Repo("default")
	before := map[string]string{}
	for _, k := range []string{"apps/web/a", "apps/web/b", "apps/api/c"} {
		w, err := kv.PutSecret(ctx, k, []byte("value of "+k+"\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		before[k] = w.ETag
	}
	tests := []struct {
		name     string
		opts     *client.RotateSecretsOptions
		changed  bool
		keys     []string
		revision int64
	}{
		{"new data keys under a prefix", &client.RotateSecretsOptions{Prefix: "apps/web/", Message: "rotate web"}, true, []string{"apps/web/a", "apps/web/b"}, 4},
		{"new data keys for all", nil, true, []string{"apps/api/c", "apps/web/a", "apps/web/b"}, 5},
		{"recipients already right", &client.RotateSecretsOptions{KeepDataKey: true}, false, []string{}, 5},
		{"nothing under the prefix", &client.RotateSecretsOptions{Prefix: "none/"}, false, []string{}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := kv.RotateSecrets(ctx, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Changed != tt.changed || res.Revision != tt.revision || !slices.Equal(res.Keys, tt.keys) {
				t.Errorf("RotateSecrets = %+v, want changed %v, revision %d, keys %q", res, tt.changed, tt.revision, tt.keys)
			}
		})
	}
	info, err := kv.CommitInfo(ctx, "4")
	if err != nil || !strings.HasPrefix(info.Message, "rotate web") {
		t.Errorf("commit of the rotation: %+v, %v", info, err)
	}
	for k, etag := range before {
		v, err := kv.GetSecret(ctx, k, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(v.Data) != "value of "+k+"\n" || v.ETag == etag || v.ModRevision != 5 {
			t.Errorf("%s after rotation: %q etag %s (was %s) mod revision %d", k, v.Data, v.ETag, etag, v.ModRevision)
		}
	}
}

// TestSecretInTxn writes secrets in a transaction: visible there, not on
// main until the transaction is committed.
func TestSecretInTxn(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	kv := c.Repo("default")
	w0, err := kv.PutSecret(ctx, "apps/web/db", []byte("old\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	begun, err := kv.BeginTxn(ctx, &client.BeginTxnOptions{Message: "new secrets"})
	if err != nil {
		t.Fatal(err)
	}
	tx := kv.Txn(begun.ID)

	// Reads see the base; writes make commits on the branch.
	if v, err := tx.GetSecret(ctx, "apps/web/db", nil); err != nil || string(v.Data) != "old\n" || v.Revision != 0 {
		t.Fatalf("GetSecret of the base in the transaction: %+v, %v", v, err)
	}
	w1, err := tx.PutSecret(ctx, "apps/web/db", []byte("new\n"), &client.PutOptions{IfMatch: w0.ETag})
	if err != nil {
		t.Fatal(err)
	}
	if !w1.Changed || w1.Revision != 0 || len(w1.Commit) != 40 {
		t.Errorf("PutSecret in the transaction = %+v", w1)
	}
	if _, err := tx.PutSecret(ctx, "apps/api/token", binaryValue(), &client.PutOptions{Create: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.PutSecret(ctx, "apps/web/db", []byte("stale"), &client.PutOptions{IfMatch: w0.ETag}); !errors.Is(err, gitstate.ErrPreconditionFailed) {
		t.Errorf("stale If-Match in the transaction: %v", err)
	}
	if v, err := tx.GetSecret(ctx, "apps/api/token", nil); err != nil || !bytes.Equal(v.Data, binaryValue()) || v.ModRevision != 0 {
		t.Errorf("GetSecret in the transaction: %+v, %v", v, err)
	}
	list, err := tx.ListAllSecrets(ctx, &client.ListSecretsOptions{Limit: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Revision != 0 || list.Items[0].Key != "apps/api/token" || list.Items[1].ETag != w1.ETag {
		t.Errorf("ListAllSecrets in the transaction = %+v", list)
	}
	if _, err := tx.ListSecrets(ctx, &client.ListSecretsOptions{Rev: "1"}); !errors.Is(err, gitstate.ErrInvalidRequest) {
		t.Errorf("Rev in a transaction: %v", err)
	}
	rot, err := tx.RotateSecrets(ctx, &client.RotateSecretsOptions{Prefix: "apps/api/"})
	if err != nil || !rot.Changed || rot.Revision != 0 || !slices.Equal(rot.Keys, []string{"apps/api/token"}) {
		t.Errorf("RotateSecrets in the transaction = %+v, %v", rot, err)
	}

	// Main is untouched.
	if v, err := kv.GetSecret(ctx, "apps/web/db", nil); err != nil || string(v.Data) != "old\n" || v.ETag != w0.ETag {
		t.Errorf("main before the commit: %+v, %v", v, err)
	}
	if _, err := kv.GetSecret(ctx, "apps/api/token", nil); !errors.Is(err, gitstate.ErrKeyNotFound) {
		t.Errorf("a transaction's secret on main before the commit: %v", err)
	}
	if l, err := kv.ListAllSecrets(ctx, nil, 0); err != nil || len(l.Items) != 1 {
		t.Errorf("main's secrets before the commit: %+v, %v", l, err)
	}

	if _, err := kv.CommitTxn(ctx, begun.ID); err != nil {
		t.Fatal(err)
	}
	if v, err := kv.GetSecret(ctx, "apps/web/db", nil); err != nil || string(v.Data) != "new\n" {
		t.Errorf("main after the commit: %+v, %v", v, err)
	}
	if v, err := kv.GetSecret(ctx, "apps/api/token", nil); err != nil || !bytes.Equal(v.Data, binaryValue()) {
		t.Errorf("the transaction's secret after the commit: %+v, %v", v, err)
	}
	// A committed transaction takes no more writes.
	if _, err := tx.DeleteSecret(ctx, "apps/web/db", nil); !errors.Is(err, &gitstate.Error{Kind: gitstate.KindConflict}) {
		t.Errorf("DeleteSecret in a committed transaction: %v", err)
	}
}
