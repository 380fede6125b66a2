package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// noteLog is a NoteSink that keeps what it is given in memory, to test the
// store's side of the contract (server/audit's crash test runs the real
// audit log against a killed process).
type noteLog struct {
	mu        sync.Mutex
	appended  []string
	synced    int
	recovered []string
	failNext  bool
}

func (n *noteLog) Append(notes [][]byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, b := range notes {
		n.appended = append(n.appended, string(b))
	}
	return nil
}

func (n *noteLog) Sync() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.failNext {
		n.failNext = false
		return errors.New("disk full")
	}
	n.synced = len(n.appended)
	return nil
}

func (n *noteLog) Recover(notes [][]byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, b := range notes {
		n.recovered = append(n.recovered, string(b))
	}
	return nil
}

func (n *noteLog) state() (appended []string, synced int, recovered []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.appended), n.synced, slices.Clone(n.recovered)
}

// noteFor makes a batch's note name its key and revision.
func noteFor(key string) func(*Result) []byte {
	return func(res *Result) []byte { return fmt.Appendf(nil, "%s@%d\n", key, res.Revision) }
}

// TestNotesRideInTheJournal: a batch's note is taken by the sink before
// Write returns, synced before the journal lets its record go, and handed
// to Recover when a crash left the record in the journal.
func TestNotesRideInTheJournal(t *testing.T) {
	ctx := context.Background()
	sink := &noteLog{}
	dir := t.TempDir()
	s := openTestStore(t, dir, lazyFlush, func(o *Options) { o.FS.Notes = sink })
	r := defaultRepo(t, s)

	res, err := r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpPut, Key: "a", Value: []byte("1")}}, Note: noteFor("a")})
	if err != nil || !res.Noted || res.Revision != 1 {
		t.Fatalf("write with a note: %+v, %v", res, err)
	}
	// A batch that changes nothing makes no commit, and its note is still
	// made durable (the request is still audited).
	res, err = r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpPut, Key: "a", Value: []byte("1")}}, Note: noteFor("a-again")})
	if err != nil || !res.Noted || res.Changed {
		t.Fatalf("unchanged write with a note: %+v, %v", res, err)
	}
	// Without a note, nothing is noted; a failed batch's note is not taken.
	if res, err = r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpPut, Key: "b", Value: []byte("2")}}}); err != nil || res.Noted {
		t.Fatalf("write without a note: %+v, %v", res, err)
	}
	_, err = r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpDelete, Key: "nope", MustExist: true}}, Note: noteFor("nope")})
	if err == nil {
		t.Fatal("delete of an absent key succeeded")
	}
	appended, synced, _ := sink.state()
	if want := []string{"a@1\n", "a-again@1\n"}; !slices.Equal(appended, want) || synced != 0 {
		t.Fatalf("sink after the writes: appended %q, synced %d; want %q, 0", appended, synced, want)
	}

	// A crash before any flush: the next open hands the notes to Recover.
	crashStore(t, s)
	sink2 := &noteLog{}
	s = openTestStore(t, dir, func(o *Options) { o.FS.Notes = sink2 })
	if _, _, rec := sink2.state(); !slices.Equal(rec, []string{"a@1\n", "a-again@1\n"}) {
		t.Fatalf("recovered %q", rec)
	}
	r = defaultRepo(t, s)

	// A flush syncs the sink before its checkpoint; if that sync fails,
	// the flush fails and the journal keeps the record.
	if _, err := r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpPut, Key: "c", Value: []byte("3")}}, Note: noteFor("c")}); err != nil {
		t.Fatal(err)
	}
	sink2.mu.Lock()
	sink2.failNext = true
	sink2.mu.Unlock()
	fb := r.be.(*FSBackend)
	if err := fb.Flush(); err == nil {
		t.Fatal("flush succeeded although the sink could not sync")
	}
	if err := fb.Flush(); err != nil {
		t.Fatal(err)
	}
	if appended, synced, _ := sink2.state(); synced != len(appended) || !slices.Equal(appended, []string{"c@3\n"}) {
		t.Fatalf("after the flush: appended %q, synced %d", appended, synced)
	}
	// Checkpointed: a crash now leaves nothing to recover.
	crashStore(t, s)
	sink3 := &noteLog{}
	s = reopenTestStore(t, dir, func(o *Options) { o.FS.Notes = sink3 })
	if _, _, rec := sink3.state(); len(rec) != 0 {
		t.Fatalf("recovered after a checkpoint: %q", rec)
	}
	if v, err := defaultRepo(t, s).Get(ctx, "c", 0); err != nil || string(v.Data) != "3" {
		t.Fatalf("c: %v", err)
	}
}

