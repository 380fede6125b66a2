package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/api/wire"
)

// file is one audit file opened for a query, read up to size: the part
// that was there when the query began.
type file struct {
	name string
	f    *os.File
	size int64
}

// QueryAudit returns the entries matching q, newest first, from the
// current file and the rotated ones. It implements api.AuditReader.
func (l *Log) QueryAudit(ctx context.Context, q api.AuditQuery) ([]wire.AuditEntry, bool, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	files, err := l.openFiles()
	if err != nil {
		return nil, false, err
	}
	defer func() {
		for _, f := range files {
			f.f.Close()
		}
	}()
	var out []wire.AuditEntry
	for _, f := range files {
		if t, ok := rotatedTime(f.name); ok && !q.Since.IsZero() && t.Before(q.Since) {
			// Every entry of this file, and of the older ones, is older
			// than its rotation.
			break
		}
		// Keep one more than needed, to know whether the list is cut.
		need := q.Limit + 1 - len(out)
		got, err := scanFile(ctx, f, q, need)
		if err != nil {
			return nil, false, err
		}
		out = append(out, got...)
		if len(out) > q.Limit {
			return out[:q.Limit], true, nil
		}
	}
	return out, false, nil
}

// openFiles opens the current file and the rotated ones, newest first.
func (l *Log) openFiles() ([]file, error) {
	l.rotate.RLock()
	defer l.rotate.RUnlock()
	des, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("audit query: %w", err)
	}
	names := []string{FileName}
	var rotated []string
	for _, de := range des {
		if _, ok := rotatedTime(de.Name()); ok {
			rotated = append(rotated, de.Name())
		}
	}
	slices.Sort(rotated)
	slices.Reverse(rotated)
	names = append(names, rotated...)
	var files []file
	for _, name := range names {
		f, err := os.Open(filepath.Join(l.dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			for _, o := range files {
				o.f.Close()
			}
			return nil, fmt.Errorf("audit query: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			for _, o := range files {
				o.f.Close()
			}
			return nil, fmt.Errorf("audit query: %w", err)
		}
		files = append(files, file{name: name, f: f, size: fi.Size()})
	}
	return files, nil
}

// scanFile returns the newest n entries of f matching q, newest first.
func scanFile(ctx context.Context, f file, q api.AuditQuery, n int) ([]wire.AuditEntry, error) {
	// A ring of the last n matches.
	ring := make([]wire.AuditEntry, 0, min(n, 1024))
	next := 0
	var identity, repo []byte
	if q.Identity != "" {
		identity, _ = json.Marshal(q.Identity)
	}
	if q.Repo != "" {
		repo, _ = json.Marshal(q.Repo)
	}
	br := bufio.NewReaderSize(io.LimitReader(f.f, f.size), 64<<10)
	for lineNo := 0; ; lineNo++ {
		if lineNo%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			// A last line without its newline is being written: skip it.
			break
		}
		if err != nil {
			return nil, fmt.Errorf("audit query %s: %w", f.name, err)
		}
		// Cheap filters first: the quoted value must appear in the line.
		if identity != nil && !bytes.Contains(line, identity) {
			continue
		}
		if repo != nil && !bytes.Contains(line, repo) {
			continue
		}
		var e wire.AuditEntry
		if err := json.Unmarshal(line, &e); err != nil {
			continue
		}
		if (q.Identity != "" && e.Identity != q.Identity) || (q.Repo != "" && e.Repo != q.Repo) {
			continue
		}
		if !q.Since.IsZero() && e.Time.Before(q.Since) {
			continue
		}
		if len(ring) < n {
			ring = append(ring, e)
			continue
		}
		ring[next] = e
		next = (next + 1) % n
	}
	// Oldest first is ring[next:] then ring[:next]; return newest first.
	out := make([]wire.AuditEntry, 0, len(ring))
	out = append(out, ring[next:]...)
	out = append(out, ring[:next]...)
	slices.Reverse(out)
	return out, nil
}
