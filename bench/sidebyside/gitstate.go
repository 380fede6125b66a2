package sidebyside

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// gitstateSystem is the real gitstate binary, built from the checkout and
// run as a subprocess, driven over HTTP/1.1 with keep-alive connections.
type gitstateSystem struct {
	src  string // the checkout
	dir  string // this system's work directory
	bin  string
	auth string // the Authorization header

	hc    *http.Client
	srv   *process
	peaks peakTracker // the peak RSS of the processes before srv
	base  string      // http://127.0.0.1:<port>
}

var (
	_ watchable = (*gitstateSystem)(nil)
	_ server    = (*gitstateSystem)(nil)
	_ meter     = (*gitstateSystem)(nil)
)

func newGitstate(src, dir string) (*gitstateSystem, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	return &gitstateSystem{
		src:  src,
		dir:  dir,
		bin:  filepath.Join(dir, "gitstate"),
		auth: "Bearer bench-" + hex.EncodeToString(tok),
		hc:   &http.Client{Transport: newTransport(256)},
	}, nil
}

// newTransport returns an HTTP/1.1 transport keeping up to idle
// connections per host, with no proxy and no compression.
func newTransport(idle int) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:        idle,
		MaxIdleConnsPerHost: idle,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

func (g *gitstateSystem) Name() string { return "gitstate" }

func (g *gitstateSystem) data() string { return filepath.Join(g.dir, "data") }

// build compiles cmd/gitstate from the checkout.
func (g *gitstateSystem) build(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", g.bin, "./cmd/gitstate")
	cmd.Dir = g.src
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/gitstate: %v\n%s", err, out)
	}
	return nil
}

func (g *gitstateSystem) Start(ctx context.Context) error {
	if _, err := os.Stat(g.bin); err != nil {
		if err := g.build(ctx); err != nil {
			return err
		}
	}
	p, base, _, err := g.startServer(ctx, g.data())
	if err != nil {
		return err
	}
	g.peaks.retire(g.srv)
	g.srv, g.base = p, base
	return nil
}

// startServer runs `gitstate serve` on data and waits until it answers a
// GET at head (a 404 on an empty repo counts): it returns how long that
// took from the start of the process.
func (g *gitstateSystem) startServer(ctx context.Context, data string) (*process, string, time.Duration, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", 0, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"serve", "--data", data, "--listen", addr, "--token-rate", "0", "--max-streams-per-token", "0"}
	// SIDEBYSIDE_SERVE_ARGS adds flags, for profiling (--debug-listen).
	args = append(args, strings.Fields(os.Getenv("SIDEBYSIDE_SERVE_ARGS"))...)
	env := []string{"GITSTATE_ADMIN_TOKEN=" + strings.TrimPrefix(g.auth, "Bearer ")}
	// SIDEBYSIDE_SERVE_ENV adds variables to the server's environment
	// alone (GOGC=200, GOMAXPROCS=3), for experiments.
	env = append(env, strings.Fields(os.Getenv("SIDEBYSIDE_SERVE_ENV"))...)
	p, err := startProcess(g.bin, args, env, filepath.Join(g.dir, "server.log"))
	if err != nil {
		return nil, "", 0, err
	}
	base := "http://" + addr
	poll := &http.Client{Transport: newTransport(1), Timeout: 5 * time.Second}
	defer poll.CloseIdleConnections()
	for {
		if done, err := p.exited(); done {
			return nil, "", 0, fmt.Errorf("gitstate serve exited (%v): see %s", err, filepath.Join(g.dir, "server.log"))
		}
		if err := ctx.Err(); err != nil {
			p.Stop(10 * time.Second)
			return nil, "", 0, err
		}
		if g.ready(ctx, poll, base) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	return p, base, time.Since(p.started), nil
}

// ready reports whether base answers /readyz and then a GET at head.
func (g *gitstateSystem) ready(ctx context.Context, hc *http.Client, base string) bool {
	for _, path := range []string{"/readyz", "/v1/repos/default/kv/" + datasetKey(0)} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", g.auth)
		resp, err := hc.Do(req)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
			return false
		}
	}
	return true
}

func (g *gitstateSystem) Close() error {
	g.hc.CloseIdleConnections()
	if g.srv == nil {
		return nil
	}
	return g.srv.Stop(30 * time.Second)
}

func (g *gitstateSystem) CPU() (time.Duration, error) { return g.srv.CPU() }
func (g *gitstateSystem) PeakRSS() (int64, error)     { return g.srv.PeakRSS() }
func (g *gitstateSystem) repoURL(repo string) string  { return g.base + "/v1/repos/" + repo }

