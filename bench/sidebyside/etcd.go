package sidebyside

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// etcdServerEnv, when set in the environment of the benchmark's own
// binary, makes it an etcd server (see EtcdServerMain) instead: the value
// is its etcdServerConfig in JSON.
const etcdServerEnv = "GITSTATE_BENCH_ETCD_SERVER"

type etcdServerConfig struct {
	Dir    string `json:"dir"`
	Client string `json:"client"` // http://127.0.0.1:<port>
	Peer   string `json:"peer"`
}

// IsEtcdServer reports whether this process was started as the benchmark's
// etcd server: the command's main (and a test's TestMain) must then call
// EtcdServerMain before anything else.
func IsEtcdServer() bool { return os.Getenv(etcdServerEnv) != "" }

// EtcdServerMain runs an embedded etcd server (go.etcd.io/etcd/server/v3/
// embed, default settings: every write fsynced before it is acknowledged)
// until SIGTERM or SIGINT, and returns the process's exit code. The
// benchmark runs etcd this way, in its own process, so that etcd's memory
// and CPU are its own, as gitstate's are.
func EtcdServerMain() int {
	if err := serveEtcd(); err != nil {
		fmt.Fprintln(os.Stderr, "etcd server:", err)
		return 1
	}
	return 0
}

func serveEtcd() error {
	var c etcdServerConfig
	if err := json.Unmarshal([]byte(os.Getenv(etcdServerEnv)), &c); err != nil {
		return fmt.Errorf("%s: %w", etcdServerEnv, err)
	}
	client, err := url.Parse(c.Client)
	if err != nil {
		return err
	}
	peer, err := url.Parse(c.Peer)
	if err != nil {
		return err
	}
	cfg := embed.NewConfig()
	cfg.Name = "bench"
	cfg.Dir = c.Dir
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.QuotaBackendBytes = 8 << 30 // the largest allowed: no benchmark should hit the quota
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return err
	case <-stop:
		return nil
	}
	fmt.Println("etcd ready")
	select {
	case err := <-e.Err():
		return err
	case <-stop:
		return nil
	}
}

// etcdSystem is an embedded etcd server in a subprocess (the benchmark's
// own binary, see EtcdServerMain), driven with clientv3: one client (one
// gRPC connection) per worker, serializable reads. Shared, it is driven
// with one client for all workers instead: see etcdShared.
type etcdSystem struct {
	shared       bool
	dir          string
	exe          string // the benchmark binary
	client, peer string // URLs, the same for every start (etcd keeps them)

	srv   *process
	peaks peakTracker // the peak RSS of the processes before srv

	mu      sync.Mutex
	clients []*clientv3.Client // by worker, made on first use
}

var (
	_ watchable = (*etcdSystem)(nil)
	_ server    = (*etcdSystem)(nil)
	_ meter     = (*etcdSystem)(nil)
)

func newEtcd(dir string, shared bool) (*etcdSystem, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cp, err1 := freePort()
	pp, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &etcdSystem{
		shared: shared,
		dir:    dir,
		exe:    exe,
		client: fmt.Sprintf("http://127.0.0.1:%d", cp),
		peer:   fmt.Sprintf("http://127.0.0.1:%d", pp),
	}, nil
}

func (e *etcdSystem) Name() string { return "etcd" }

// etcdShared is system etcd-shared: etcd driven with one client for all
// the workers, whose requests clientv3 multiplexes over one HTTP/2
// connection, as a single process using etcd would. It runs the closed-loop
// workloads (GET, PUT, list, transaction) only: watch and starts would
// measure the same server as system etcd.
type etcdShared struct{ e *etcdSystem }

var _ meter = etcdShared{}

func newEtcdShared(dir string) (etcdShared, error) {
	e, err := newEtcd(dir, true)
	return etcdShared{e}, err
}

func (s etcdShared) Name() string                    { return "etcd-shared" }
func (s etcdShared) Start(ctx context.Context) error { return s.e.Start(ctx) }
func (s etcdShared) Load(ctx context.Context, ds Dataset) error {
	return s.e.Load(ctx, ds)
}
func (s etcdShared) Get(ctx context.Context, w int, key string) error { return s.e.Get(ctx, w, key) }
func (s etcdShared) Put(ctx context.Context, w int, key string, value []byte) (int64, error) {
	return s.e.Put(ctx, w, key, value)
}
func (s etcdShared) List(ctx context.Context, ds Dataset, prefix string, values bool) (int, error) {
	return s.e.List(ctx, ds, prefix, values)
}
func (s etcdShared) Txn(ctx context.Context, ds Dataset, keys []string, values [][]byte) (TxnTiming, error) {
	return s.e.Txn(ctx, ds, keys, values)
}
func (s etcdShared) Close() error                { return s.e.Close() }
func (s etcdShared) CPU() (time.Duration, error) { return s.e.CPU() }
func (s etcdShared) PeakRSS() (int64, error)     { return s.e.PeakRSS() }

