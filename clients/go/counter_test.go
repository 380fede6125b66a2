package client_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gitstate/gitstate"
	client "github.com/gitstate/gitstate/clients/go"
)

// TestCounter is the foundation issue's correctness test: 64 goroutines do
// read-modify-write with If-Match on one counter key through the client,
// over real HTTP. The final value equals the number of successful writes,
// and every loser got 412.
func TestCounter(t *testing.T) {
	const workers, attempts = 64, 10
	ctx := context.Background()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	c, err := client.New(startServer(t, ""), client.WithHTTPClient(hc), client.WithToken(testToken))
	if err != nil {
		t.Fatal(err)
	}
	kv := c.Repo("default")
	if _, err := kv.Put(ctx, "counter", []byte("0"), &client.PutOptions{Create: true}); err != nil {
		t.Fatal(err)
	}
	var wins, losses atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range attempts {
				v, err := kv.Get(ctx, "counter", nil)
				if err != nil {
					errs <- err
					return
				}
				n, err := strconv.Atoi(string(v.Data))
				if err != nil {
					errs <- err
					return
				}
				res, err := kv.Put(ctx, "counter", []byte(strconv.Itoa(n+1)), &client.PutOptions{IfMatch: v.ETag})
				switch {
				case errors.Is(err, gitstate.ErrPreconditionFailed):
					losses.Add(1)
				case err != nil:
					errs <- err
					return
				case !res.Changed:
					errs <- errors.New("a successful increment made no commit")
					return
				default:
					wins.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("worker: %v", err)
	}
	v, err := kv.Get(ctx, "counter", nil)
	if err != nil {
		t.Fatal(err)
	}
	final, _ := strconv.Atoi(string(v.Data))
	t.Logf("%d successful writes, %d got 412", wins.Load(), losses.Load())
	if int64(final) != wins.Load() {
		t.Errorf("counter = %d, but %d writes succeeded", final, wins.Load())
	}
	if wins.Load()+losses.Load() != workers*attempts {
		t.Errorf("%d wins + %d losses != %d attempts", wins.Load(), losses.Load(), workers*attempts)
	}
	if wins.Load() == 0 || losses.Load() == 0 {
		t.Errorf("no contention: %d wins, %d losses", wins.Load(), losses.Load())
	}
	// Every win is one commit: the counter's history has wins+1 revisions.
	if v.Revision != wins.Load()+1 || v.ModRevision != v.Revision {
		t.Errorf("head revision %d (mod %d), want %d", v.Revision, v.ModRevision, wins.Load()+1)
	}
}
