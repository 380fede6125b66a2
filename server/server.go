// Package server is the gitstate process: configuration, the store, the
// HTTP listener and its lifecycle (start, readiness, graceful shutdown that
// finishes in-flight writes).
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/secrets"
	"github.com/gitstate/gitstate/server/audit"
	"github.com/gitstate/gitstate/server/auth"
	"github.com/gitstate/gitstate/server/upstream"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/txn"
	"github.com/gitstate/gitstate/watch"
)

// Config is the server's configuration. DefaultConfig gives the defaults;
// a zero duration or size is replaced by its default, a zero field of
// Limits disables that limit.
type Config struct {
	// DataDir holds the repos, the index and the server's own files:
	// auth/tokens.json, admin.token (made at first start), audit/. It is
	// made mode 0700, and an existing one open to other users is made so
	// at start, with a warning.
	DataDir string
	// Listen is the address to serve on (host:port).
	Listen string
	// TLSCert and TLSKey, PEM files, make the server speak HTTPS (TLS 1.2
	// or later). They are looked at again at most once a second (by a
	// TLS handshake) and reloaded when either changes, so a renewal needs
	// no restart; files that do not load leave the previous pair in
	// service, with a warning.
	TLSCert string
	TLSKey  string
	// Insecure allows plain HTTP on an address that is not loopback.
	// Without it Start refuses: tokens would cross the network in clear.
	Insecure bool
	// AdminToken, when set, authenticates as the administrator (from
	// GITSTATE_ADMIN_TOKEN; token id "env-admin").
	AdminToken string
	// Limits bounds what one token or client address may take.
	Limits auth.Limits
	// MaxValueSize bounds values, in bytes.
	MaxValueSize int64
	// MaxBodyBytes bounds request bodies, in bytes (413 beyond).
	MaxBodyBytes int64
	// MaxHeaderBytes bounds a request's header.
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds the time to read a request's header,
	// ReadTimeout the time to read the whole request, body included;
	// IdleTimeout is how long a kept-alive connection may wait for its
	// next request. There is no write timeout: watch streams last.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	// MetricsAuth requires a token with scope read for /metrics.
	MetricsAuth bool
	// CommitEmailDomain is the domain of commit authors' emails:
	// alice@<domain> for the token named alice.
	CommitEmailDomain string
	// AuditMaxSize is the size past which the audit file is rotated.
	AuditMaxSize int64
	// ShutdownTimeout bounds the wait of a graceful shutdown for the
	// requests in flight; past it they are cut and Shutdown returns an
	// error saying how many.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// Banner receives the first start's banner with the administrator
	// token (default os.Stderr). It is never sent to Logger.
	Banner io.Writer
	// Storage tunes the store (optional).
	Storage storage.Options
	// TxnSweepInterval is how often expired transactions are closed
	// (default 30s).
	TxnSweepInterval time.Duration
	// VaultAddr, when set, lets the transit keys of that Vault server be
	// recipients of secrets; VaultToken authenticates (from VAULT_TOKEN).
	VaultAddr  string
	VaultToken string
	// SecretsCacheEntries bounds the in-memory cache of decrypted secrets
	// (0: the default, 1024; negative: no cache).
	SecretsCacheEntries int
	// WatchProgress is the interval of watch progress events (default 10s).
	WatchProgress time.Duration
	// Webhooks tunes webhook deliveries: timeouts, backoff, limits
	// (optional; Dir, Logger and Registerer are the server's).
	Webhooks watch.WebhookOptions
	// Convergence tunes the reconciler records (optional; Dir, Logger and
	// Registerer are the server's).
	Convergence watch.ConvergenceOptions
	// UpstreamInterval is how often an upstream that sets no interval is
	// fetched (follow) or checked (mirror) (default 1m).
	UpstreamInterval time.Duration
	// MaxPushBytes bounds a git push: its body, and its objects once
	// inflated (default 256 MiB).
	MaxPushBytes int64
}

// DefaultConfig returns the defaults: ./gitstate-data, 127.0.0.1:7070,
// auth.DefaultLimits, 1 MiB values, 32 MiB bodies, 64 KiB headers read
// within 10 s, whole requests within 60 s, idle connections closed after
// 120 s, audit files rotated at 100 MiB, authors at gitstate.local.
func DefaultConfig() Config {
	return Config{
		DataDir:           auth.DefaultDataDir,
		Listen:            "127.0.0.1:7070",
		Limits:            auth.DefaultLimits(),
		MaxValueSize:      1 << 20,
		MaxBodyBytes:      32 << 20,
		MaxHeaderBytes:    64 << 10,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		CommitEmailDomain: "gitstate.local",
		AuditMaxSize:      audit.DefaultMaxSize,
		ShutdownTimeout:   30 * time.Second,
	}
}

