// Package audit keeps gitstate's audit log: one JSON line (a
// wire.AuditEntry) per mutating request, denied request and secret read, in
// <data>/audit/audit.log. Every line is durable before the response to its
// request, in one of two ways:
//
//   - Record writes the line and fdatasyncs it before it returns;
//     concurrent records share one write and one fdatasync (group commit).
//   - A write to a repo carries its line in the commit's own journal record
//     (api.LineAuditor, storage.Batch.Note), made durable by the commit's
//     sync; the log is the store's storage.NoteSink: it appends the line
//     (Append, no sync of its own), syncs before the journal lets the record
//     go (Sync), and after a crash appends the replayed lines it does not
//     already hold (Recover). An acknowledged write then costs one sync,
//     not two.
//
// The file is rotated by size into audit-<UTC time>.log files, which are
// kept. Entries name identities, actions, repos and keys, never a value or
// a token.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
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

// recoverWindow is how much of the end of the log Recover reads to find
// the replayed lines it already holds. Replayed lines were appended after
// the journal's last checkpoint (at most about a second before a crash
// when the flusher keeps up), so they are near the end.
const recoverWindow = 16 << 20

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

	// mu guards the file: the writer goroutine's writes and syncs, and
	// the NoteSink methods'.
	mu sync.Mutex
	f  *os.File
	// size is the current file's size; synced, how much of it is known to
	// be durable.
	size, synced int64
	// unwritten holds notes an Append failed to write, for the next Append
	// or Sync.
	unwritten []byte
	// shut is set by Close: the file stays closed.
	shut bool

	// syncs counts the fdatasyncs, for tests of the group commit.
	syncs atomic.Int64
}

var (
	_ api.LineAuditor  = (*Log)(nil)
	_ api.AuditReader  = (*Log)(nil)
	_ storage.NoteSink = (*Log)(nil)
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
	l.f, l.size, l.synced = f, size, size
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

// Line returns ev's line, as Record would write it. It implements
// api.LineAuditor.
func (l *Log) Line(ev api.AuditEvent) ([]byte, error) {
	e := Entry(ev)
	if y := e.Time.Year(); y < 0 || y > 9999 {
		// Beyond what a JSON time holds: json.Marshal says why.
		line, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("audit record: %w", err)
		}
		return append(line, '\n'), nil
	}
	// A write's line is ~300 bytes: one allocation, not 256 bytes and
	// then 512 as it grows.
	return append(appendEntry(make([]byte, 0, 384), &e), '\n'), nil
}

// LineAt returns a function giving ev's line at a revision, as Line would
// with ev.Revision set. It implements api.LineAuditor. The entry is encoded
// once: the revision is the last field of a line, so the function only
// splices it in.
func (l *Log) LineAt(ev api.AuditEvent) (func(revision int64) []byte, error) {
	ev.Revision = 0
	line, err := l.Line(ev)
	if err != nil {
		return nil, err
	}
	head := line[:len(line)-2] // without "}\n"
	return func(rev int64) []byte {
		if rev == 0 {
			return line
		}
		b := make([]byte, 0, len(line)+32)
		b = append(b, head...)
		b = append(b, `,"revision":`...)
		b = strconv.AppendInt(b, rev, 10)
		return append(b, "}\n"...)
	}, nil
}

// Record appends ev and returns once it is on disk. It implements
// api.Auditor. It waits for the disk even when ctx is done: an answered
// request must have its line.
func (l *Log) Record(ctx context.Context, ev api.AuditEvent) error {
	line, err := l.Line(ev)
	if err != nil {
		return err
	}
	req := &request{line: line, done: make(chan error, 1)}
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
	l.mu.Lock()
	err := l.appendLocked(b)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	return l.syncUnlocked()
}

// syncUnlocked makes the current file durable up to its present size
// without holding l.mu during the fdatasync: the committer appends
// journaled lines under l.mu (Append) and must not wait for this sync.
// l.mu is not held.
func (l *Log) syncUnlocked() error {
	l.mu.Lock()
	if l.f == nil || l.synced == l.size {
		l.mu.Unlock()
		return nil
	}
	f, size := l.f, l.size
	l.mu.Unlock()
	err := fdatasync(f) // safe if f is closed meanwhile: see fdatasync
	l.mu.Lock()
	defer l.mu.Unlock()
	if f != l.f {
		// Rotated meanwhile: the rotation synced the whole file first.
		return nil
	}
	if err != nil {
		l.log.Error("audit log sync failed", "err", err)
		return fmt.Errorf("audit log sync: %w", err)
	}
	l.syncs.Add(1)
	l.synced = max(l.synced, size)
	if l.size >= l.opts.MaxSize {
		// Rare: sync what came since under the lock, and rotate.
		return l.syncLocked()
	}
	return nil
}