func (e *etcdSystem) data() string { return filepath.Join(e.dir, "data") }

func (e *etcdSystem) Start(ctx context.Context) error {
	p, _, err := e.startServer(ctx, e.data())
	if err != nil {
		return err
	}
	e.peaks.retire(e.srv)
	e.srv = p
	return nil
}

// startServer runs an etcd server process on dir and waits until a new
// client's serializable GET is answered: it returns how long that took
// from the start of the process.
func (e *etcdSystem) startServer(ctx context.Context, dir string) (*process, time.Duration, error) {
	cfg, _ := json.Marshal(etcdServerConfig{Dir: dir, Client: e.client, Peer: e.peer})
	p, err := startProcess(e.exe, nil, []string{etcdServerEnv + "=" + string(cfg)}, filepath.Join(e.dir, "server.log"))
	if err != nil {
		return nil, 0, err
	}
	// Dial until the port is open, then ask: a gRPC client made before
	// would back off for a second after its first refused connection.
	for {
		if done, err := p.exited(); done {
			return nil, 0, fmt.Errorf("etcd server exited (%v): see %s", err, filepath.Join(e.dir, "server.log"))
		}
		if err := ctx.Err(); err != nil {
			p.Stop(10 * time.Second)
			return nil, 0, err
		}
		if c, err := net.DialTimeout("tcp", strings.TrimPrefix(e.client, "http://"), time.Second); err == nil {
			c.Close()
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	cli, err := e.newClient()
	if err != nil {
		p.Stop(10 * time.Second)
		return nil, 0, err
	}
	defer cli.Close()
	for {
		if done, err := p.exited(); done {
			return nil, 0, fmt.Errorf("etcd server exited (%v): see %s", err, filepath.Join(e.dir, "server.log"))
		}
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := cli.Get(c, datasetKey(0), clientv3.WithSerializable())
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			p.Stop(10 * time.Second)
			return nil, 0, ctx.Err()
		}
		time.Sleep(2 * time.Millisecond)
	}
	return p, time.Since(p.started), nil
}

func (e *etcdSystem) newClient() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{e.client},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// worker returns worker w's client.
func (e *etcdSystem) worker(w int) (*clientv3.Client, error) {
	if e.shared {
		w = 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.clients) <= w {
		c, err := e.newClient()
		if err != nil {
			return nil, err
		}
		e.clients = append(e.clients, c)
	}
	return e.clients[w], nil
}

func (e *etcdSystem) closeClients() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.clients {
		c.Close()
	}
	e.clients = nil
}

func (e *etcdSystem) Close() error {
	e.closeClients()
	if e.srv == nil {
		return nil
	}
	return e.srv.Stop(30 * time.Second)
}

func (e *etcdSystem) CPU() (time.Duration, error) { return e.srv.CPU() }
func (e *etcdSystem) PeakRSS() (int64, error)     { return e.peaks.current(e.srv) }

// Load writes the big dataset as ds.Commits transactions (one revision
// each). etcd has no separate repositories: the small dataset is not
// loaded, and the transaction on it is reported n/a.
func (e *etcdSystem) Load(ctx context.Context, ds Dataset) error {
	if ds.Name != "default" {
		return errNotApplicable
	}
	return parallel(ctx, 16, ds.Commits, func(ctx context.Context, c int) error {
		cli, err := e.worker(c % 16)
		if err != nil {
			return err
		}
		lo, hi := ds.commitKeys(c)
		ops := make([]clientv3.Op, 0, hi-lo)
		for i := lo; i < hi; i++ {
			ops = append(ops, clientv3.OpPut(datasetKey(i), string(yamlValue("res", i, 0, 500))))
		}
		_, err = cli.Txn(ctx).Then(ops...).Commit()
		return err
	})
}

func (e *etcdSystem) Get(ctx context.Context, w int, key string) error {
	cli, err := e.worker(w)
	if err != nil {
		return err
	}
	resp, err := cli.Get(ctx, key, clientv3.WithSerializable())
	if err == nil && len(resp.Kvs) != 1 {
		err = fmt.Errorf("get %s: not found", key)
	}
	return err
}

