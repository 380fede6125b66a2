package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps checks that the client links nothing of the server: besides the
// standard library it may import only package gitstate and api/wire. In
// particular neither the storage engine nor pebble may creep in.
func TestDeps(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found:", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}",
		"github.com/gitstate/gitstate/clients/go").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/gitstate/gitstate":            true,
		"github.com/gitstate/gitstate/api/wire":   true,
		"github.com/gitstate/gitstate/clients/go": true,
	}
	for _, pkg := range strings.Fields(string(out)) {
		if !allowed[pkg] {
			t.Errorf("client depends on %s", pkg)
		}
		for _, banned := range []string{"github.com/gitstate/gitstate/storage", "github.com/cockroachdb/pebble"} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("client links %s (the storage engine)", pkg)
			}
		}
	}
}