// setDefaults replaces zero durations and sizes by their defaults.
func (c *Config) setDefaults() {
	d := DefaultConfig()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Banner == nil {
		c.Banner = os.Stderr
	}
	if c.DataDir == "" {
		c.DataDir = d.DataDir
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	if c.MaxValueSize <= 0 {
		c.MaxValueSize = d.MaxValueSize
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.CommitEmailDomain == "" {
		c.CommitEmailDomain = d.CommitEmailDomain
	}
	if c.AuditMaxSize <= 0 {
		c.AuditMaxSize = d.AuditMaxSize
	}
}

// Server is a running gitstate server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   *storage.Store
	tokens  *auth.Store
	audit   *audit.Log
	streams *auth.StreamLimiter
	txns    *txn.Manager
	watch   *watch.Hub
	hooks   *watch.Webhooks
	conv    *watch.Convergence
	ups     *upstream.Manager
	api     *api.Server
	http    *http.Server
	ln      *connTracker
	running handlerTracker
	scheme  string
	ready   atomic.Bool
	stopped chan struct{}

	shutdown    sync.Once
	shutdownErr error
}

// Start opens the store and starts serving. It returns once the listener
// is bound (Addr reports it) and the store is open.
//
// On the first start with no token configured (no auth/tokens.json and no
// AdminToken) it makes an administrator token, writes it to
// <DataDir>/admin.token (mode 0600) and prints it once to Banner.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := checkTransport(ctx, &cfg); err != nil {
		return nil, err
	}
	var tlsCfg *tls.Config
	if cfg.TLSCert != "" {
		// Renewed files are picked up without a restart (certReloader).
		certs, err := newCertReloader(cfg.TLSCert, cfg.TLSKey, cfg.Logger)
		if err != nil {
			return nil, fmt.Errorf("TLS certificate: %w", err)
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
	}
	// Bind first: a busy port fails the start before anything is made.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	s, err := start(ctx, cfg, ln, tlsCfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return s, nil
}