func (e *etcdSystem) Put(ctx context.Context, w int, key string, value []byte) (int64, error) {
	cli, err := e.worker(w)
	if err != nil {
		return 0, err
	}
	resp, err := cli.Put(ctx, key, string(value))
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

func (e *etcdSystem) List(ctx context.Context, ds Dataset, prefix string, values bool) (int, error) {
	if ds.Name != "default" {
		return 0, errNotApplicable
	}
	cli, err := e.worker(0)
	if err != nil {
		return 0, err
	}
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSerializable()}
	if !values {
		opts = append(opts, clientv3.WithKeysOnly())
	}
	resp, err := cli.Get(ctx, prefix, opts...)
	if err != nil {
		return 0, err
	}
	return len(resp.Kvs), nil
}

// Txn is one etcd transaction of puts, the closest etcd has to an open,
// written, previewed and committed change: there is no preview.
func (e *etcdSystem) Txn(ctx context.Context, ds Dataset, keys []string, values [][]byte) (TxnTiming, error) {
	if ds.Name != "default" {
		return TxnTiming{}, errNotApplicable
	}
	cli, err := e.worker(0)
	if err != nil {
		return TxnTiming{}, err
	}
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpPut(k, string(values[i]))
	}
	t0 := time.Now()
	_, err = cli.Txn(ctx).Then(ops...).Commit()
	return TxnTiming{Total: time.Since(t0)}, err
}

func (e *etcdSystem) Head(ctx context.Context) (int64, error) {
	cli, err := e.worker(0)
	if err != nil {
		return 0, err
	}
	resp, err := cli.Get(ctx, datasetKey(0), clientv3.WithSerializable())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// OpenWatchers opens n watches of the whole keyspace, each on its own
// client (its own gRPC connection), as n separate reconcilers would.
func (e *etcdSystem) OpenWatchers(ctx context.Context, n int, got func(int, int64)) (func(), int, error) {
	head, err := e.Head(ctx)
	if err != nil {
		return func() {}, 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		clients []*clientv3.Client
	)
	stop := func() {
		cancel()
		mu.Lock()
		for _, c := range clients {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
	err = parallel(ctx, 64, n, func(_ context.Context, i int) error {
		cli, err := e.newClient()
		if err != nil {
			return fmt.Errorf("watcher %d: %w", i, err)
		}
		mu.Lock()
		clients = append(clients, cli)
		mu.Unlock()
		wch := cli.Watch(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(head+1), clientv3.WithCreatedNotify())
		first, ok := <-wch
		if !ok || !first.Created {
			if err := first.Err(); err != nil {
				return fmt.Errorf("watcher %d: %w", i, err)
			}
			return fmt.Errorf("watcher %d: not created", i)
		}
		wg.Go(func() {
			for resp := range wch {
				for _, ev := range resp.Events {
					got(i, ev.Kv.ModRevision)
				}
			}
		})
		return nil
	})
	mu.Lock()
	opened := len(clients)
	mu.Unlock()
	if err != nil {
		stop()
		return func() {}, opened, err
	}
	return stop, opened, nil
}

// SaveColdCopy stops the server, copies its data directory to data-cold and
// starts it again.
func (e *etcdSystem) SaveColdCopy(ctx context.Context) error {
	e.closeClients()
	if err := e.srv.Stop(60 * time.Second); err != nil {
		return err
	}
	cold := filepath.Join(e.dir, "data-cold")
	os.RemoveAll(cold)
	if err := copyDir(e.data(), cold); err != nil {
		return err
	}
	return e.Start(ctx)
}

// ColdStart stops the server (the copy keeps its URLs, so both cannot run
// at once), starts one on the copy twice, timing each start to its first
// answered GET, and starts the server again. etcd has nothing to rebuild:
// cold and warm starts both read its WAL and its bbolt file.
func (e *etcdSystem) ColdStart(ctx context.Context) (cs ColdStart, err error) {
	e.closeClients()
	if err := e.srv.Stop(60 * time.Second); err != nil {
		return cs, err
	}
	defer func() { err = errors.Join(err, e.Start(ctx)) }()
	cold := filepath.Join(e.dir, "data-cold")
	p, d, err := e.startServer(ctx, cold)
	if err != nil {
		return cs, err
	}
	cs.Cold = d
	cs.ColdRSS, _ = p.PeakRSS()
	if cli, err := e.newClient(); err == nil {
		if resp, err := cli.Get(ctx, datasetKey(0), clientv3.WithSerializable()); err == nil {
			cs.Revisions = resp.Header.Revision
		}
		cli.Close()
	}
	if err := p.Stop(60 * time.Second); err != nil {
		return cs, err
	}
	p, d, err = e.startServer(ctx, cold)
	if err != nil {
		return cs, err
	}
	cs.Warm = d
	return cs, p.Stop(60 * time.Second)
}
