// Package audit keeps gitstate's audit log: one JSON line (a
// wire.AuditEntry) per mutating request, denied request and secret read, in
// <data>/audit/audit.log. A record is on disk (written and fdatasync'd)
// before Record returns, and so before the response; concurrent records
// share one write and one fdatasync (group commit). The file is rotated by
// size into audit-<UTC time>.log files, which are kept. Entries name
// identities, actions, repos and keys, never a value or a token.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/api/wire"
)

// FileName is the current audit file in the log's directory.
const FileName = "audit.log"

// rotatedLayout names rotated files: audit-<layout>.log, in UTC, so that
// names sort by time.
const rotatedLayout = "20060102T150405.000000000Z"

// DefaultMaxSize is the size past which the current file is rotated.
const DefaultMaxSize = 100 << 20

// maxKeys bounds the keys one entry lists; the rest are counted.
const maxKeys = 1000

// maxBatch bounds the records one write and fdatasync carry.
const maxBatch = 1024

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit log closed")

// Options configures a Log.
type Options struct {
	// MaxSize is the size in bytes past which the current file is rotated
	// (default DefaultMaxSize).
	MaxSize int64
	// Logger receives rotation and failure logs (default: discarded).
	Logger *slog.Logger
}

// Log is an append-only audit log. It implements api.Auditor and
// api.AuditReader and is safe for concurrent use. Open starts its writer
// goroutine; Close stops it.
type Log struct {
	dir  string
	opts Options
	log  *slog.Logger

	reqs    chan *request
	closing chan struct{}
	done    chan struct{}
	close   sync.Once

	// rotate is held for writing while the current file is renamed, and
	// for reading while a query opens the files, so that a query sees
	// every entry exactly once.
	rotate sync.RWMutex

	// Owned by the writer goroutine (and Open before it starts).
	f    *os.File
	size int64

	// syncs counts the fdatasyncs, for tests of the group commit.
	syncs atomic.Int64
}

var (
	_ api.Auditor     = (*Log)(nil)
	_ api.AuditReader = (*Log)(nil)
)

// request is one record waiting for the writer.
type request struct {
	line []byte
	done chan error
}

// Open opens (creating, mode 0700) the audit log in dir and starts its
// writer.
func Open(dir string, opts Options) (*Log, error) {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := &Log{
		dir:     dir,
		opts:    opts,
		log:     opts.Logger,
		reqs:    make(chan *request),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := l.openCurrent(); err != nil {
		return nil, err
	}
	go l.run()
	return l, nil
}

// openCurrent opens the current file for appending. A last line cut short
// by a crash is ended, so that the next entry starts on its own line.
func (l *Log) openCurrent() error {
	path := filepath.Join(l.dir, FileName)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	size := fi.Size()
	if size > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], size-1); err != nil {
			f.Close()
			return fmt.Errorf("audit log: %w", err)
		}
		if last[0] != '\n' {
			if _, err := f.Write([]byte{'\n'}); err != nil {
				f.Close()
				return fmt.Errorf("audit log: %w", err)
			}
			size++
		}
	}
	if statErr != nil {
		// A new file: make its directory entry durable too.
		if err := syncDir(l.dir); err != nil {
			f.Close()
			return fmt.Errorf("audit log: %w", err)
		}
	}
	l.f, l.size = f, size
	return nil
}

// Entry returns the audit entry of an event. Keys past the first 1,000 are
// counted, not listed.
func Entry(ev api.AuditEvent) wire.AuditEntry {
	e := wire.AuditEntry{
		Time:      ev.Time.UTC(),
		Remote:    ev.Remote,
		Action:    ev.Action,
		Method:    ev.Method,
		Route:     ev.Route,
		Repo:      ev.Repo,
		Keys:      ev.Keys,
		Target:    ev.Target,
		Status:    ev.Status,
		RequestID: ev.RequestID,
		Revision:  ev.Revision,
	}
	if ev.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if ev.Principal != nil {
		e.Identity = ev.Principal.Name
		e.TokenID = ev.Principal.TokenID
	}
	if len(e.Keys) > maxKeys {
		e.KeysOmitted = len(e.Keys) - maxKeys
		e.Keys = e.Keys[:maxKeys]
	}
	return e
}

