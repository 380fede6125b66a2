package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gitstate/gitstate/clients/go/reconcile"
)

// Syncer makes a directory equal to a snapshot of a prefix.
type Syncer struct {
	// Dir is the directory kept equal to the prefix.
	Dir string
	// Prefix is stripped from keys to make file paths.
	Prefix string

	// last is the snapshot applied last: what the directory should hold
	// when nobody touched it.
	last map[string][]byte
}

// Apply is the reconcile function: it writes what differs and removes what
// is not in the snapshot. It returns a reconcile.Drifted error when the
// directory had been changed by someone else since the last apply (the
// changes are undone all the same).
func (s *Syncer) Apply(ctx context.Context, snap reconcile.Snapshot) error {
	want := map[string][]byte{}
	for key, v := range snap.Values {
		rel := strings.TrimPrefix(key, s.Prefix)
		if rel == "" || !filepath.IsLocal(rel) {
			continue // cannot be a file under Dir
		}
		want[filepath.FromSlash(rel)] = v
	}
	have, err := readTree(s.Dir)
	if err != nil {
		return err
	}
	// Drift: the directory is not what the last apply left.
	var drift []string
	if s.last != nil {
		for p, v := range have {
			if lv, ok := s.last[p]; !ok || !bytes.Equal(lv, v) {
				drift = append(drift, p)
			}
		}
		for p := range s.last {
			if _, ok := have[p]; !ok {
				drift = append(drift, p)
			}
		}
	}
	for p, v := range want {
		if hv, ok := have[p]; ok && bytes.Equal(hv, v) {
			continue
		}
		if err := writeAtomic(filepath.Join(s.Dir, p), v); err != nil {
			return err
		}
	}
	for p := range have {
		if _, ok := want[p]; !ok {
			if err := os.Remove(filepath.Join(s.Dir, p)); err != nil && !os.IsNotExist(err) {
				return err
			}
			removeEmptyParents(s.Dir, filepath.Dir(filepath.Join(s.Dir, p)))
		}
	}
	s.last = want
	if len(drift) > 0 {
		sort.Strings(drift)
		return reconcile.Drifted("%d file(s) changed by hand, restored: %s", len(drift), strings.Join(drift, ", "))
	}
	return nil
}

// readTree returns the regular files under dir by relative path, skipping
// the temporary files writeAtomic leaves behind after a crash.
func readTree(dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".dirsync-") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = b
		return nil
	})
	return out, err
}

// writeAtomic replaces path with data: written beside it, synced, renamed.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".dirsync-")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// removeEmptyParents removes empty directories from dir up to root.
func removeEmptyParents(root, dir string) {
	for dir != root && strings.HasPrefix(dir, root) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}