// call sends one request and decodes a JSON answer into out (when not
// nil), failing unless the status is want.
func (g *gitstateSystem) call(ctx context.Context, method, url string, body []byte, want int, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", g.auth)
	resp, err := g.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", method, strings.TrimPrefix(url, g.base), resp.Status, bytes.TrimSpace(msg))
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

type putOp struct {
	Op    string `json:"op"`
	Key   string `json:"key"`
	Value string `json:"value"`
}

type commitRequest struct {
	Message string  `json:"message"`
	Ops     []putOp `json:"ops"`
}

type revisionResult struct {
	Revision int64 `json:"revision"`
}

func (g *gitstateSystem) Load(ctx context.Context, ds Dataset) error {
	if ds.Name != "default" {
		err := g.call(ctx, http.MethodPost, g.base+"/v1/repos", []byte(`{"name":"`+ds.Name+`"}`), http.StatusCreated, nil)
		if err != nil {
			return err
		}
	}
	url := g.repoURL(ds.Name) + "/commits"
	return parallel(ctx, 16, ds.Commits, func(ctx context.Context, c int) error {
		lo, hi := ds.commitKeys(c)
		req := commitRequest{Message: fmt.Sprintf("load %d", c)}
		for i := lo; i < hi; i++ {
			req.Ops = append(req.Ops, putOp{Op: "put", Key: datasetKey(i), Value: string(yamlValue("res", i, 0, 500))})
		}
		body, _ := json.Marshal(req)
		return g.call(ctx, http.MethodPost, url, body, http.StatusOK, nil)
	})
}

func (g *gitstateSystem) Get(ctx context.Context, _ int, key string) error {
	return g.call(ctx, http.MethodGet, g.repoURL("default")+"/kv/"+key, nil, http.StatusOK, nil)
}

func (g *gitstateSystem) Put(ctx context.Context, _ int, key string, value []byte) (int64, error) {
	var res revisionResult
	err := g.call(ctx, http.MethodPut, g.repoURL("default")+"/kv/"+key, value, http.StatusOK, &res)
	return res.Revision, err
}

func (g *gitstateSystem) List(ctx context.Context, ds Dataset, prefix string, values bool) (int, error) {
	u := g.repoURL(ds.Name) + "/kv?limit=10000&prefix=" + url.QueryEscape(prefix)
	if values {
		u += "&values=true"
	}
	var res struct {
		Items []struct {
			Key         string  `json:"key"`
			ETag        string  `json:"etag"`
			ModRevision int64   `json:"mod_revision"`
			Value       *string `json:"value"`
		} `json:"items"`
	}
	err := g.call(ctx, http.MethodGet, u, nil, http.StatusOK, &res)
	return len(res.Items), err
}

// Txn opens a transaction, writes the keys in one batch, previews it (the
// transaction and its diff against head) and commits it.
func (g *gitstateSystem) Txn(ctx context.Context, ds Dataset, keys []string, values [][]byte) (TxnTiming, error) {
	t0 := time.Now()
	base := g.repoURL(ds.Name) + "/txns"
	var txn struct {
		ID string `json:"id"`
	}
	if err := g.call(ctx, http.MethodPost, base, []byte(`{"message":"bench"}`), http.StatusCreated, &txn); err != nil {
		return TxnTiming{}, err
	}
	req := commitRequest{Message: "bench: 10 keys"}
	for i, k := range keys {
		req.Ops = append(req.Ops, putOp{Op: "put", Key: k, Value: string(values[i])})
	}
	body, _ := json.Marshal(req)
	if err := g.call(ctx, http.MethodPost, base+"/"+txn.ID+"/commits", body, http.StatusOK, nil); err != nil {
		return TxnTiming{}, err
	}
	t1 := time.Now()
	if err := g.call(ctx, http.MethodGet, base+"/"+txn.ID, nil, http.StatusOK, nil); err != nil {
		return TxnTiming{}, err
	}
	var diff struct {
		Changes []struct{} `json:"changes"`
	}
	if err := g.call(ctx, http.MethodGet, base+"/"+txn.ID+"/diff?against=head", nil, http.StatusOK, &diff); err != nil {
		return TxnTiming{}, err
	}
	if len(diff.Changes) != len(keys) {
		return TxnTiming{}, fmt.Errorf("txn diff: %d changes, want %d", len(diff.Changes), len(keys))
	}
	if err := g.call(ctx, http.MethodPost, base+"/"+txn.ID+"/commit", nil, http.StatusOK, nil); err != nil {
		return TxnTiming{}, err
	}
	t2 := time.Now()
	return TxnTiming{Total: t2.Sub(t0), PreviewCommit: t2.Sub(t1)}, nil
}

func (g *gitstateSystem) Head(ctx context.Context) (int64, error) { return g.headAt(ctx, g.base) }

// headAt returns the head revision of the default repo of the server at
// base.
func (g *gitstateSystem) headAt(ctx context.Context, base string) (int64, error) {
	var repo revisionResult
	err := g.call(ctx, http.MethodGet, base+"/v1/repos/default", nil, http.StatusOK, &repo)
	return repo.Revision, err
}

// OpenWatchers opens n SSE streams, each on its own connection as n
// separate reconcilers would, and reads them with readSSE.
func (g *gitstateSystem) OpenWatchers(ctx context.Context, n int, got func(int, int64)) (func(), int, error) {
	ctx, cancel := context.WithCancel(ctx)
	hc := &http.Client{Transport: newTransport(0)}
	var wg sync.WaitGroup
	stop := func() {
		cancel()
		wg.Wait()
		hc.CloseIdleConnections()
	}
	var mu sync.Mutex
	opened := 0
	err := parallel(ctx, 64, n, func(_ context.Context, i int) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.repoURL("default")+"/watch", nil)
		req.Header.Set("Authorization", g.auth)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("watcher %d: %w", i, err)
		}
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			return fmt.Errorf("watcher %d: %s: %s", i, resp.Status, bytes.TrimSpace(msg))
		}
		mu.Lock()
		opened++
		mu.Unlock()
		wg.Go(func() {
			defer resp.Body.Close()
			readSSE(resp.Body, func(rev int64) { got(i, rev) })
		})
		return nil
	})
	if err != nil {
		stop()
		return func() {}, opened, err
	}
	return stop, opened, nil
}