// Record appends ev and returns once it is on disk. It implements
// api.Auditor. It waits for the disk even when ctx is done: an answered
// request must have its line.
func (l *Log) Record(ctx context.Context, ev api.AuditEvent) error {
	line, err := json.Marshal(Entry(ev))
	if err != nil {
		return fmt.Errorf("audit record: %w", err)
	}
	req := &request{line: append(line, '\n'), done: make(chan error, 1)}
	select {
	case l.reqs <- req:
	case <-l.closing:
		return ErrClosed
	}
	return <-req.done
}

// run is the writer: it takes every record waiting, writes them with one
// write and one fdatasync, and answers them.
func (l *Log) run() {
	defer close(l.done)
	batch := make([]*request, 0, 64)
	var buf []byte
	for {
		batch = batch[:0]
		select {
		case req := <-l.reqs:
			batch = append(batch, req)
		case <-l.closing:
			// Records blocked in Record when Close began may still be
			// taken; every later one sees closing.
			for {
				select {
				case req := <-l.reqs:
					req.done <- l.write([]*request{req}, &buf)
				default:
					return
				}
			}
		}
	more:
		for len(batch) < maxBatch {
			select {
			case req := <-l.reqs:
				batch = append(batch, req)
			default:
				break more
			}
		}
		err := l.write(batch, &buf)
		for _, req := range batch {
			req.done <- err
		}
	}
}

// write appends a batch of lines and syncs them, then rotates the file if
// it has grown past the limit.
func (l *Log) write(batch []*request, buf *[]byte) error {
	b := (*buf)[:0]
	for _, req := range batch {
		b = append(b, req.line...)
	}
	*buf = b
	if l.f == nil {
		if err := l.reopen(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(b)
	if err == nil {
		err = fdatasync(l.f)
		l.syncs.Add(1)
	}
	if err != nil {
		// Cut a partial write off, so that later lines stay whole.
		if n > 0 {
			l.f.Truncate(l.size)
		}
		l.log.Error("audit log write failed", "err", err)
		return fmt.Errorf("audit log write: %w", err)
	}
	l.size += int64(n)
	if l.size >= l.opts.MaxSize {
		if err := l.rotateFile(); err != nil {
			// The records are durable: report the failure, keep going.
			l.log.Error("audit log rotation failed", "err", err)
		}
	}
	return nil
}

// rotateFile renames the current file to audit-<now>.log and starts a new
// one.
func (l *Log) rotateFile() error {
	l.rotate.Lock()
	defer l.rotate.Unlock()
	cur := filepath.Join(l.dir, FileName)
	name := rotatedName(time.Now())
	for i := 0; fileExists(filepath.Join(l.dir, name)); i++ {
		name = rotatedName(time.Now().Add(time.Duration(i+1) * time.Nanosecond))
	}
	if err := l.f.Close(); err != nil {
		l.log.Warn("audit log close", "err", err)
	}
	l.f = nil
	if err := os.Rename(cur, filepath.Join(l.dir, name)); err != nil {
		// Keep appending to the file as it is.
		return errors.Join(err, l.reopenLocked())
	}
	if err := l.reopenLocked(); err != nil {
		return err
	}
	l.log.Info("audit log rotated", "file", filepath.Join(l.dir, name))
	return nil
}

func (l *Log) reopen() error {
	l.rotate.Lock()
	defer l.rotate.Unlock()
	return l.reopenLocked()
}

func (l *Log) reopenLocked() error {
	if err := l.openCurrent(); err != nil {
		l.f = nil
		return err
	}
	return nil
}

func rotatedName(t time.Time) string {
	return "audit-" + t.UTC().Format(rotatedLayout) + ".log"
}

// rotatedTime returns the time in a rotated file's name.
func rotatedTime(name string) (time.Time, bool) {
	s, ok := strings.CutPrefix(name, "audit-")
	if !ok {
		return time.Time{}, false
	}
	s, ok = strings.CutSuffix(s, ".log")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(rotatedLayout, s)
	return t, err == nil
}

// Close stops the writer after the records in flight and closes the file.
// Record fails with ErrClosed afterwards.
func (l *Log) Close() error {
	var err error
	l.close.Do(func() {
		close(l.closing)
		<-l.done
		if l.f != nil {
			err = l.f.Close()
			l.f = nil
		}
	})
	return err
}

func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