// appendLocked writes b (whole lines) at the end of the current file,
// after any notes an earlier Append failed to write. l.mu is held.
func (l *Log) appendLocked(b []byte) error {
	if l.shut {
		return ErrClosed
	}
	if len(l.unwritten) > 0 {
		b = append(l.unwritten, b...)
	}
	if l.f == nil {
		if err := l.reopen(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(b)
	if err != nil {
		// Cut a partial write off, so that later lines stay whole.
		if n > 0 {
			l.f.Truncate(l.size)
		}
		l.log.Error("audit log write failed", "err", err)
		return fmt.Errorf("audit log write: %w", err)
	}
	l.unwritten = nil
	l.size += int64(n)
	return nil
}

// syncLocked makes the current file durable, then rotates it if it has
// grown past the limit. l.mu is held.
func (l *Log) syncLocked() error {
	if l.f == nil {
		return nil
	}
	if l.synced != l.size {
		if err := fdatasync(l.f); err != nil {
			l.log.Error("audit log sync failed", "err", err)
			return fmt.Errorf("audit log sync: %w", err)
		}
		l.syncs.Add(1)
		l.synced = l.size
	}
	if l.size >= l.opts.MaxSize {
		if err := l.rotateFile(); err != nil {
			// The records are durable: report the failure, keep going.
			l.log.Error("audit log rotation failed", "err", err)
		}
	}
	return nil
}

// RecordLazily appends ev's line without syncing it: the next sync makes
// it durable (see api.LazyAuditor). It implements api.LazyAuditor.
func (l *Log) RecordLazily(ev api.AuditEvent) error {
	line, err := l.Line(ev)
	if err != nil {
		return err
	}
	return l.Append([][]byte{line})
}

// Append writes lines that a repo's journal has made durable (see the
// package comment), without syncing them. It implements storage.NoteSink.
// Lines it cannot write are kept for the next Append or Sync.
func (l *Log) Append(notes [][]byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	size := 0
	for _, n := range notes {
		size += len(n)
	}
	b := make([]byte, 0, size)
	for _, n := range notes {
		b = append(b, n...)
	}
	if err := l.appendLocked(b); err != nil {
		if len(l.unwritten) == 0 {
			l.unwritten = b
		} else if len(b) > 0 {
			l.unwritten = append(l.unwritten, b...)
		}
		return err
	}
	if l.size >= l.opts.MaxSize {
		// Rotating syncs the file first. A failure is logged, and the
		// next Sync tries again.
		l.syncLocked()
	}
	return nil
}

// Sync makes every line appended so far durable. It implements
// storage.NoteSink.
func (l *Log) Sync() error {
	l.mu.Lock()
	if len(l.unwritten) > 0 {
		if err := l.appendLocked(nil); err != nil {
			l.mu.Unlock()
			return err
		}
	}
	l.mu.Unlock()
	return l.syncUnlocked()
}

// Recover appends the lines of journal records replayed after a crash that
// the log does not hold yet, and syncs. It implements storage.NoteSink.
// A line counts as held when the same bytes end a line in the last
// recoverWindow bytes of the log (the current file, and the last rotated
// one when the current file is smaller than that).
func (l *Log) Recover(notes [][]byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	held, err := l.tailLines()
	if err != nil {
		return fmt.Errorf("audit log recover: %w", err)
	}
	var b []byte
	added := 0
	for _, n := range notes {
		if held[string(n)] {
			continue
		}
		held[string(n)] = true
		b = append(b, n...)
		added++
	}
	if added > 0 {
		l.log.Info("audit lines recovered from the journal", "lines", added, "already_held", len(notes)-added)
		if err := l.appendLocked(b); err != nil {
			return err
		}
	}
	return l.syncLocked()
}

// tailLines returns the lines (each with its newline) in the last
// recoverWindow bytes of the log. l.mu is held.
func (l *Log) tailLines() (map[string]bool, error) {
	held := map[string]bool{}
	read := func(path string, want int64) (int64, error) {
		f, err := os.Open(path)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return 0, err
		}
		off := max(fi.Size()-want, 0)
		buf := make([]byte, fi.Size()-off)
		if _, err := f.ReadAt(buf, off); err != nil {
			return 0, err
		}
		if off > 0 {
			// Skip the line cut by the window.
			if i := bytes.IndexByte(buf, '\n'); i >= 0 {
				buf = buf[i+1:]
			}
		}
		for len(buf) > 0 {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			held[string(buf[:i+1])] = true
			buf = buf[i+1:]
		}
		return fi.Size(), nil
	}
	n, err := read(filepath.Join(l.dir, FileName), recoverWindow)
	if err != nil {
		return nil, err
	}
	if n < recoverWindow {
		if last := l.lastRotated(); last != "" {
			if _, err := read(last, recoverWindow-n); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
		}
	}
	return held, nil
}

// lastRotated returns the path of the newest rotated file, or "".
func (l *Log) lastRotated() string {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return ""
	}
	last := ""
	for _, e := range ents {
		if _, ok := rotatedTime(e.Name()); ok && e.Name() > last {
			last = e.Name()
		}
	}
	if last == "" {
		return ""
	}
	return filepath.Join(l.dir, last)
}

// rotateFile renames the current file to audit-<now>.log and starts a new
// one, unless a query is reading the files. l.mu is held and the file is
// synced.
func (l *Log) rotateFile() error {
	// A query reading the files holds rotate for reading, maybe for a
	// second over a large file; l.mu is held, and with it the committer
	// appending a write's line (Append). Rather than wait, rotate at a
	// later write, when no query runs.
	if !l.rotate.TryLock() {
		return nil
	}
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
		l.mu.Lock()
		defer l.mu.Unlock()
		err = l.syncLocked()
		if len(l.unwritten) > 0 {
			err = errors.Join(err, fmt.Errorf("audit log: %d bytes of lines never written", len(l.unwritten)))
		}
		l.shut = true
		if l.f != nil {
			err = errors.Join(err, l.f.Close())
			l.f = nil
		}
	})
	return err
}

// fdatasync syncs f's data. It goes through f's RawConn, which holds the
// descriptor open while it runs: a rotation may close f concurrently (the
// sync then fails or syncs a file already synced) but can never have the
// descriptor reused under it.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = unix.Fdatasync(int(fd)); serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
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
