package server_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
)

// TestImportChecks imports a real repository, through the API: a policy
// that does not parse refuses the import (else every direct write would
// fail), a secret's file that is not encrypted is warned about, and a path
// that is not a valid key is in the report and in no listing.
func TestImportChecks(t *testing.T) {
	ts := startServer(t)
	src := filepath.Join(t.TempDir(), "src")
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", src, "-c", "user.name=T", "-c", "user.email=t@example.com"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(path, content string) {
		t.Helper()
		full := filepath.Join(src, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", path)
	}
	if out, err := exec.Command("git", "init", "-q", "-b", "main", src).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	write(".gitstate/policy.yaml", "protected: [[[\n")
	write("apps/db.sops.json", `{"password": "hunter2"}`)
	write("apps/web/replicas", "3")
	blob := git("hash-object", "-w", "apps/web/replicas")
	git("update-index", "--add", "--cacheinfo", "100644,"+blob+`,apps/back\slash`)
	git("commit", "-q", "-m", "first")

	importRepo := func(name string) wire.ImportStatus {
		t.Helper()
		body, _ := json.Marshal(wire.CreateRepoRequest{Name: name, ImportFrom: src})
		ts.mustDo(t, http.StatusAccepted, http.MethodPost, "/v1/repos", ts.admin, body)
		deadline := time.Now().Add(30 * time.Second)
		for {
			var st wire.ImportStatus
			mustJSON(t, ts.mustDo(t, http.StatusOK, http.MethodGet, "/v1/repos/"+name+"/import", ts.admin, nil), &st)
			if st.State != "running" || time.Now().After(deadline) {
				return st
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	st := importRepo("broken")
	if st.State != "failed" || !strings.Contains(st.Error, "invalid_policy") || !strings.Contains(st.Error, ".gitstate/policy.yaml") {
		t.Fatalf("import of a broken policy: %+v", st)
	}
	if resp, _ := ts.do(t, http.MethodGet, "/v1/repos/broken/kv/apps/web/replicas", ts.admin, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the refused repo answers %d", resp.StatusCode)
	}

	write(".gitstate/policy.yaml", "protected: [{prefix: prod/}]\n")
	git("commit", "-q", "-m", "fix the policy")
	st = importRepo("fixed")
	if st.State != "done" || st.Report == nil {
		t.Fatalf("import: %+v", st)
	}
	rep := st.Report
	if rep.WarningCount != 1 || len(rep.Warnings) != 1 || rep.Warnings[0].Code != "not_encrypted" || rep.Warnings[0].Path != "apps/db.sops.json" ||
		strings.Contains(rep.Warnings[0].Message, "hunter2") {
		t.Errorf("warnings: %+v (%d)", rep.Warnings, rep.WarningCount)
	}
	if rep.InvalidKeyCount != 1 || rep.InvalidKeys[0] != `apps/back\slash` {
		t.Errorf("invalid keys: %v", rep.InvalidKeys)
	}
	var l wire.ListResponse
	mustJSON(t, ts.mustDo(t, http.StatusOK, http.MethodGet, "/v1/repos/fixed/kv?prefix=apps/", ts.admin, nil), &l)
	var keys []string
	for _, it := range l.Items {
		keys = append(keys, it.Key)
	}
	if strings.Join(keys, " ") != "apps/db.sops.json apps/web/replicas" {
		t.Errorf("listing: %q", keys)
	}
	// Direct writes work: the policy parses.
	ts.mustDo(t, http.StatusOK, http.MethodPut, "/v1/repos/fixed/kv/apps/web/replicas", ts.admin, []byte("4"))
}
