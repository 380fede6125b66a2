package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gitstate/gitstate/server"
)

// TestDataDirPrivate checks that the data directory, the repos and the
// index are mode 0700: made so when new, and made so, with a warning, when
// an existing one is open to other users.
func TestDataDirPrivate(t *testing.T) {
	// With umask 022 a directory made 0755 shows as such.
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	private := []string{"", "repos", "index"}
	checkModes := func(t *testing.T, dir string) {
		t.Helper()
		for _, sub := range private {
			fi, err := os.Stat(filepath.Join(dir, sub))
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o700 {
				t.Errorf("%s/%s: mode %04o, want 0700", filepath.Base(dir), sub, perm)
			}
		}
	}
	t.Run("fresh", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		ts := startServer(t, func(c *server.Config) { c.DataDir = dir })
		checkModes(t, dir)
		if strings.Contains(ts.logs.String(), "made it private") {
			t.Errorf("a fresh data directory was warned about:\n%s", ts.logs)
		}
	})
	t.Run("open", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		for _, sub := range private {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(dir, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		ts := startServer(t, func(c *server.Config) { c.DataDir = dir })
		checkModes(t, dir)
		logs := ts.logs.String()
		// One warning for each directory tightened: the data directory,
		// repos/ and index/.
		if n := strings.Count(logs, "made it private (0700)"); n != len(private) || !strings.Contains(logs, "was=0755") {
			t.Errorf("%d warnings, want %d, each with was=0755:\n%s", n, len(private), logs)
		}
		// The server works on the tightened directory.
		ts.put(t, ts.admin, "k", "v")
	})
}
