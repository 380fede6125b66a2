package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api"
)

func openTestLog(t *testing.T, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func event(i int, name, repo string, when time.Time) api.AuditEvent {
	return api.AuditEvent{
		Time:      when,
		RequestID: fmt.Sprintf("req-%04d", i),
		Principal: &api.Principal{TokenID: "id-" + name, Name: name},
		Remote:    "127.0.0.1:1234",
		Method:    "PUT",
		Route:     "/v1/repos/{repo}/kv/{key}",
		Action:    "kv.put",
		Repo:      repo,
		Keys:      []string{fmt.Sprintf("k%d", i)},
		Status:    200,
		Revision:  int64(i + 1),
	}
}

// TestGroupCommit: concurrent records all reach the file, whole, with
// fewer fdatasyncs than records.
func TestGroupCommit(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{})
	const n = 400
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Record(context.Background(), event(i, "alice", "default", time.Now())); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(b, []byte("\n")); lines != n {
		t.Errorf("%d lines, want %d", lines, n)
	}
	for i := range n {
		if !bytes.Contains(b, fmt.Appendf(nil, `"request_id":"req-%04d"`, i)) {
			t.Fatalf("record %d missing", i)
		}
	}
	if s := l.syncs.Load(); s >= n {
		t.Errorf("%d fdatasyncs for %d concurrent records: no group commit", s, n)
	} else {
		t.Logf("%d records, %d fdatasyncs", n, s)
	}
}

