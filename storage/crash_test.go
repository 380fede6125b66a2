package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitstate/gitstate"
)

// The kill -9 test: TestKill9 runs this test binary again as a child that
// runs TestCrashHelper, a write storm that prints every write the store
// acknowledged, kills it with SIGKILL in the middle, and checks that the
// store it left behind holds every acknowledged write.

const (
	crashDirEnv   = "GITSTATE_TEST_CRASH_DIR"
	crashRoundEnv = "GITSTATE_TEST_CRASH_ROUND"
	crashCounter  = "counter"
	// crashQuiesceWrites is how many writes each of the 12 writers makes in
	// the rounds where they stop before the kill.
	crashQuiesceWrites = 10
)

// TestCrashHelper is the child of TestKill9; it does nothing on its own.
// It prints "READY" once the store is open, then one line per acknowledged
// write: "ACK put <key> <value> <revision>" or "ACK counter <n> <revision>".
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child of TestKill9")
	}
	round, _ := strconv.Atoi(os.Getenv(crashRoundEnv))
	// Vary the flusher so that kills land in journal-only writes, in
	// flushes and in pack merges. In every third round the writers stop
	// early and the flusher never runs, so that the kill finds acknowledged
	// writes that only the journal holds, the last one included.
	opts := Options{FS: FSOptions{MaxPacks: 2}}
	limit := -1
	switch round % 3 {
	case 1:
		opts.FS.FlushDelay = 5 * time.Millisecond
	case 2:
		opts.FS.FlushDelay, opts.FS.IdleFlush = time.Hour, time.Hour
		limit = crashQuiesceWrites
	}
	ctx := context.Background()
	s, err := Open(ctx, dir, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	r, err := s.Repo(DefaultRepo)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("READY")
	// Never outlive a parent that failed to kill us.
	time.AfterFunc(20*time.Second, func() { os.Exit(3) })

	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "write:", err)
		os.Exit(4)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; i != limit; i++ {
				key := fmt.Sprintf("round%d/w%d/%05d", round, w, i)
				// Some values are large enough to leave the index's inline
				// values and be read from packs.
				value := fmt.Sprintf("v-%d-%d-%d-%s", round, w, i, strings.Repeat("x", (i%8/7)*70000))
				res, err := r.WriteOne(ctx, &Batch{Ops: []Op{{Kind: OpPut, Key: key, Value: []byte(value)}}})
				if err != nil {
					fail(err)
				}
				fmt.Printf("ACK put %s %s %d\n", key, value[:min(len(value), 30)], res.Revision)
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for done := 0; done != limit; {
				n, pre := 0, Precondition{Key: crashCounter, Absent: true}
				v, err := r.Get(ctx, crashCounter, 0)
				switch {
				case err == nil:
					if n, err = strconv.Atoi(string(v.Data)); err != nil {
						fail(err)
					}
					pre = Precondition{Key: crashCounter, ETag: v.Blob}
				case !errors.Is(err, gitstate.ErrKeyNotFound):
					fail(err)
				}
				res, err := r.WriteOne(ctx, &Batch{
					Ops:           []Op{{Kind: OpPut, Key: crashCounter, Value: []byte(strconv.Itoa(n + 1))}},
					Preconditions: []Precondition{pre},
				})
				if errors.Is(err, gitstate.ErrPreconditionFailed) {
					continue
				}
				if err != nil {
					fail(err)
				}
				fmt.Printf("ACK counter %d %d\n", n+1, res.Revision)
				done++
			}
		})
	}
	wg.Wait()
	select {} // wait for the kill
}

// notices are git fsck's remarks on a repository whose main branch the
// flusher had not yet written when the child was killed.
var notices = regexp.MustCompile(`(?m)^notice: .*$`)

type ack struct {
	kind, key, value string
	n                int
	rev              int64
}

func parseAck(line string) (ack, error) {
	f := strings.Fields(line)
	var a ack
	var err error
	switch {
	case len(f) == 5 && f[1] == "put":
		a = ack{kind: "put", key: f[2], value: f[3]}
		a.rev, err = strconv.ParseInt(f[4], 10, 64)
	case len(f) == 4 && f[1] == "counter":
		a = ack{kind: "counter"}
		if a.n, err = strconv.Atoi(f[2]); err == nil {
			a.rev, err = strconv.ParseInt(f[3], 10, 64)
		}
	default:
		err = fmt.Errorf("bad line %q", line)
	}
	return a, err
}

