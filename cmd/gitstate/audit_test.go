package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gitstate/gitstate/api/wire"
)

func TestAuditCommand(t *testing.T) {
	url := startServer(t, "")
	t.Setenv("GITSTATE_TOKEN", testToken)
	s := "--server=" + url
	if _, err := run(t, "put", s, "apps/web/replicas", "3"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "get", s, "apps/none"); exitCode(err) != exitNotFound {
		t.Fatalf("get of a missing key: %v", err)
	}

	tests := []struct {
		name    string
		args    []string
		wantMin int    // entries at least
		wantMax int    // entries at most (-1: no bound)
		action  string // an action that must be among them
	}{
		{"all", nil, 1, -1, "kv.put"},
		{"by identity", []string{"--identity", "admin"}, 1, -1, "kv.put"},
		{"another identity", []string{"--identity", "nobody"}, 0, 0, ""},
		{"by repo", []string{"--for-repo", "default"}, 1, -1, "kv.put"},
		{"since a duration", []string{"--since", "1h"}, 1, -1, "kv.put"},
		{"since a time", []string{"--since", "2000-01-01T00:00:00Z"}, 1, -1, "kv.put"},
		{"limit", []string{"--limit", "1"}, 1, 1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, append([]string{"audit", s, "-o", "json"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			var l wire.AuditList
			if err := json.Unmarshal([]byte(out), &l); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if len(l.Entries) < tc.wantMin || (tc.wantMax >= 0 && len(l.Entries) > tc.wantMax) {
				t.Fatalf("%d entries, want %d to %d: %s", len(l.Entries), tc.wantMin, tc.wantMax, out)
			}
			found := tc.action == ""
			for _, e := range l.Entries {
				found = found || (e.Action == tc.action && e.Revision == 1 && strings.Join(e.Keys, ",") == "apps/web/replicas")
				if strings.Contains(out, `"3"`) {
					t.Errorf("the audit log shows a value: %s", out)
				}
			}
			if !found {
				t.Errorf("no %s entry for revision 1: %s", tc.action, out)
			}
		})
	}

	out, err := run(t, "audit", s)
	if err != nil || !strings.HasPrefix(out, "TIME") || !strings.Contains(out, "kv.put") {
		t.Errorf("text: %q %v", out, err)
	}
	for _, bad := range [][]string{{"--since", "yesterday"}, {"--since", "-1h"}, {"--limit", "-1"}, {"extra-arg"}} {
		if _, err := run(t, append([]string{"audit", s}, bad...)...); exitCode(err) != exitUsage {
			t.Errorf("audit %v: %v (exit %d), want a usage error", bad, err, exitCode(err))
		}
	}
	// Not an administrator: the server's 403.
	tok, err := run(t, "token", "create", "reader", "--scope", "read", s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "audit", s, "--token", strings.TrimSpace(tok)); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Errorf("audit as a reader: %v", err)
	}
}
