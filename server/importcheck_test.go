package server_test

import (
	"encoding/json"
	"errors"
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

// TestImportSourceSecrets checks that a credential in an import's source
// is never shown, stored or logged: an http(s) source with a query string
// or a fragment is refused, and a source git echoes with its password
// (git:// has no credentials, and quotes the host it cannot find, user and
// password included) fails without it.
func TestImportSourceSecrets(t *testing.T) {
	ts := startServer(t)
	importFrom := func(name, src string) (*http.Response, []byte) {
		t.Helper()
		body, _ := json.Marshal(wire.CreateRepoRequest{Name: name, ImportFrom: src})
		return ts.do(t, http.MethodPost, "/v1/repos", ts.admin, body)
	}
	var shown []string // every body the API answered
	for _, tc := range []struct{ name, src, secret string }{
		{"qtok", "http://127.0.0.1:7359/x.git?private_token=QtokSecret77", "QtokSecret77"},
		{"qtok2", "https://u:PwSecret55@127.0.0.1:7359/x.git?private_token=QtokSecret78", "QtokSecret78"},
		{"frag", "http://127.0.0.1:7359/x.git#FragSecret44", "FragSecret44"},
	} {
		resp, b := importFrom(tc.name, tc.src)
		shown = append(shown, string(b))
		if e := errorOf(t, b); resp.StatusCode != http.StatusBadRequest || e.Code != "invalid_source" {
			t.Errorf("%s: %d %s, want 400 invalid_source", tc.name, resp.StatusCode, b)
		}
		resp, b = ts.do(t, http.MethodGet, "/v1/repos/"+tc.name+"/import", ts.admin, nil)
		shown = append(shown, string(b))
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: import status %d %s, want 404", tc.name, resp.StatusCode, b)
		}
	}
	resp, b := importFrom("gitpw", "git://u:GitSecret99@127.0.0.1:7359/x.git")
	shown = append(shown, string(b))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("git:// import: %d %s", resp.StatusCode, b)
	}
	var st wire.ImportStatus
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b = ts.mustDo(t, http.StatusOK, http.MethodGet, "/v1/repos/gitpw/import", ts.admin, nil)
		mustJSON(t, b, &st)
		if st.State != "running" || time.Now().After(deadline) {
			break
		}
	}
	shown = append(shown, string(b))
	if st.State != "failed" || !strings.Contains(st.Error, "REDACTED") {
		t.Errorf("git:// import: %+v, want failed, its error redacted", st)
	}
	if testing.Verbose() {
		t.Logf("git:// import: %s (from %s)", st.Error, st.Source)
	}

	secrets := []string{"QtokSecret77", "QtokSecret78", "PwSecret55", "FragSecret44", "GitSecret99"}
	for _, s := range secrets {
		for _, body := range shown {
			if strings.Contains(body, s) {
				t.Errorf("the API showed %s: %s", s, body)
			}
		}
		if strings.Contains(ts.logs.String(), s) {
			t.Errorf("the log holds %s:\n%s", s, ts.logs.String())
		}
	}
	err := filepath.WalkDir(ts.cfg.DataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil // the index's, gone while the walk went on
		}
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds %s", path, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
