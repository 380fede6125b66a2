package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
)

// encodeListReference is how listings were answered before appendList:
// the wire types through json.Encoder.
func encodeListReference(t *testing.T, res *storage.ListResult, values bool, keep func(string) bool) []byte {
	t.Helper()
	out := wire.ListResponse{Revision: res.Revision, Items: make([]wire.ListItem, 0, len(res.Items)), Next: res.Next}
	for _, it := range res.Items {
		if !keep(it.Key) {
			continue
		}
		li := wire.ListItem{Key: it.Key, ETag: it.Blob.String(), Size: it.Size, ModRevision: it.ModRevision}
		if values {
			if utf8.Valid(it.Value) {
				v := string(it.Value)
				li.Value = &v
			} else {
				v := base64.StdEncoding.EncodeToString(it.Value)
				li.ValueBase64 = &v
			}
		}
		out.Items = append(out.Items, li)
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(out); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func checkAppendList(t *testing.T, res *storage.ListResult, values bool, keep func(string) bool) {
	t.Helper()
	want := encodeListReference(t, res, values, keep)
	if got := appendList([]byte("x"), res, values, keep); string(got) != "x"+string(want) {
		t.Fatalf("appendList (values %v):\n got %s\nwant %s", values, got[1:], want)
	}
}

func TestAppendListMatchesEncoder(t *testing.T) {
	all := func(string) bool { return true }
	blob := storage.Hash{0x01, 0xab, 0xff}
	yaml := []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"web\" <&>\n")
	for name, res := range map[string]*storage.ListResult{
		"empty": {Revision: 0},
		"one": {Revision: 42, Items: []storage.ListItem{
			{Key: "apps/web.yaml", Blob: blob, Size: int64(len(yaml)), ModRevision: 41, Value: yaml}}},
		"several, a page to follow": {Revision: 7, Next: "b/2", Items: []storage.ListItem{
			{Key: "a", ModRevision: 1, Value: []byte{}},
			{Key: "b/1", Blob: blob, Size: 3, ModRevision: 2, Value: []byte{0xff, 0x00, 0x80}},
			{Key: "b/2", Size: -1, ModRevision: -3, Value: []byte("日本\u2028")}}},
		"escapes in keys and next": {Revision: 1 << 62, Next: "\x01<\"", Items: []storage.ListItem{
			{Key: "k\"\\\n<>&\u2029\xff", ModRevision: 9}}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, values := range []bool{false, true} {
				checkAppendList(t, res, values, all)
				// A token limited to some keys lists only those.
				checkAppendList(t, res, values, func(k string) bool { return strings.HasPrefix(k, "b") })
				checkAppendList(t, res, values, func(string) bool { return false })
			}
		})
	}
}

func FuzzAppendList(f *testing.F) {
	f.Add(int64(3), "apps/a.yaml", []byte("x: 1\n"), int64(5), int64(2), "", true, "apps/")
	f.Add(int64(-1), "k\xff", []byte{0xc3}, int64(-5), int64(0), "n<", false, "")
	f.Fuzz(func(t *testing.T, rev int64, key string, value []byte, size, modRev int64, next string, values bool, prefix string) {
		res := &storage.ListResult{Revision: rev, Next: next, Items: []storage.ListItem{
			{Key: key, Blob: storage.Hash{byte(size)}, Size: size, ModRevision: modRev, Value: value},
			{Key: key + "/2", Size: modRev, ModRevision: size, Value: append([]byte("v"), value...)},
		}}
		checkAppendList(t, res, values, func(k string) bool { return strings.HasPrefix(k, prefix) })
	})
}

func checkAppendWriteResult(t *testing.T, r wire.WriteResult) {
	t.Helper()
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(r); err != nil {
		t.Fatal(err)
	}
	if got := appendWriteResult([]byte("x"), &r); string(got) != "x"+want.String() {
		t.Fatalf("appendWriteResult:\n got %s\nwant %s", got[1:], want.Bytes())
	}
}

func TestAppendWriteResult(t *testing.T) {
	for _, r := range []wire.WriteResult{
		{Revision: 42, Commit: "0123456789abcdef0123456789abcdef01234567", ETag: "89abcdef0123456789abcdef0123456789abcdef", Changed: true},
		{Revision: 0, Commit: "", ETag: "", Changed: false},
		{Revision: -1 << 63, Commit: "<\"\xff>", ETag: "\u2028"},
	} {
		checkAppendWriteResult(t, r)
	}
}

func FuzzAppendWriteResult(f *testing.F) {
	f.Add(int64(7), "c0ffee", "", true)
	f.Fuzz(func(t *testing.T, rev int64, commit, etag string, changed bool) {
		checkAppendWriteResult(t, wire.WriteResult{Revision: rev, Commit: commit, ETag: etag, Changed: changed})
	})
}
