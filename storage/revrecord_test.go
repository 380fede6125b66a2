package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sampleRevisions() []*RevisionInfo {
	id := func(s string) string { return HashObject(BlobObject, []byte(s)).String() }
	return []*RevisionInfo{
		{Revision: 1, Commit: id("c1"), Parents: []string{}, Author: "admin", Email: "admin@gitstate.local",
			Time: 1764140000, Message: "PUT apps/web.yaml\n", Changes: []KeyChange{{Key: "apps/web.yaml", Op: "put", ETag: id("v")}}},
		{Revision: 1 << 40, Commit: id("c2"), Parents: []string{id("p1"), id("p2")}, Author: "", Email: "",
			Time: -5, Message: "", Changes: []KeyChange{}},
		{Revision: 7, Commit: id("c3"), Parents: []string{id("p")}, Author: "ä\x00b", Email: "e@x",
			Time: 0, Message: strings.Repeat("m", 300) + "\nGitstate-Move-To: b\n", Changes: []KeyChange{
				{Key: "a", Op: "delete"},
				{Key: "b", Op: "move", From: "a/ключ", ETag: id("w")},
			}},
	}
}

func TestRevRecordRoundTrip(t *testing.T) {
	for i, ri := range sampleRevisions() {
		b, err := appendRevRecord(nil, ri)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRevRecord(b)
		if err != nil {
			t.Fatalf("decode rev %d: %v", ri.Revision, err)
		}
		if !reflect.DeepEqual(got, ri) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, ri)
		}
		// A PUT's record (the first) is less than half its JSON.
		if j, _ := json.Marshal(ri); len(b) >= len(j) || i == 0 && 2*len(b) >= len(j) {
			t.Errorf("rev %d: record of %d bytes, JSON %d", ri.Revision, len(b), len(j))
		}
		// Every strict prefix and every extension is refused.
		for n := range len(b) {
			if _, err := decodeRevRecord(b[:n]); !errors.Is(err, errBadRevRecord) {
				t.Fatalf("rev %d: prefix of %d bytes: %v", ri.Revision, n, err)
			}
		}
		if _, err := decodeRevRecord(append(bytes.Clone(b), 0)); !errors.Is(err, errBadRevRecord) {
			t.Fatalf("rev %d: trailing byte: %v", ri.Revision, err)
		}
	}
}

func TestRevRecordRefuses(t *testing.T) {
	good := sampleRevisions()[0]
	for _, tc := range []struct {
		name string
		edit func(ri *RevisionInfo)
	}{
		{"upper-case commit", func(ri *RevisionInfo) { ri.Commit = strings.ToUpper(ri.Commit) }},
		{"odd-length parent", func(ri *RevisionInfo) { ri.Parents = []string{"abc"} }},
		{"etag not hex", func(ri *RevisionInfo) { ri.Changes[0].ETag = "zz" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ri := *good
			ri.Changes = append([]KeyChange(nil), good.Changes...)
			tc.edit(&ri)
			if b, err := appendRevRecord(nil, &ri); err == nil {
				t.Fatalf("encoded: %x", b)
			}
		})
	}
	for name, b := range map[string][]byte{
		"empty":             nil,
		"JSON (format 1)":   []byte(`{"revision":1}`),
		"unknown version":   {2, 1},
		"huge change count": binary.AppendUvarint([]byte{revRecordVersion, 1, 0, 0, 0, 0, 0, 0}, 1<<60),
		"huge string":       append([]byte{revRecordVersion, 1, 0, 0}, binary.AppendUvarint(nil, 1<<62)...),
	} {
		if _, err := decodeRevRecord(b); !errors.Is(err, errBadRevRecord) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzRevRecord decodes arbitrary bytes (no panic, no huge allocation) and
// checks that whatever decodes encodes back to the same bytes.
func FuzzRevRecord(f *testing.F) {
	for _, ri := range sampleRevisions() {
		b, _ := appendRevRecord(nil, ri)
		f.Add(b)
	}
	f.Add([]byte{revRecordVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		ri, err := decodeRevRecord(b)
		if err != nil {
			return
		}
		// The start-up scan reads only the commit: it agrees with the
		// whole decoder on every record that decodes.
		if len(ri.Commit) == 40 {
			h, err := revRecordCommit(b, ri.Revision)
			if err != nil || h.String() != ri.Commit {
				t.Fatalf("revRecordCommit: %s, %v; the record's commit is %s", h, err, ri.Commit)
			}
		}
		again, err := appendRevRecord(nil, ri)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", ri, err)
		}
		// Varints have one shortest form; a longer one in b decodes to the
		// same record, so compare records, not bytes.
		ri2, err := decodeRevRecord(again)
		if err != nil || !reflect.DeepEqual(ri, ri2) {
			t.Fatalf("re-encoded record differs: %+v vs %+v (%v)", ri, ri2, err)
		}
	})
}
