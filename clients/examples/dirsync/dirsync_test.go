package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
	"github.com/gitstate/gitstate/clients/go/reconcile"
	"github.com/gitstate/gitstate/server"
)

const token = "dirsync-test-admin"

func startServer(t *testing.T, dataDir, listen string) *server.Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.AdminToken, cfg.Banner = dataDir, listen, token, io.Discard
	cfg.ShutdownTimeout = 5 * time.Second
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// reports collects the reconciler's status reports.
type reports struct {
	mu  sync.Mutex
	all []wire.ReconcilerStatusRequest
}

func (r *reports) add(st wire.ReconcilerStatusRequest, _ error) {
	r.mu.Lock()
	r.all = append(r.all, st)
	r.mu.Unlock()
}

func (r *reports) has(state string, rev int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.all {
		if st.State == state && (rev == 0 || string(st.Revision) == string(wire.RevNumber(rev))) {
			return true
		}
	}
	return false
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dirIs reports whether dir holds exactly files.
func dirIs(dir string, files map[string]string) bool {
	have, err := readTree(dir)
	if err != nil || len(have) != len(files) {
		return false
	}
	for p, v := range files {
		if string(have[filepath.FromSlash(p)]) != v {
			return false
		}
	}
	return true
}

func TestDirsync(t *testing.T) {
	data, dir := t.TempDir(), t.TempDir()
	srv := startServer(t, data, "127.0.0.1:0")
	addr := srv.Addr()
	c, err := client.New("http://"+addr, client.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	repo := c.Repo("default")
	ctx, cancel := context.WithCancel(context.Background())
	put := func(key, value string) int64 {
		t.Helper()
		res, err := repo.Put(ctx, key, []byte(value), nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.Revision
	}
	put("apps/web/config.yaml", "replicas: 1\n")
	put("apps/api/config.yaml", "not mine\n")

	var rep reports
	s := &Syncer{Dir: dir, Prefix: "apps/web/"}
	done := make(chan error, 1)
	go func() {
		done <- reconcile.Run(ctx, c, reconcile.Options{Name: "dirsync", Prefix: "apps/web/", Interval: 300 * time.Millisecond,
			MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, OnReport: rep.add}, s.Apply)
	}()
	defer func() {
		cancel()
		<-done
		srv.Shutdown(context.Background())
	}()
	eventually(t, "the first apply", func() bool { return dirIs(dir, map[string]string{"config.yaml": "replicas: 1\n"}) })

	// Several revisions, one of them in a burst.
	put("apps/web/config.yaml", "replicas: 2\n")
	put("apps/web/sub/extra.yaml", "a: 1\n")
	rev := put("apps/web/config.yaml", "replicas: 3\n")
	eventually(t, "revisions applied", func() bool {
		return dirIs(dir, map[string]string{"config.yaml": "replicas: 3\n", "sub/extra.yaml": "a: 1\n"}) && rep.has(client.StateApplied, rev)
	})

	// The server restarts; the reconciler resumes its watch.
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, data, addr)
	if _, err := repo.Delete(ctx, "apps/web/sub/extra.yaml", nil); err != nil {
		t.Fatal(err)
	}
	rev = put("apps/web/config.yaml", "replicas: 4\n")
	eventually(t, "revisions after a restart", func() bool {
		return dirIs(dir, map[string]string{"config.yaml": "replicas: 4\n"}) && rep.has(client.StateApplied, rev)
	})

	// Someone edits the directory by hand: repaired and reported as drift.
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("replicas: 99\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stray.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "drift repaired", func() bool {
		return dirIs(dir, map[string]string{"config.yaml": "replicas: 4\n"}) && rep.has(client.StateDrifted, rev)
	})

	// The server saw it all: the reconciler has applied the head (no lag),
	// and the head's rollout is converged on it.
	eventually(t, "the server's view of the reconciler", func() bool {
		list, err := repo.Reconcilers(ctx)
		if err != nil || len(list.Reconcilers) != 1 {
			return false
		}
		r := list.Reconcilers[0]
		return r.Name == "dirsync" && r.AppliedRevision == rev && list.Revision == rev && r.LagRevisions == 0 && !r.Stale
	})
	ro, err := repo.Rollout(ctx, wire.RevNumber(rev))
	if err != nil || !ro.Converged || len(ro.Applied) != 1 || ro.Applied[0].Name != "dirsync" || len(ro.Pending) != 0 {
		t.Errorf("rollout of %d: %+v, %v", rev, ro, err)
	}
}
