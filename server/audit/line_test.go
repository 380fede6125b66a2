package audit

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
)

// checkAppendEntry compares appendEntry with json.Marshal, byte for byte.
func checkAppendEntry(t *testing.T, e wire.AuditEntry) {
	t.Helper()
	want, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendEntry(nil, &e); string(got) != string(want) {
		t.Fatalf("appendEntry:\n got %s\nwant %s", got, want)
	}
}

func TestAppendEntry(t *testing.T) {
	at := time.Date(2026, 11, 26, 8, 0, 1, 123456000, time.UTC)
	for name, e := range map[string]wire.AuditEntry{
		"put": {Time: at, Identity: "admin", TokenID: "t1", Remote: "127.0.0.1:5000", Action: "kv.put", Method: "PUT",
			Route: "/v1/repos/{repo}/kv/{key}", Repo: "default", Keys: []string{"apps/web.yaml"}, Status: 200, RequestID: "abc", Revision: 42},
		"bare":          {Time: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), Action: "x", Method: "GET", Route: "/", Status: 401},
		"empty keys":    {Time: at, Keys: []string{}, KeysOmitted: 3, Target: "txn/1", Status: -1, Revision: -5},
		"zone":          {Time: at.In(time.FixedZone("x", 3600+1800)), Action: "a"},
		"escapes":       {Time: at, Identity: "a\"b\\c\n\r\t\b\f\x00\x1f\x7f", Keys: []string{"<script>&</script>", "\u2028\u2029", "é€😀"}},
		"invalid utf-8": {Time: at, Remote: "\xff\xfe", Keys: []string{"a\xc3", "\xed\xa0\x80", "\uFFFD"}},
	} {
		t.Run(name, func(t *testing.T) { checkAppendEntry(t, e) })
	}
}

func FuzzAppendEntry(f *testing.F) {
	f.Add("admin", "kv.put", "apps/<a>&\u2028", "\xff", int64(1764140000123456789), 200, int64(7))
	f.Add("", "", "", "", int64(0), 0, int64(0))
	f.Fuzz(func(t *testing.T, id, action, key, remote string, nanos int64, status int, rev int64) {
		e := wire.AuditEntry{Time: time.Unix(0, nanos).UTC(), Identity: id, Remote: remote, Action: action,
			Method: key, Route: action, Repo: id, Target: remote, Status: status, RequestID: key, Revision: rev}
		if key != "" {
			e.Keys = []string{key, id}
		}
		checkAppendEntry(t, e)
	})
}