func TestRecordAfterClose(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(context.Background(), event(0, "a", "r", time.Now())); !errors.Is(err, ErrClosed) {
		t.Errorf("record after close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

// TestTornLastLine: a line cut by a crash is ended at the next open and
// skipped by queries; later records stay whole.
func TestTornLastLine(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{})
	l.Record(context.Background(), event(1, "a", "r", time.Now()))
	l.Close()
	f, _ := os.OpenFile(filepath.Join(dir, FileName), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2024-01-01T00:00:00Z","identity":"torn`)
	f.Close()
	l2 := openTestLog(t, dir, Options{})
	l2.Record(context.Background(), event(2, "a", "r", time.Now()))
	got, truncated, err := l2.QueryAudit(context.Background(), api.AuditQuery{Limit: 10})
	if err != nil || truncated || len(got) != 2 || got[0].RequestID != "req-0002" || got[1].RequestID != "req-0001" {
		t.Errorf("query after a torn line: %+v %v %v", got, truncated, err)
	}
}

func TestEntryBoundsKeys(t *testing.T) {
	ev := event(0, "a", "r", time.Time{})
	ev.Keys = make([]string, maxKeys+5)
	e := Entry(ev)
	if len(e.Keys) != maxKeys || e.KeysOmitted != 5 || e.Time.IsZero() {
		t.Errorf("entry of %d keys: %d listed, %d omitted, time %v", len(ev.Keys), len(e.Keys), e.KeysOmitted, e.Time)
	}
	if e := Entry(api.AuditEvent{Status: 401}); e.Identity != "" || e.TokenID != "" {
		t.Errorf("unauthenticated entry: %+v", e)
	}
}

// TestRotationAndQuery: rotation by size keeps every entry, and queries
// filter, order and cut across the files.
func TestRotationAndQuery(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{MaxSize: 1500})
	ctx := context.Background()
	base := time.Now().Add(-time.Hour)
	for i := range 60 {
		name, repo := "alice", "default"
		if i%3 == 0 {
			name = "bob"
		}
		if i%4 == 0 {
			repo = "other"
		}
		if err := l.Record(ctx, event(i, name, repo, base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	rotated, _ := filepath.Glob(filepath.Join(dir, "audit-*.log"))
	if len(rotated) < 3 {
		t.Fatalf("%d rotated files", len(rotated))
	}
	for _, f := range append(rotated, filepath.Join(dir, FileName)) {
		if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %04o", f, fi.Mode().Perm())
		}
	}

	all, truncated, err := l.QueryAudit(ctx, api.AuditQuery{Limit: 1000})
	if err != nil || truncated || len(all) != 60 {
		t.Fatalf("all: %d entries, truncated %v, %v", len(all), truncated, err)
	}
	for i, e := range all {
		if want := fmt.Sprintf("req-%04d", 59-i); e.RequestID != want {
			t.Fatalf("entry %d is %s, want %s (newest first)", i, e.RequestID, want)
		}
	}
	cases := []struct {
		q         api.AuditQuery
		n         int
		truncated bool
		first     string
	}{
		{api.AuditQuery{Limit: 5}, 5, true, "req-0059"},
		{api.AuditQuery{Identity: "bob", Limit: 100}, 20, false, "req-0057"},
		{api.AuditQuery{Identity: "bob", Repo: "other", Limit: 100}, 5, false, "req-0048"},
		{api.AuditQuery{Since: base.Add(50 * time.Second), Limit: 100}, 10, false, "req-0059"},
		{api.AuditQuery{Since: base.Add(50 * time.Second), Limit: 3}, 3, true, "req-0059"},
		{api.AuditQuery{Identity: "carol", Limit: 100}, 0, false, ""},
		{api.AuditQuery{Identity: "alic", Limit: 100}, 0, false, ""},
	}
	for _, c := range cases {
		got, truncated, err := l.QueryAudit(ctx, c.q)
		if err != nil || len(got) != c.n || truncated != c.truncated || (c.n > 0 && got[0].RequestID != c.first) {
			first := ""
			if len(got) > 0 {
				first = got[0].RequestID
			}
			t.Errorf("query %+v: %d entries (first %s), truncated %v, %v; want %d, %s, %v", c.q, len(got), first, truncated, err, c.n, c.first, c.truncated)
		}
	}
	// Entries come back exactly as recorded.
	got, _, _ := l.QueryAudit(ctx, api.AuditQuery{Limit: 1})
	want := Entry(event(59, "alice", "default", base.Add(59*time.Second)))
	if got[0].RequestID != want.RequestID || got[0].Revision != want.Revision || got[0].TokenID != want.TokenID ||
		!got[0].Time.Equal(want.Time) || got[0].Keys[0] != want.Keys[0] || got[0].Route != want.Route {
		t.Errorf("entry %+v, want %+v", got[0], want)
	}
}

// TestQueryDuringWrites: queries running while records are written and
// files rotate see whole entries only, never one twice.
func TestQueryDuringWrites(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{MaxSize: 4096})
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 300 {
			l.Record(ctx, event(i, "alice", "default", time.Now()))
		}
	}()
	for range 30 {
		got, _, err := l.QueryAudit(ctx, api.AuditQuery{Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range got {
			if seen[e.RequestID] {
				t.Fatalf("entry %s seen twice", e.RequestID)
			}
			seen[e.RequestID] = true
		}
	}
	wg.Wait()
}

// BenchmarkRecord measures a durable audit record, alone and with 64
// concurrent writers sharing fdatasyncs.
func BenchmarkRecord(b *testing.B) {
	for _, par := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", par), func(b *testing.B) {
			l, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ev := event(1, "alice", "default", time.Now())
			b.ReportAllocs()
			b.SetParallelism(par)
			start := l.syncs.Load()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Record(context.Background(), ev); err != nil {
						b.Error(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/float64(l.syncs.Load()-start), "records/sync")
		})
	}
}

// TestLineAt: a line encoded ahead of its revision is the line Record
// writes at that revision.
func TestLineAt(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	now := time.Now()
	for _, ev := range []api.AuditEvent{
		event(1, "alice", "default", now),
		{Time: now, Action: "kv.delete", Method: "DELETE", Route: "/r", Status: 200, RequestID: `odd "id" }`, Keys: []string{"a}b"}},
	} {
		at, err := l.LineAt(ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, rev := range []int64{0, 1, 42, 1 << 40} {
			ev.Revision = rev
			want, err := l.Line(ev)
			if err != nil {
				t.Fatal(err)
			}
			if got := at(rev); !bytes.Equal(got, want) {
				t.Errorf("revision %d: %s, want %s", rev, got, want)
			}
		}
	}
}

// TestRecordLazily: a lazily recorded event is in the log at once (queries
// see it) without a sync of its own, the next Record's sync covers it, and
// a reopened log holds it.
func TestRecordLazily(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{})
	now := time.Now()
	syncs := l.syncs.Load()
	if err := l.RecordLazily(event(0, "busy", "default", now)); err != nil {
		t.Fatal(err)
	}
	if got := l.syncs.Load(); got != syncs {
		t.Errorf("RecordLazily synced (%d syncs, was %d)", got, syncs)
	}
	if err := l.Record(context.Background(), event(1, "alice", "default", now)); err != nil {
		t.Fatal(err)
	}
	if got := l.syncs.Load(); got != syncs+1 {
		t.Errorf("%d syncs after one Record, want %d", got, syncs+1)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, Options{})
	got, _, err := l.QueryAudit(context.Background(), api.AuditQuery{})
	if err != nil || len(got) != 2 || got[0].RequestID != "req-0001" || got[1].RequestID != "req-0000" {
		t.Fatalf("reopened log: %+v, %v; want the other line, then (older) the lazy one", got, err)
	}
}

// TestNotes: lines appended as a store's notes are in the file at once
// (queries see them), cost no sync until Sync, and Recover appends only the
// replayed lines the log does not already end with, across a rotation.
func TestNotes(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{MaxSize: 4 << 10})
	now := time.Now()
	var lines [][]byte
	for i := range 30 {
		b, err := l.Line(event(i, "alice", "default", now))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, b)
	}
	syncs := l.syncs.Load()
	if err := l.Append(lines[:2]); err != nil {
		t.Fatal(err)
	}
	if got := l.syncs.Load(); got != syncs {
		t.Errorf("Append synced (%d syncs, was %d)", got, syncs)
	}
	got, _, err := l.QueryAudit(context.Background(), api.AuditQuery{})
	if err != nil || len(got) != 2 || got[0].RequestID != "req-0001" {
		t.Fatalf("query after Append: %d entries, %v", len(got), err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := l.syncs.Load(); got != syncs+1 {
		t.Errorf("%d syncs after Sync, want %d", got, syncs+1)
	}
	if err := l.Sync(); err != nil || l.syncs.Load() != syncs+1 {
		t.Errorf("a Sync with nothing new synced again (%v)", err)
	}
	// Enough lines to rotate (4 KiB): Append rotates, syncing first.
	for _, b := range lines[2:20] {
		if err := l.Append([][]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	rotated, _ := filepath.Glob(filepath.Join(dir, "audit-*.log"))
	if len(rotated) == 0 {
		t.Fatal("no rotation")
	}
	// A replay hands over lines 10..29: 10..19 are held (some in the
	// rotated file), 20..29 are not.
	if err := l.Recover(lines[10:]); err != nil {
		t.Fatal(err)
	}
	all, _, err := l.QueryAudit(context.Background(), api.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range all {
		count[e.RequestID]++
	}
	for i := range 30 {
		if id := fmt.Sprintf("req-%04d", i); count[id] != 1 {
			t.Errorf("%s: %d lines, want 1", id, count[id])
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(lines[:1]); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
}

// TestRotationWaitsForQueries: a line appended while a query reads the
// files is not held up by the rotation it makes due; the rotation happens
// at a later write.
func TestRotationWaitsForQueries(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{MaxSize: 1 << 10})
	line, err := l.Line(event(1, "alice", "default", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	l.rotate.RLock() // a query in progress
	done := make(chan error, 1)
	go func() {
		var err error
		for range 10 { // past the 1 KiB limit
			err = errors.Join(err, l.Append([][]byte{line}))
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Append waited for a query to end")
	}
	l.rotate.RUnlock()
	if rotated, _ := filepath.Glob(filepath.Join(dir, "audit-*.log")); len(rotated) != 0 {
		t.Fatalf("rotated during a query: %v", rotated)
	}
	if err := l.Append([][]byte{line}); err != nil {
		t.Fatal(err)
	}
	if rotated, _ := filepath.Glob(filepath.Join(dir, "audit-*.log")); len(rotated) != 1 {
		t.Fatalf("%d rotated files after the query ended, want 1", len(rotated))
	}
}
