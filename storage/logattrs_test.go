package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for the store's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBackendLogAttrs checks that a repo's backend logs under the store's
// "repo" attribute (the repo's name) and gives its path as "dir": a record
// with two "repo" keys is ambiguous to every log processor that reads
// JSON.
func TestBackendLogAttrs(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	if _, err := s.CreateRepo(context.Background(), "cfg"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A temporary file a crash left: the backend removes it at open, and
	// says so.
	gitDir := filepath.Join(dir, "repos", "cfg.git")
	if err := os.WriteFile(filepath.Join(gitDir, "objects", "pack", tempPrefix+"pack-1"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	s = openTestStore(t, dir, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var found bool
	for line := range strings.Lines(buf.String()) {
		if !strings.Contains(line, "removed temporary files") {
			continue
		}
		found = true
		if n := strings.Count(line, `"repo":`); n != 1 {
			t.Errorf("%d repo keys in %s", n, line)
		}
		var rec struct {
			Repo  string `json:"repo"`
			Dir   string `json:"dir"`
			Files int    `json:"files"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Repo != "cfg" || rec.Dir != gitDir || rec.Files != 1 {
			t.Errorf("record %+v, want repo cfg, dir %s, 1 file", rec, gitDir)
		}
	}
	if !found {
		t.Fatalf("no record of the removal in:\n%s", buf.String())
	}
}