// TestNotesWithoutSink: a store without a sink does not ask for notes.
func TestNotesWithoutSink(t *testing.T) {
	r := defaultRepo(t, newTestStore(t))
	called := false
	res, err := r.WriteOne(context.Background(), &Batch{Ops: []Op{{Kind: OpPut, Key: "a", Value: []byte("1")}},
		Note: func(*Result) []byte { called = true; return []byte("x\n") }})
	if err != nil || res.Noted || called {
		t.Fatalf("noted %v, called %v, err %v", res.Noted, called, err)
	}
}

// TestDecodeGroupNotes: notes follow the refs; a record without them (as
// written before notes existed) decodes; damaged notes are refused.
func TestDecodeGroupNotes(t *testing.T) {
	g := &group{
		objects: []*Object{NewObject(BlobObject, []byte("v"))},
		refs:    []RefUpdate{{Name: "refs/heads/main", New: HashObject(BlobObject, []byte("v"))}},
		notes:   [][]byte{[]byte("one\n"), {}, []byte("three\n")},
	}
	j, _, err := openJournal(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if _, err := j.appendGroup(g, nil); err != nil {
		t.Fatal(err)
	}
	payload := slices.Clone(j.buf[9:])
	got, err := decodeGroup(payload, nil, nil)
	if err != nil || len(got.notes) != 3 || string(got.notes[0]) != "one\n" || len(got.notes[1]) != 0 || string(got.notes[2]) != "three\n" {
		t.Fatalf("decoded notes %q, %v", got.notes, err)
	}
	// The same group without notes ends after its refs.
	noNotes := *g
	noNotes.notes = nil
	if _, err := j.appendGroup(&noNotes, nil); err != nil {
		t.Fatal(err)
	}
	plain := slices.Clone(j.buf[9:])
	if got, err := decodeGroup(plain, nil, nil); err != nil || got.notes != nil || len(got.refs) != 1 {
		t.Fatalf("record without notes: %+v, %v", got, err)
	}
	if len(payload) <= len(plain) || !slices.Equal(payload[:len(plain)], plain) {
		t.Fatal("notes are not an addition after the refs")
	}
	bad := [][]byte{
		append(slices.Clone(plain), 1),                             // a count and no note
		append(slices.Clone(plain), 1, 5, 'a'),                     // a note cut short
		append(slices.Clone(payload), 0),                           // bytes after the notes
		binary.AppendUvarint(slices.Clone(plain), 1<<40),           // an absurd count
		append(binary.AppendUvarint(slices.Clone(plain), 1), 0x80), // a bad length varint
	}
	for i, b := range bad {
		if _, err := decodeGroup(b, nil, nil); err == nil {
			t.Errorf("damaged notes %d decoded", i)
		}
	}
}

// FuzzDecodeGroup: no record, however damaged, panics the decoder, and a
// group it accepts survives being written and read again.
func FuzzDecodeGroup(f *testing.F) {
	j, _, err := openJournal(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	defer j.close()
	g := &group{
		objects: []*Object{NewObject(BlobObject, []byte("v")), NewObject(TreeObject, nil)},
		refs:    []RefUpdate{{Name: "refs/heads/main"}},
		notes:   [][]byte{[]byte("note\n")},
	}
	if _, err := j.appendGroup(g, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(slices.Clone(j.buf[9:]))
	g.notes = nil
	if _, err := j.appendGroup(g, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(slices.Clone(j.buf[9:]))
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeGroup(b, nil, nil)
		if err != nil {
			return
		}
		if _, err := j.appendGroup(&got, nil); err != nil {
			t.Fatal(err)
		}
		again, err := decodeGroup(j.buf[9:], nil, nil)
		if err != nil {
			t.Fatalf("a decoded group does not decode again: %v", err)
		}
		if len(again.objects) != len(got.objects) || !slices.Equal(again.refs, got.refs) || len(again.notes) != len(got.notes) {
			t.Fatalf("round trip: %+v became %+v", got, again)
		}
		for i := range got.notes {
			if string(again.notes[i]) != string(got.notes[i]) {
				t.Fatalf("note %d: %q became %q", i, got.notes[i], again.notes[i])
			}
		}
		for i := range got.objects {
			if again.objects[i].Hash != got.objects[i].Hash {
				t.Fatalf("object %d changed", i)
			}
		}
	})
}