// start opens the server's files and the store and serves on ln.
func start(ctx context.Context, cfg Config, ln net.Listener, tlsCfg *tls.Config) (*Server, error) {
	log := cfg.Logger
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sopts := cfg.Storage
	sopts.Logger = log
	sopts.Registerer = reg
	sopts.MaxValueSize = cfg.MaxValueSize
	sopts.CheckImport = checkImport
	if err := storage.PrivateDir(cfg.DataDir, log); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	abs, _ := filepath.Abs(cfg.DataDir)
	tokens, err := auth.OpenStore(filepath.Join(cfg.DataDir, "auth"))
	if err != nil {
		return nil, err
	}
	tokens.SetEnvAdmin(cfg.AdminToken != "")
	if cfg.AdminToken == "" {
		tok, path, err := auth.Bootstrap(tokens, cfg.DataDir)
		if err != nil {
			return nil, err
		}
		if tok != "" {
			if a, err := filepath.Abs(path); err == nil {
				path = a
			}
			printBanner(cfg.Banner, tok, path)
			log.Info("created the administrator token: no token was configured", "file", path)
		}
	}
	auditLog, err := audit.Open(filepath.Join(cfg.DataDir, "audit"), audit.Options{MaxSize: cfg.AuditMaxSize, Logger: log})
	if err != nil {
		return nil, err
	}
	log.Info("opening store", "data", abs)
	// A direct write's audit line rides in its commit's journal record:
	// the audit log takes it from there (and from a replay after a crash).
	sopts.FS.Notes = auditLog
	st, err := storage.Open(ctx, cfg.DataDir, sopts)
	if err != nil {
		auditLog.Close()
		return nil, err
	}
	// The server's age identity lives in the data directory (created on
	// first start); it is the default recipient of every secret.
	sec, err := secrets.New(secrets.Options{
		KeyFile:      filepath.Join(cfg.DataDir, secrets.KeyFileName),
		VaultAddr:    cfg.VaultAddr,
		VaultToken:   cfg.VaultToken,
		CacheEntries: cfg.SecretsCacheEntries,
		Logger:       log,
	})
	if err != nil {
		auditLog.Close()
		st.Close()
		return nil, err
	}
	log.Info("secrets enabled", "age_recipient", sec.Recipient(), "vault", sec.VaultAddr())
	s := &Server{
		cfg:     cfg,
		log:     log,
		store:   st,
		tokens:  tokens,
		audit:   auditLog,
		streams: auth.NewStreamLimiter(cfg.Limits.StreamsPerToken),
		scheme:  "http",
		stopped: make(chan struct{}),
	}
	s.txns = txn.NewManager(st, txn.Options{Logger: log, SweepInterval: cfg.TxnSweepInterval})
	if err := s.txns.Load(ctx); err != nil {
		s.txns.Close()
		auditLog.Close()
		st.Close()
		return nil, err
	}
	s.watch = watch.NewHub(st, watch.Options{Logger: log})
	// fail undoes what start did so far.
	fail := func(err error) (*Server, error) {
		if s.hooks != nil {
			s.hooks.Close()
		}
		s.watch.Close()
		s.txns.Close()
		auditLog.Close()
		st.Close()
		return nil, err
	}
	wopts := cfg.Webhooks
	wopts.Dir, wopts.Logger, wopts.Registerer = filepath.Join(cfg.DataDir, "webhooks"), log, reg
	if s.hooks, err = watch.NewWebhooks(st, s.watch, wopts); err != nil {
		return fail(err)
	}
	copts := cfg.Convergence
	copts.Dir, copts.Logger, copts.Registerer = filepath.Join(cfg.DataDir, "reconcilers"), log, reg
	if s.conv, err = watch.NewConvergence(st, copts); err != nil {
		return fail(err)
	}
	s.ups, err = upstream.Open(ctx, upstream.Options{
		Store:      st,
		DataDir:    cfg.DataDir,
		Logger:     log,
		Registerer: reg,
		// Followed commits pass the checks of a write by an administrator
		// through a transaction: the upstream's own review stands for the
		// approvals, and its changes may touch any prefix; schemas (and
		// every other value check) still apply.
		// (s.api is set before Start.)
		Check: func(ctx context.Context, repo string, ops []storage.Op) error {
			if err := s.api.CheckValues(ops); err != nil {
				return err
			}
			return s.txns.CheckWrite(ctx, repo, txn.Actor{Name: "upstream", Admin: true}, ops, false)
		},
		DefaultInterval: cfg.UpstreamInterval,
	})
	if err != nil {
		s.conv.Close()
		return fail(err)
	}
	domain := cfg.CommitEmailDomain
	authn := auth.NewAuthenticator(tokens, cfg.AdminToken, cfg.Limits)
	s.api = api.New(api.Options{
		Store:         st,
		Auth:          authn,
		Failures:      authn,
		Auditor:       auditLog,
		AuditLog:      auditLog,
		Tokens:        tokens,
		Streams:       s.streams,
		Logger:        log,
		Registry:      reg,
		MetricsAuth:   cfg.MetricsAuth,
		MaxBodyBytes:  cfg.MaxBodyBytes,
		MaxValueSize:  cfg.MaxValueSize,
		Txns:          s.txns,
		Secrets:       sec,
		Watch:         s.watch,
		WatchProgress: cfg.WatchProgress,
		Webhooks:      s.hooks,
		Convergence:   s.conv,
		Upstreams:     s.ups,
		MaxPushBytes:  cfg.MaxPushBytes,
		CommitEmail:   func(name string) string { return name + "@" + domain },
		Ready: func() error {
			if !s.ready.Load() {
				return errors.New("shutting down")
			}
			return nil
		},
	})
	if tlsCfg != nil {
		s.scheme = "https"
	}
	s.ln = trackConns(ln)
	s.http = newHTTPServer(&cfg, s.running.wrap(s.api), tlsCfg)
	s.hooks.Start()
	s.conv.Start()
	s.ups.Start()
	s.ready.Store(true)
	go func() {
		defer close(s.stopped)
		var err error
		if tlsCfg != nil {
			// The certificate is in TLSConfig; ServeTLS adds HTTP/2.
			err = s.http.ServeTLS(s.ln, "", "")
		} else {
			err = s.http.Serve(s.ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serve", "err", err)
		}
	}()
	log.Info("gitstate listening", "addr", s.URL(), "repos", st.Repos())
	return s, nil
}

// checkTransport refuses plain HTTP on an address that is not loopback,
// unless cfg.Insecure, and half a TLS configuration.
func checkTransport(ctx context.Context, cfg *Config) error {
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("give both --tls-cert and --tls-key, or neither")
	}
	if cfg.TLSCert != "" || cfg.Insecure {
		return nil
	}
	loopback, err := isLoopback(ctx, cfg.Listen)
	if err != nil {
		return err
	}
	if !loopback {
		return fmt.Errorf("refusing to serve plain HTTP on %s, which is not a loopback address: "+
			"tokens and data would cross the network in clear text. Give --tls-cert and --tls-key "+
			"to serve HTTPS, or --insecure if a TLS-terminating proxy or a private network protects it", cfg.Listen)
	}
	return nil
}

