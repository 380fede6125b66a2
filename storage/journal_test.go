package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// lazyFlush keeps writes in the journal only: the flusher waits an hour
// before it writes packs and refs (unless FSOptions.FlushBytes wait).
func lazyFlush(o *Options) {
	o.FS.FlushDelay = time.Hour
	o.FS.IdleFlush = time.Hour
}

// crashStore abandons s as a kill -9 would: the committers and flushers
// stop where they are, nothing more reaches Git's files, and the journal is
// closed without a sync or a checkpoint. Only the index is closed properly,
// because pebble refuses a second open of a directory in the same process
// (a killed process's index is tested by TestKill9 and index_test.go), and
// the data directory's lock released, as the kernel does.
func crashStore(t testing.TB, s *Store) {
	t.Helper()
	s.mu.Lock()
	repos := s.repos
	s.repos = map[string]*Repo{}
	s.mu.Unlock()
	for _, r := range repos {
		if r == nil {
			continue
		}
		r.cancel()
		r.wg.Wait()
		fb := r.be.(*FSBackend)
		fb.closeOnce.Do(func() {
			fb.cancel()
			<-fb.done
			fb.jnl.close()
			fb.mu.Lock()
			fb.closePacks()
			fb.packs = nil
			fb.mu.Unlock()
		})
	}
	if err := s.ix.Close(); err != nil {
		t.Fatal(err)
	}
	// The kernel releases a killed process's lock on the data directory.
	if err := s.lock.unlock(); err != nil {
		t.Fatal(err)
	}
	s.lock = nil
}

// reopenTestStore opens the store in dir and checks it at cleanup as
// newTestStore does.
func reopenTestStore(t testing.TB, dir string, opts ...func(*Options)) *Store {
	t.Helper()
	s := openTestStore(t, dir, opts...)
	t.Cleanup(func() {
		if s.repos != nil {
			checkStore(t, s)
		}
	})
	return s
}

func journalDir(s *Store, repo string) string {
	return filepath.Join(s.repoDir(repo), "gitstate", "journal")
}

// segments returns the paths of a journal's segments, oldest first.
func segments(t testing.TB, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(segs)
	return segs
}

// readRecords parses a segment independently of journal.go: every record
// must be whole and its checksum right, and only zeros (the preallocated
// rest of the segment) may follow the last one.
func readRecords(b []byte) ([][]byte, error) {
	recs, _, err := readRecordsEnd(b)
	return recs, err
}

// readRecordsEnd is readRecords, also returning where the records end.
func readRecordsEnd(b []byte) ([][]byte, int, error) {
	var out [][]byte
	off := 0
	for off < len(b) {
		if !slices.ContainsFunc(b[off:], func(c byte) bool { return c != 0 }) {
			break // the preallocated end
		}
		if len(b)-off < 8 {
			return out, off, fmt.Errorf("short header at %d", off)
		}
		n := int(binary.BigEndian.Uint32(b[off:]))
		sum := binary.BigEndian.Uint32(b[off+4:])
		if n == 0 || len(b)-off-8 < n {
			return out, off, fmt.Errorf("bad length %d at %d", n, off)
		}
		p := b[off+8 : off+8+n]
		if crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)) != sum {
			return out, off, fmt.Errorf("bad checksum at %d", off)
		}
		out = append(out, p)
		off += 8 + n
	}
	return out, off, nil
}

// encodeRecord frames a payload as the journal does.
func encodeRecord(payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	return append(b, payload...)
}

type written struct {
	key, value string
	rev        int64
}

// writeSome makes n commits, each putting one new key, and returns them.
func writeSome(t testing.TB, r *Repo, tag string, n int) []written {
	t.Helper()
	var out []written
	for i := range n {
		w := written{key: fmt.Sprintf("%s/%02d", tag, i), value: fmt.Sprintf("%s value %d", tag, i)}
		w.rev = put(t, r, w.key, w.value).Revision
		out = append(out, w)
	}
	return out
}

func checkWritten(t testing.TB, r *Repo, ws []written) {
	t.Helper()
	for _, w := range ws {
		if got := get(t, r, w.key, 0); got != w.value {
			t.Errorf("%s at head = %q, want %q", w.key, got, w.value)
		}
		if got := get(t, r, w.key, w.rev); got != w.value {
			t.Errorf("%s at %d = %q, want %q", w.key, w.rev, got, w.value)
		}
	}
}

