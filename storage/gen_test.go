package storage

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"testing"
)

// genRepo makes a bare repository at dir with `git fast-import`: files
// files spread over directories of 100, and commits commits on main. The
// first commits add the files, 100 at a time; the others change one file
// each; every 500th commit merges a side branch (main first).
func genRepo(t testing.TB, dir string, files, commits int) {
	t.Helper()
	if out, err := exec.Command("git", "init", "-q", "--bare", "-b", "main", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	cmd := exec.Command("git", "-C", dir, "fast-import", "--quiet", "--done")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &limitedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(in, 1<<20)
	genStream(w, files, commits)
	w.Flush()
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("fast-import: %v\n%s", err, out.b)
	}
}

type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(l.b) < 64<<10 {
		l.b = append(l.b, p...)
	}
	return len(p), nil
}

func genPath(i int) string { return fmt.Sprintf("apps/app-%03d/config-%03d.yaml", i/100, i%100) }

func genValue(i, rev int) string {
	return fmt.Sprintf("app: app-%03d\nfile: %d\nrevision: %d\nreplicas: %d\nimage: registry.example.com/app-%03d:%d\n",
		i/100, i, rev, rev%7+1, i/100, rev)
}

func genStream(w io.Writer, files, commits int) {
	ts := int64(1700000000)
	data := func(s string) { fmt.Fprintf(w, "data %d\n%s\n", len(s), s) }
	added := 0
	mark := 0
	for c := 0; c < commits; c++ {
		ts++
		merge := c > 0 && c%500 == 0 && added >= files
		var sideMark int
		if merge {
			// A side commit off main's head, merged right after.
			mark++
			sideMark = mark
			fmt.Fprintf(w, "commit refs/heads/side\nmark :%d\ncommitter Side <side@example.com> %d +0000\n", mark, ts)
			data(fmt.Sprintf("side change %d", c))
			fmt.Fprintf(w, "from :%d\n", mark-1)
			i := (c * 31) % files
			fmt.Fprintf(w, "M 100644 inline %s\n", genPath(i))
			data(genValue(i, c))
		}
		mark++
		fmt.Fprintf(w, "commit refs/heads/main\nmark :%d\ncommitter Gen <gen@example.com> %d +0000\n", mark, ts)
		if merge {
			data(fmt.Sprintf("Merge side %d", c))
			fmt.Fprintf(w, "from :%d\nmerge :%d\n", prevMain(mark, sideMark), sideMark)
		} else {
			data(fmt.Sprintf("change %d", c))
		}
		switch {
		case added < files:
			n := min(files-added, max(1, (files+commits/2-1)/(commits/2)))
			for range n {
				fmt.Fprintf(w, "M 100644 inline %s\n", genPath(added))
				data(genValue(added, c))
				added++
			}
		case !merge:
			i := (c * 7919) % files
			fmt.Fprintf(w, "M 100644 inline %s\n", genPath(i))
			data(genValue(i, c))
		}
	}
	fmt.Fprintf(w, "done\n")
}

// prevMain returns the mark of main's head before the commit marked mark,
// which a side commit (marked side) came between.
func prevMain(mark, side int) int { return side - 1 }