// SaveColdCopy stops the server (flushing everything to Git), copies its
// data directory to data-cold and starts it again.
func (g *gitstateSystem) SaveColdCopy(ctx context.Context) error {
	g.hc.CloseIdleConnections()
	if err := g.srv.Stop(60 * time.Second); err != nil {
		return err
	}
	cold := filepath.Join(g.dir, "data-cold")
	os.RemoveAll(cold)
	if err := copyDir(g.data(), cold); err != nil {
		return err
	}
	return g.Start(ctx)
}

// ColdStart deletes the copy's index and starts a second server on it: the
// index is rebuilt from Git before it serves. Then it starts it again on
// the rebuilt index.
func (g *gitstateSystem) ColdStart(ctx context.Context) (ColdStart, error) {
	cold := filepath.Join(g.dir, "data-cold")
	if err := os.RemoveAll(filepath.Join(cold, "index")); err != nil {
		return ColdStart{}, err
	}
	var cs ColdStart
	p, base, d, err := g.startServer(ctx, cold)
	if err != nil {
		return cs, err
	}
	cs.Cold = d
	cs.ColdRSS, _ = p.PeakRSS()
	cs.Revisions, err = g.headAt(ctx, base)
	g.hc.CloseIdleConnections()
	if err := p.Stop(60 * time.Second); err != nil {
		return cs, err
	}
	if err != nil {
		return cs, err
	}
	p, _, d, err = g.startServer(ctx, cold)
	if err != nil {
		return cs, err
	}
	cs.Warm = d
	return cs, p.Stop(60 * time.Second)
}

// MemStats returns the server's Go heap in use, its goroutines and its RSS
// now, from /metrics, for the progress log.
func (g *gitstateSystem) MemStats(ctx context.Context) string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/metrics", nil)
	req.Header.Set("Authorization", g.auth)
	resp, err := g.hc.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, m := range []struct{ name, label string }{
		{"go_memstats_heap_inuse_bytes", "heap in use"},
		{"process_resident_memory_bytes", "RSS"},
		{"go_goroutines", "goroutines"},
	} {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, m.name+" "); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					continue
				}
				if strings.HasSuffix(m.name, "bytes") {
					out = append(out, fmt.Sprintf("%s %.0f MiB", m.label, f/(1<<20)))
				} else {
					out = append(out, fmt.Sprintf("%s %.0f", m.label, f))
				}
			}
		}
	}
	// The write path's shape: mean group size, the mean time from a
	// group's start to its durability, and the mean journal fdatasync,
	// since the server started.
	sum := func(name string) (float64, float64) {
		var s, n float64
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, name+"_sum "); ok {
				s, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
			if v, ok := strings.CutPrefix(line, name+"_count "); ok {
				n, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
		}
		return s, n
	}
	if s, n := sum("gitstate_commit_group_size"); n > 0 {
		d, _ := sum("gitstate_commit_group_duration_seconds")
		f, fn := sum("gitstate_journal_fsync_duration_seconds")
		out = append(out, fmt.Sprintf("groups %.0f of %.1f writes, %.2f ms each", n, s/n, 1000*d/n))
		if fn > 0 {
			out = append(out, fmt.Sprintf("fdatasync %.2f ms", 1000*f/fn))
		}
	}
	return strings.Join(out, ", ")
}