func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; a few seconds")
	}
	dir := t.TempDir()
	var acks []ack
	const rounds = 5
	for round := range rounds {
		start := time.Now()
		got := runAndKill(t, dir, round)
		killed := time.Now()
		t.Logf("round %d: %d writes acknowledged before the kill", round, len(got))
		acks = append(acks, got...)

		// Check a copy, so that the next round starts from exactly what the
		// kill left (and replays it itself).
		vdir := filepath.Join(t.TempDir(), "copy")
		copyDir(t, dir, vdir)
		// Git's files are a valid repository even before a replay. (A
		// pack flushed just before the kill may hold commits that no ref
		// names yet: the replay writes the refs.)
		out, err := gitCmd(filepath.Join(vdir, "repos", DefaultRepo+".git"), "fsck", "--strict", "--no-dangling", "--no-progress").CombinedOutput()
		if err != nil || strings.TrimSpace(notices.ReplaceAllString(string(out), "")) != "" {
			t.Errorf("git fsck of the killed store: %v\n%s", err, out)
		}
		s := openTestStore(t, vdir)
		checkAcks(t, defaultRepo(t, s), acks)
		checkStore(t, s)
		t.Logf("round %d: run %v, check %v", round, killed.Sub(start).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
		if t.Failed() {
			t.Fatalf("round %d failed", round)
		}
	}
	s := openTestStore(t, dir)
	checkAcks(t, defaultRepo(t, s), acks)
	checkStore(t, s)
}

// runAndKill runs the write storm in dir, kills it, and returns the writes
// it acknowledged.
func runAndKill(t *testing.T, dir string, round int) []ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	lines := make(chan string, 1<<16)
	go func() {
		defer close(lines)
		br := bufio.NewReader(out)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				// io.EOF after the kill; a line without its newline was
				// never completely printed, so it is not an acknowledgement.
				return
			}
			lines <- strings.TrimSuffix(line, "\n")
		}
	}()
	var acks []ack
	take := func(line string) {
		if !strings.HasPrefix(line, "ACK ") {
			return
		}
		a, err := parseAck(line)
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, a)
	}
	deadline := time.After(15 * time.Second)
	for ready := false; !ready; {
		select {
		case line, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("child exited before it was ready: %s", stderr.String())
			}
			ready = line == "READY"
		case <-deadline:
			t.Fatal("child not ready after 15s")
		}
	}
	// Let some writes be acknowledged (all of them when the writers stop
	// early), then kill at a random moment.
	want := 20
	if round%3 == 2 {
		want = 12 * crashQuiesceWrites
	}
	for len(acks) < want {
		select {
		case line, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("child exited: %s", stderr.String())
			}
			take(line)
		case <-deadline:
			t.Fatal("no writes acknowledged after 15s")
		}
	}
	kill := time.After(time.Duration(50+rand.IntN(300)) * time.Millisecond)
	for !killed {
		select {
		case line := <-lines:
			take(line)
		case <-kill:
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
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

// checkAcks checks that every acknowledged write is in r: each put's value
// at head and at its revision, and each counter value at its revision, with
// the counter at head at least the largest acknowledged.
func checkAcks(t *testing.T, r *Repo, acks []ack) {
	t.Helper()
	ctx := context.Background()
	head := r.Head().Revision
	revs := map[int64]ack{}
	maxCounter := 0
	for _, a := range acks {
		if prev, ok := revs[a.rev]; ok {
			t.Errorf("two writes acknowledged at revision %d: %+v and %+v", a.rev, prev, a)
		}
		revs[a.rev] = a
		if a.rev > head {
			t.Errorf("write acknowledged at revision %d, head is %d", a.rev, head)
			continue
		}
		switch a.kind {
		case "put":
			for _, rev := range []int64{0, a.rev} {
				v, err := r.Get(ctx, a.key, rev)
				if err != nil {
					t.Errorf("acknowledged %s at %d: %v", a.key, rev, err)
					continue
				}
				if got := string(v.Data[:min(len(v.Data), 30)]); got != a.value {
					t.Errorf("%s at %d = %q..., want %q...", a.key, rev, got, a.value)
				}
			}
		case "counter":
			maxCounter = max(maxCounter, a.n)
			if got := get(t, r, crashCounter, a.rev); got != strconv.Itoa(a.n) {
				t.Errorf("counter at %d = %s, want %d", a.rev, got, a.n)
			}
		}
	}
	if maxCounter > 0 {
		n, err := strconv.Atoi(get(t, r, crashCounter, 0))
		if err != nil || n < maxCounter {
			t.Errorf("counter at head = %d (%v), but %d was acknowledged", n, err, maxCounter)
		}
	}
}

// copyDir copies the regular files and directories under src to dst.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}