func TestJournalReplayAfterCrash(t *testing.T) {
	for _, tc := range []struct {
		name      string
		flushed   int  // commits written to Git's files before the crash
		dropIndex bool // the index is lost too
	}{
		{name: "nothing flushed", flushed: 0},
		{name: "some flushed", flushed: 4},
		{name: "nothing flushed, index lost", flushed: 0, dropIndex: true},
		{name: "some flushed, index lost", flushed: 4, dropIndex: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := openTestStore(t, dir, lazyFlush)
			r := defaultRepo(t, s)
			other, err := s.CreateRepo(ctx, "other")
			if err != nil {
				t.Fatal(err)
			}
			ws := writeSome(t, r, "early", tc.flushed)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			flushedHead := r.Head().Commit
			ws = append(ws, writeSome(t, r, "late", 6)...)
			// A move and a delete, which a replay must not lose either.
			res, err := r.WriteOne(ctx, &Batch{Ops: []Op{
				{Kind: OpMove, From: "late/00", Key: "moved/00"},
				{Kind: OpDelete, Key: "late/01", MustExist: true},
			}})
			if err != nil {
				t.Fatal(err)
			}
			// ws[flushed] is late/00, ws[flushed+1] late/01.
			ws[tc.flushed] = written{key: "moved/00", value: ws[tc.flushed].value, rev: res.Revision}
			ws = slices.Delete(ws, tc.flushed+1, tc.flushed+2)
			ows := writeSome(t, other, "o", 3)
			head := r.Head()
			crashStore(t, s)

			// Git has not seen what was only in the journal.
			repo := s.repoDir(DefaultRepo)
			if got := gitRef(t, repo, "refs/heads/main"); got != flushedHead {
				t.Fatalf("before reopen, git has main at %s, want %s (what was flushed)", got, flushedHead)
			}
			if got := gitRef(t, s.repoDir("other"), "refs/heads/main"); !got.IsZero() {
				t.Fatalf("before reopen, git has other's main at %s", got)
			}
			if tc.dropIndex {
				if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
					t.Fatal(err)
				}
			}

			s2 := reopenTestStore(t, dir)
			r2 := defaultRepo(t, s2)
			if got := r2.Head(); got != head {
				t.Fatalf("head after reopen %+v, want %+v", got, head)
			}
			checkWritten(t, r2, ws)
			if _, err := r2.Get(ctx, "late/01", 0); err == nil {
				t.Error("late/01 was deleted before the crash but is back")
			}
			o2, err := s2.Repo("other")
			if err != nil {
				t.Fatal(err)
			}
			checkWritten(t, o2, ows)

			// Git's own files hold it all as soon as Open returns.
			if got := gitRef(t, repo, "refs/heads/main"); got != head.Commit {
				t.Errorf("after reopen, git has main at %s, want %s", got, head.Commit)
			}
			gitFsck(t, repo)
			gitFsck(t, s2.repoDir("other"))
			if n := strings.Count(git(t, repo, "log", "--format=%H", "main"), "\n"); int64(n) != head.Revision {
				t.Errorf("git log shows %d commits, want %d", n, head.Revision)
			}
			for _, w := range ws {
				if got := git(t, repo, "show", "main:"+w.key); got != w.value {
					t.Errorf("git show main:%s = %q, want %q", w.key, got, w.value)
				}
			}
		})
	}
}

// gitRef returns what git itself says a ref is (ZeroHash when it does not
// exist).
func gitRef(t testing.TB, repo, ref string) Hash {
	t.Helper()
	out, err := execGit(repo, "rev-parse", "--verify", "-q", ref)
	if err != nil {
		return ZeroHash
	}
	h, ok := parseHash(strings.TrimSpace(out))
	if !ok {
		t.Fatalf("git rev-parse %s: %q", ref, out)
	}
	return h
}

func TestJournalTornTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail func(last []byte) []byte // from the segment's last record
	}{
		{"garbage", func([]byte) []byte { return []byte("\x13\x37 this is not a record, it is noise \xff\xfe") }},
		{"half a record", func(last []byte) []byte { return last[:len(last)/2] }},
		{"header only", func(last []byte) []byte { return last[:8] }},
		{"part of a header", func(last []byte) []byte { return last[:5] }},
		{"zeros", func([]byte) []byte { return make([]byte, 4096) }},
		{"huge length", func([]byte) []byte { return []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1} }},
		{"whole record, bad checksum", func(last []byte) []byte {
			b := slices.Clone(last)
			b[len(b)-1] ^= 0x40
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestStore(t, dir, lazyFlush)
			ws := writeSome(t, defaultRepo(t, s), "before", 5)
			jdir := journalDir(s, DefaultRepo)
			crashStore(t, s)

			segs := segments(t, jdir)
			last := segs[len(segs)-1]
			data, err := os.ReadFile(last)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := readRecords(data)
			if err != nil || len(recs) < 5 {
				t.Fatalf("journal before the tear: %d records, %v", len(recs), err)
			}
			writeAfterRecords(t, last, tc.tail(encodeRecord(recs[len(recs)-1])))

			// Open cuts the tail: what was acknowledged is there, and the
			// segment parses to its end again.
			s = openTestStore(t, dir, lazyFlush)
			r := defaultRepo(t, s)
			checkWritten(t, r, ws)
			if h := r.Head().Revision; h != 5 {
				t.Errorf("head at %d after the torn tail, want 5", h)
			}
			if data, err := os.ReadFile(last); err != nil {
				t.Fatal(err)
			} else if _, err := readRecords(data); err != nil {
				t.Fatalf("the torn tail is still in %s: %v", last, err)
			}
			// Later writes follow whole records, so a second crash loses
			// nothing either.
			ws = append(ws, writeSome(t, r, "after", 5)...)
			crashStore(t, s)
			s = reopenTestStore(t, dir)
			checkWritten(t, defaultRepo(t, s), ws)
		})
	}
}