// isLoopback reports whether every address listen may bind is a loopback
// one. An empty host binds every interface.
func isLoopback(ctx context.Context, listen string) (bool, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false, fmt.Errorf("listen address %q: %w", listen, err)
	}
	if host == "" {
		return false, nil
	}
	if host == "localhost" {
		return true, nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback(), nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return false, nil
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false, nil
		}
	}
	return true, nil
}

// printBanner shows the administrator token made at first start, once.
func printBanner(w io.Writer, token, path string) {
	fmt.Fprintf(w, `
================================================================================
 gitstate: first start, no token was configured. An administrator token was
 created (it will not be shown again):

     %s

 It is saved, readable only by you, in
     %s
 The gitstate CLI finds it there when run on this machine from the directory
 the server was started in, or with --data (or $GITSTATE_DATA) set to the data
 directory. Elsewhere: export GITSTATE_TOKEN=<token>, or create narrower tokens
 with "gitstate token create".
================================================================================

`, token, path)
}

// newHTTPServer returns the http.Server of cfg around h. It sets no
// WriteTimeout, so that watch streams can last; ReadTimeout bounds the
// reading of a request (header and body) and is lifted by net/http once the
// body is read, so it does not cut long answers either.
func newHTTPServer(cfg *Config, h http.Handler, tlsCfg *tls.Config) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Store returns the server's store.
func (s *Server) Store() *storage.Store { return s.store }

// URL returns the server's base URL (http:// or https://).
func (s *Server) URL() string { return s.scheme + "://" + s.ln.Addr().String() }

// Routes returns every route the server serves.
func (s *Server) Routes() []api.Route { return s.api.Routes() }

// Streams returns the per-token limit on concurrent streams.
func (s *Server) Streams() *auth.StreamLimiter { return s.streams }

// Shutdown stops accepting requests, waits for the ones in flight (writes
// included, with their audit lines) up to the shutdown timeout, stops the
// webhook deliveries (each webhook's position is on disk) and writes the
// reconciler records, then closes the store and the audit log. Past the
// shutdown timeout the requests still in flight are cut (their connections
// closed), and the error says so; their handlers then get up to cutGrace
// to return before the store closes. Later calls return the first one's
// result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Do(func() { s.shutdownErr = s.doShutdown(ctx) })
	return s.shutdownErr
}

// cutGrace bounds the wait, after a shutdown has cut the requests in
// flight, for their handlers to return before the store is closed.
const cutGrace = 5 * time.Second

func (s *Server) doShutdown(ctx context.Context) error {
	s.ready.Store(false)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
	defer cancel()
	// Watch streams never go idle: end them first (they tell their
	// clients where to resume), then wait for the requests in flight.
	s.watch.Close()
	err := s.http.Shutdown(ctx)
	if err != nil {
		// Shutdown has closed the idle connections: the ones left are
		// serving requests, which are cut now.
		n := s.ln.Open()
		s.log.Warn("shutdown timed out: cutting the requests in flight",
			"timeout", s.cfg.ShutdownTimeout, "connections", n)
		s.http.Close()
		what := "requests"
		if n == 1 {
			what = "request"
		}
		err = fmt.Errorf("shutdown timed out after %s with %d %s in flight", s.cfg.ShutdownTimeout, n, what)
		// The cut handlers run on until they notice: the store stays
		// open for them a little longer.
		if left := s.running.drain(cutGrace); left > 0 {
			s.log.Warn("handlers still running after the cut: closing the store under them",
				"handlers", left, "waited", cutGrace)
		}
	}
	<-s.stopped
	// Webhooks read revisions and write their positions: stop them while
	// the store is open. A delivery in flight is abandoned and made again
	// at the next start.
	if herr := s.hooks.Close(); err == nil {
		err = herr
	}
	if cerr := s.conv.Close(); err == nil {
		err = cerr
	}
	// Upstreams push and fetch through the store: stop them while it is
	// open. An attempt in flight is abandoned and made again at the next
	// start.
	s.ups.Close()
	s.txns.Close()
	// The store first: its last flush syncs the audit lines its journal
	// carries into the audit log.
	if cerr := s.store.Close(); err == nil {
		err = cerr
	}
	if aerr := s.audit.Close(); err == nil {
		err = aerr
	}
	s.log.Info("gitstate stopped")
	return err
}
