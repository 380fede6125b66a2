package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/storage"
)

// The kill -9 test of audit lines that ride in the journal: TestNotesKill9
// runs this test binary again as a child (TestNotesCrashHelper) that
// writes to a real store whose NoteSink is a real audit log, each write
// carrying its audit line, and prints every write acknowledged. The parent
// kills it with SIGKILL and checks that, once the store and the log are
// opened again, every acknowledged write has exactly one line, naming its
// revision.

const (
	notesDirEnv   = "GITSTATE_TEST_NOTES_DIR"
	notesRoundEnv = "GITSTATE_TEST_NOTES_ROUND"
)

// TestNotesCrashHelper is the child of TestNotesKill9; it does nothing on
// its own.
func TestNotesCrashHelper(t *testing.T) {
	dir := os.Getenv(notesDirEnv)
	if dir == "" {
		t.Skip("the child of TestNotesKill9")
	}
	round, _ := strconv.Atoi(os.Getenv(notesRoundEnv))
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	l, err := Open(filepath.Join(dir, "audit"), Options{})
	if err != nil {
		fail(err)
	}
	opts := storage.Options{FS: storage.FSOptions{Notes: l}}
	if round%2 == 1 {
		// The flusher never runs: the lines are only appended, never
		// synced, and the journal is all that holds them.
		opts.FS.FlushDelay, opts.FS.IdleFlush, opts.FS.FlushBytes = time.Hour, time.Hour, 1<<30
	} else {
		opts.FS.FlushDelay = 5 * time.Millisecond
	}
	ctx := context.Background()
	s, err := storage.Open(ctx, filepath.Join(dir, "store"), opts)
	if err != nil {
		fail(err)
	}
	r, err := s.Repo(storage.DefaultRepo)
	if err != nil {
		fail(err)
	}
	fmt.Println("READY")
	time.AfterFunc(20*time.Second, func() { os.Exit(3) })
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("r%d-w%d-%d", round, w, i)
				key := "round" + strconv.Itoa(round) + "/" + id
				res, err := r.WriteOne(ctx, &storage.Batch{
					Ops: []storage.Op{{Kind: storage.OpPut, Key: key, Value: []byte(id)}},
					Note: func(res *storage.Result) []byte {
						line, err := l.Line(api.AuditEvent{RequestID: id, Action: "kv.put", Repo: "default",
							Keys: []string{key}, Status: 200, Revision: res.Revision})
						if err != nil {
							fail(err)
						}
						return line
					},
				})
				if err != nil {
					fail(err)
				}
				if !res.Noted {
					fail(errors.New("write not noted"))
				}
				fmt.Printf("ACK %s %d\n", id, res.Revision)
			}
		})
	}
	wg.Wait()
}

func TestNotesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; a few seconds")
	}
	dir := t.TempDir()
	acked := map[string]int64{}
	for round := range 8 {
		// What the log held durably before this round (the parent closed
		// it properly after the last one).
		var before int64
		if fi, err := os.Stat(filepath.Join(dir, "audit", FileName)); err == nil {
			before = fi.Size()
		}
		got := runNotesChild(t, dir, round)
		t.Logf("round %d: %d writes acknowledged before the kill", round, len(got))
		if round%2 == 1 {
			// Nothing synced the log in this round: a power cut could
			// lose every line appended. Lose them, as it would.
			if err := os.Truncate(filepath.Join(dir, "audit", FileName), before); err != nil {
				t.Fatal(err)
			}
		}
		for id, rev := range got {
			acked[id] = rev
		}
		// Open both again, as the server does: the replay hands the
		// journal's lines to the log, which adds those it lacks.
		l, err := Open(filepath.Join(dir, "audit"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := storage.Open(context.Background(), filepath.Join(dir, "store"), storage.Options{FS: storage.FSOptions{Notes: l}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// Nothing the replay, or a merge of packs at open, did may lose
		// an object: Git's own check of the whole history.
		repo := filepath.Join(dir, "store", "repos", storage.DefaultRepo+".git")
		if out, err := exec.Command("git", "-C", repo, "fsck", "--strict", "--no-dangling", "--no-progress").CombinedOutput(); err != nil {
			t.Fatalf("round %d: git fsck: %v\n%s", round, err, out)
		}
		entries, _, err := l.QueryAudit(context.Background(), api.AuditQuery{Limit: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		seen := map[string]int64{}
		for _, e := range entries {
			if _, dup := seen[e.RequestID]; dup {
				t.Errorf("round %d: %s has two lines", round, e.RequestID)
			}
			seen[e.RequestID] = e.Revision
		}
		for id, rev := range acked {
			if got, ok := seen[id]; !ok {
				t.Errorf("round %d: acknowledged write %s has no audit line", round, id)
			} else if got != rev {
				t.Errorf("round %d: %s's line names revision %d, the write was acknowledged at %d", round, id, got, rev)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// runNotesChild runs the writers in dir, kills them after a while, and
// returns the writes they acknowledged, by request id.
func runNotesChild(t *testing.T, dir string, round int) map[string]int64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestNotesCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), notesDirEnv+"="+dir, notesRoundEnv+"="+strconv.Itoa(round))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1<<16)
	go func() {
		defer close(lines)
		br := bufio.NewReader(out)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return // a line cut by the kill was never acknowledged
			}
			lines <- strings.TrimSuffix(line, "\n")
		}
	}()
	acks := map[string]int64{}
	take := func(line string) {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "ACK" {
			return
		}
		rev, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		acks[f[1]] = rev
	}
	deadline := time.After(15 * time.Second)
	for len(acks) < 50 {
		select {
		case line, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("child exited: %s", stderr.String())
			}
			take(line)
		case <-deadline:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("no writes acknowledged after 15s")
		}
	}
	kill := time.After(time.Duration(50+rand.IntN(250)) * time.Millisecond)
	for done := false; !done; {
		select {
		case line := <-lines:
			take(line)
		case <-kill:
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			done = true
		}
	}
	for line := range lines {
		take(line)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by SIGKILL: %s", err, stderr.String())
	}
	return acks
}