// writeAfterRecords writes b right after the last record of a segment, as
// a write torn by a crash would have left it.
func writeAfterRecords(t testing.TB, path string, b []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, end, err := readRecordsEnd(data)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, int64(end)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// handGroup encodes, without journal.go, a group record that commits
// key=value on top of parent (a commit whose tree is parentTree).
func handGroup(parent Hash, parentTree *Tree, key, value string) (payload []byte, commit Hash, tree *Tree) {
	blob := NewObject(BlobObject, []byte(value))
	tree = &Tree{Entries: append(slices.Clone(parentTree.Entries), TreeEntry{Name: key, Mode: ModeFile, Hash: blob.Hash})}
	sortTree(tree.Entries)
	to := NewObject(TreeObject, tree.Encode())
	c := &Commit{Tree: to.Hash, Message: "put " + key + "\n",
		Author:    Signature{Name: "hand", Email: "hand@example.com", When: time.Unix(1700000000, 0).UTC()},
		Committer: Signature{Name: "hand", Email: "hand@example.com", When: time.Unix(1700000000, 0).UTC()}}
	if !parent.IsZero() {
		c.Parents = []Hash{parent}
	}
	co := NewObject(CommitObject, c.Encode())
	b := []byte{recGroup}
	b = binary.AppendUvarint(b, 3)
	for _, o := range []*Object{blob, to, co} {
		b = append(b, byte(o.Type))
		b = binary.AppendUvarint(b, uint64(len(o.Data)))
		b = append(b, o.Data...)
	}
	b = binary.AppendUvarint(b, 1)
	b = binary.AppendUvarint(b, uint64(len(mainRef)))
	b = append(b, mainRef...)
	b = append(b, parent[:]...)
	b = append(b, co.Hash[:]...)
	return b, co.Hash, tree
}

// TestJournalCorruptSegment builds a two-segment journal by hand and damages
// it: damage in a segment that is not the last one cannot be a torn write
// and must stop Open; a bad record at the very end is a torn tail and is cut.
func TestJournalCorruptSegment(t *testing.T) {
	// Segment 1: a, b. Segment 2: c.
	pa, ca, ta := handGroup(ZeroHash, &Tree{}, "a", "A")
	pb, cb, tb := handGroup(ca, ta, "b", "B")
	pc, _, _ := handGroup(cb, tb, "c", "C")
	for _, tc := range []struct {
		name    string
		damage  func(seg1, seg2 []byte) ([]byte, []byte)
		wantErr bool
		keys    string // the keys at head when Open succeeds
	}{
		{"intact", func(s1, s2 []byte) ([]byte, []byte) { return s1, s2 }, false, "a b c"},
		{"checksum of the last record of segment 1", func(s1, s2 []byte) ([]byte, []byte) {
			s1 = slices.Clone(s1)
			s1[len(encodeRecord(pa))+5] ^= 1
			return s1, s2
		}, true, ""},
		{"payload of the first record of segment 1", func(s1, s2 []byte) ([]byte, []byte) {
			s1 = slices.Clone(s1)
			s1[40] ^= 0x80
			return s1, s2
		}, true, ""},
		{"segment 1 cut short", func(s1, s2 []byte) ([]byte, []byte) { return s1[:len(s1)-7], s2 }, true, ""},
		{"garbage after segment 1", func(s1, s2 []byte) ([]byte, []byte) {
			return append(slices.Clone(s1), "garbage"...), s2
		}, true, ""},
		{"torn tail of segment 2", func(s1, s2 []byte) ([]byte, []byte) { return s1, s2[:len(s2)-7] }, false, "a b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestStore(t, dir)
			jdir := journalDir(s, DefaultRepo)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			for _, p := range segments(t, jdir) {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
			seg1 := append(encodeRecord(pa), encodeRecord(pb)...)
			seg2 := encodeRecord(pc)
			seg1, seg2 = tc.damage(seg1, seg2)
			for name, b := range map[string][]byte{segmentName(1): seg1, segmentName(2): seg2} {
				if err := os.WriteFile(filepath.Join(jdir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}

			_, _, jerr := openJournal(jdir, nil)
			if tc.wantErr {
				if jerr == nil || !strings.Contains(jerr.Error(), segmentName(1)) {
					t.Fatalf("openJournal: %v, want an error naming segment 1", jerr)
				}
				s, err := Open(context.Background(), dir, Options{})
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded on a corrupt journal")
				}
				if !strings.Contains(err.Error(), segmentName(1)) {
					t.Errorf("Open: %v, want an error naming segment 1", err)
				}
				return
			}
			if jerr != nil {
				t.Fatalf("openJournal: %v", jerr)
			}
			s = reopenTestStore(t, dir)
			r := defaultRepo(t, s)
			res, err := r.List(context.Background(), ListOptions{Values: true})
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, it := range res.Items {
				keys = append(keys, it.Key)
				if want := strings.ToUpper(it.Key); string(it.Value) != want {
					t.Errorf("%s = %q, want %q", it.Key, it.Value, want)
				}
			}
			if got := strings.Join(keys, " "); got != tc.keys {
				t.Errorf("keys %q, want %q", got, tc.keys)
			}
		})
	}
}

// execGit runs git and returns its output, without failing the test.
func execGit(dir string, args ...string) (string, error) {
	out, err := gitCmd(dir, args...).Output()
	if err != nil {
		var ee interface{ ExitCode() int }
		if errors.As(err, &ee) {
			return string(out), fmt.Errorf("git %s: exit %d", strings.Join(args, " "), ee.ExitCode())
		}
	}
	return string(out), err
}

func gitCmd(dir string, args ...string) *exec.Cmd {
	return exec.Command("git", append([]string{"-C", dir}, args...)...)
}

// TestJournalRotation writes past a segment's size: the journal goes on in
// a second segment, a replay reads both, and the checkpoint after it
// removes the first.
func TestJournalRotation(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("writes 70 MiB: 2s, 15s under the race detector (and the flusher, the only other goroutine, is off)")
	}
	dir := t.TempDir()
	// Nothing reaches Git's files, however many bytes wait.
	s := openTestStore(t, dir, lazyFlush, func(o *Options) { o.FS.FlushBytes = 1 << 30 })
	r := defaultRepo(t, s)
	jdir := journalDir(s, DefaultRepo)
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	var ws []written
	for i := 0; len(segments(t, jdir)) < 2; i++ {
		if i == journalSegmentSize>>20+8 {
			t.Fatalf("no second segment after %d MiB", i)
		}
		w := written{key: fmt.Sprintf("big/%03d", i), value: fmt.Sprintf("%03d", i) + big[3:]}
		w.rev = put(t, r, w.key, w.value).Revision
		ws = append(ws, w)
	}
	ws = append(ws, writeSome(t, r, "small", 3)...)
	crashStore(t, s)
	if n := len(segments(t, jdir)); n != 2 {
		t.Fatalf("%d segments before reopen", n)
	}

	s = reopenTestStore(t, dir)
	checkWritten(t, defaultRepo(t, s), ws)
	// Everything is in Git's files now: the first segment is gone.
	if segs := segments(t, jdir); len(segs) != 1 || filepath.Base(segs[0]) != segmentName(2) {
		t.Errorf("segments after the replay: %v", segs)
	}
}
