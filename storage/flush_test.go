package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFlushTriggers checks what makes the flusher write the journal's
// groups to Git's files: a pause in the writes (IdleFlush), the age of the
// oldest waiting group while writes keep coming (FlushDelay), or the bytes
// waiting (FlushBytes); and that with none of them due, nothing is
// written. Each case writes a group every 2 ms and watches the loose ref
// on disk, which only a flush writes.
func TestFlushTriggers(t *testing.T) {
	const never = time.Hour
	tests := []struct {
		name string
		opts FSOptions
		// pause stops the writes after the first group, so that only a
		// pause can be what triggers.
		pause bool
		want  bool
	}{
		{"idle", FSOptions{IdleFlush: 10 * time.Millisecond, FlushDelay: never, FlushBytes: 1 << 30}, true, true},
		{"delay under load", FSOptions{IdleFlush: never, FlushDelay: 50 * time.Millisecond, FlushBytes: 1 << 30}, false, true},
		{"bytes under load", FSOptions{IdleFlush: never, FlushDelay: never, FlushBytes: 64 << 10}, false, true},
		{"nothing due", FSOptions{IdleFlush: never, FlushDelay: never, FlushBytes: 1 << 30}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			be, err := OpenFS(dir, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			const ref = "refs/heads/flush-test"
			onDisk := func() string {
				b, err := os.ReadFile(filepath.Join(dir, ref))
				if err != nil {
					return ""
				}
				return strings.TrimSpace(string(b))
			}
			written := map[string]bool{}
			write := func(i int) {
				blob := NewObject(BlobObject, fmt.Appendf(nil, "value %d %s\n", i, strings.Repeat("x", 1000)))
				tree := NewObject(TreeObject, (&Tree{Entries: []TreeEntry{{Name: "v", Mode: ModeFile, Hash: blob.Hash}}}).Encode())
				if err := be.Commit([]*Object{blob, tree}, []RefUpdate{{Name: ref, Old: be.Ref(ref), New: tree.Hash}}, nil); err != nil {
					t.Fatal(err)
				}
				written[tree.Hash.String()] = true
			}
			// The negative case watches for long enough that a wrong
			// trigger (every 20 ms, say) would have fired many times.
			deadline := time.Now().Add(5 * time.Second)
			if !tc.want {
				deadline = time.Now().Add(500 * time.Millisecond)
			}
			write(0)
			flushed := ""
			for i := 1; time.Now().Before(deadline); i++ {
				if flushed = onDisk(); flushed != "" {
					break
				}
				if !tc.pause {
					write(i)
				}
				time.Sleep(2 * time.Millisecond)
			}
			if got := flushed != ""; got != tc.want {
				t.Fatalf("flushed: %v, want %v (%d groups written)", got, tc.want, len(written))
			}
			if tc.want && !written[flushed] {
				t.Fatalf("the ref on disk names %s, which no write made", flushed)
			}
			if !tc.want {
				// Flush writes what waits, whatever the triggers.
				if err := be.Flush(); err != nil {
					t.Fatal(err)
				}
				if got, want := onDisk(), be.Ref(ref).String(); got != want {
					t.Fatalf("after Flush the ref on disk is %q, want %q", got, want)
				}
			}
		})
	}
}
