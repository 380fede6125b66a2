package server

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gitstate/gitstate/secrets"
)

// TestFirstStartMakesAgeKey checks that the first start generates the
// server's age identity in the data directory, readable by its owner only,
// and that later starts keep it.
func TestFirstStartMakesAgeKey(t *testing.T) {
	dir := t.TempDir()
	start := func() *Server {
		cfg := DefaultConfig()
		cfg.DataDir, cfg.Listen, cfg.AdminToken, cfg.Banner = dir, "127.0.0.1:0", "test-admin", io.Discard
		s, err := Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := start()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, secrets.KeyFileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no age key after the first start: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("age key mode %v, want 0600", fi.Mode().Perm())
	}
	first, _ := os.ReadFile(path)
	if !bytes.Contains(first, []byte("AGE-SECRET-KEY-1")) || !bytes.Contains(first, []byte("# public key: age1")) {
		t.Errorf("age key file:\n%s", first)
	}
	s = start()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, first) {
		t.Errorf("a restart replaced the age key")
	}
}
