package storage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Refs are kept in Git's own formats: loose files under refs/ and the
// packed-refs file (which Git writes on gc). gitstate writes only loose refs.

// readRefs returns every ref of the bare repository at gitDir: packed refs,
// overridden by loose ones. Symbolic refs are skipped.
func readRefs(gitDir string) (map[string]Hash, error) {
	refs := map[string]Hash{}
	if b, err := os.ReadFile(filepath.Join(gitDir, "packed-refs")); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line := sc.Text()
			if line == "" || line[0] == '#' || line[0] == '^' {
				continue
			}
			hs, name, ok := strings.Cut(line, " ")
			if h, hok := parseHash(hs); ok && hok {
				refs[name] = h
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	root := filepath.Join(gitDir, "refs")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tempPrefix) || strings.HasSuffix(d.Name(), ".lock") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if h, ok := parseHash(strings.TrimSpace(string(b))); ok {
			rel, _ := filepath.Rel(gitDir, path)
			refs[filepath.ToSlash(rel)] = h
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read refs: %w", err)
	}
	return refs, nil
}

// writeLooseRef durably writes the loose ref name (refs/...) and returns the
// directory that must be synced to make the rename durable.
func writeLooseRef(gitDir, name string, h Hash) (string, error) {
	path := filepath.Join(gitDir, filepath.FromSlash(name))
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := writeFileSync(path, []byte(h.String()+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write ref %s: %w", name, err)
	}
	return dir, nil
}

// deleteRef removes a ref, loose and packed.
func deleteRef(gitDir, name string) (string, error) {
	path := filepath.Join(gitDir, filepath.FromSlash(name))
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	packed := filepath.Join(gitDir, "packed-refs")
	b, err := os.ReadFile(packed)
	if errors.Is(err, os.ErrNotExist) {
		return filepath.Dir(path), nil
	} else if err != nil {
		return "", err
	}
	var out bytes.Buffer
	lines := strings.SplitAfter(string(b), "\n")
	changed := false
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if _, n, ok := strings.Cut(strings.TrimRight(l, "\n"), " "); ok && n == name && l[0] != '#' {
			changed = true
			// Skip a peeled line that belongs to it.
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "^") {
				i++
			}
			continue
		}
		out.WriteString(l)
	}
	if changed {
		if err := writeFileSync(packed, out.Bytes(), 0o644); err != nil {
			return "", err
		}
		if err := syncDir(gitDir); err != nil {
			return "", err
		}
	}
	return filepath.Dir(path), nil
}

// initBareRepo creates an empty bare repository at dir whose HEAD names
// refs/heads/main.
func initBareRepo(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		// A directory without HEAD: a repo an older version began in
		// place and a crash cut short. Complete it.
		return writeBareRepo(dir)
	}
	// Made aside and renamed into place, so that a crash never leaves a
	// directory that looks like a repo and is not one (the store removes
	// the temporary directory at its next open).
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, tempPrefix+filepath.Base(dir)+"-")
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := writeBareRepo(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return syncDir(parent)
}

// writeBareRepo writes an empty bare repository's files in dir, HEAD last:
// a directory with a HEAD is a whole repository.
func writeBareRepo(dir string) error {
	for _, d := range []string{"objects/pack", "objects/info", "refs/heads", "refs/tags"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	files := []struct{ name, content string }{
		{"config", "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n"},
		{"description", "gitstate repository\n"},
		{"HEAD", "ref: refs/heads/" + MainBranch + "\n"},
	}
	for i, f := range files {
		if i == len(files)-1 {
			// Everything before HEAD is on disk before HEAD is.
			for _, d := range []string{"objects/pack", "objects/info", "objects", "refs/heads", "refs/tags", "refs", "."} {
				if err := syncDir(filepath.Join(dir, d)); err != nil {
					return err
				}
			}
		}
		if err := writeFileSync(filepath.Join(dir, f.name), []byte(f.content), 0o644); err != nil {
			return err
		}
	}
	return syncDir(dir)
}
