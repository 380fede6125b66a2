package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	client "github.com/gitstate/gitstate/clients/go"
)

// TestCLIWatch runs "gitstate watch" and reads the events it prints as the
// revisions come.
func TestCLIWatch(t *testing.T) {
	url := startServer(t, "")
	d := newClientDriver(t, url)
	for _, k := range []string{"apps/web/a", "apps/api/b"} {
		if _, err := d.Put("default", k, []byte("1"), client.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gitstateBinary(t), "watch", "apps/web/", "--from", "0", "-o", "json")
	cmd.Env = cliEnv(url)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cancel()
	lines := bufio.NewScanner(out)
	next := func() watchEventOutput {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("watch ended: %v", lines.Err())
		}
		var ev watchEventOutput
		if err := json.Unmarshal(lines.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", lines.Text(), err)
		}
		return ev
	}
	if ev := next(); ev.Type != "revision" || ev.ID != "1" || ev.Revision.Changes[0].Key != "apps/web/a" {
		t.Fatalf("first event: %+v", ev)
	}
	// Revision 2 touches nothing under the prefix: a progress event.
	if ev := next(); ev.Type != "progress" || ev.ID != "2" {
		t.Fatalf("second event: %+v", ev)
	}
	if _, err := d.Put("default", "apps/web/c", []byte("2"), client.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Type != "revision" || ev.ID != "3" || ev.Revision.Changes[0].Key != "apps/web/c" {
		t.Fatalf("live event: %+v", ev)
	}
}
