// Package server is the gitstate process: configuration, the store, the
// HTTP listener and its lifecycle (start, readiness, graceful shutdown that
// finishes in-flight writes).
package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/secrets"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/txn"
)

// Config is the server's configuration.
type Config struct {
	// DataDir holds the repos, the index and the server's own files.
	DataDir string
	// Listen is the address to serve on (host:port).
	Listen string
	// AdminToken, when set, authenticates as the administrator (from
	// GITSTATE_ADMIN_TOKEN).
	AdminToken string
	// MaxValueSize bounds values, in bytes.
	MaxValueSize int64
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
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
}

// DefaultConfig returns the defaults: ./gitstate-data, 127.0.0.1:7070.
func DefaultConfig() Config {
	return Config{
		DataDir:         "gitstate-data",
		Listen:          "127.0.0.1:7070",
		MaxValueSize:    1 << 20,
		ShutdownTimeout: 30 * time.Second,
	}
}

// Server is a running gitstate server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   *storage.Store
	txns    *txn.Manager
	api     *api.Server
	http    *http.Server
	ln      net.Listener
	ready   atomic.Bool
	stopped chan struct{}
}

// Start opens the store and starts serving. It returns once the listener
// is bound (Addr reports it) and the store is open.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.MaxValueSize <= 0 {
		cfg.MaxValueSize = 1 << 20
	}
	log := cfg.Logger
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sopts := cfg.Storage
	sopts.Logger = log
	sopts.Registerer = reg
	sopts.MaxValueSize = cfg.MaxValueSize
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	abs, _ := filepath.Abs(cfg.DataDir)
	log.Info("opening store", "data", abs)
	st, err := storage.Open(ctx, cfg.DataDir, sopts)
	if err != nil {
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
		st.Close()
		return nil, err
	}
	log.Info("secrets enabled", "age_recipient", sec.Recipient(), "vault", sec.VaultAddr())
	s := &Server{cfg: cfg, log: log, store: st, stopped: make(chan struct{})}
	s.txns = txn.NewManager(st, txn.Options{Logger: log, SweepInterval: cfg.TxnSweepInterval})
	if err := s.txns.Load(ctx); err != nil {
		s.txns.Close()
		st.Close()
		return nil, err
	}
	var auth api.Authenticator
	if cfg.AdminToken != "" {
		auth = staticToken(cfg.AdminToken)
	}
	s.api = api.New(api.Options{
		Store:        st,
		Auth:         auth,
		Logger:       log,
		Registry:     reg,
		MaxValueSize: cfg.MaxValueSize,
		Txns:         s.txns,
		Secrets:      sec,
		Ready: func() error {
			if !s.ready.Load() {
				return errors.New("shutting down")
			}
			return nil
		},
	})
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		s.txns.Close()
		st.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	s.ln = ln
	s.http = &http.Server{
		Handler:           s.api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	s.ready.Store(true)
	go func() {
		defer close(s.stopped)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serve", "err", err)
		}
	}()
	log.Info("gitstate listening", "addr", "http://"+ln.Addr().String(), "repos", st.Repos())
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Store returns the server's store.
func (s *Server) Store() *storage.Store { return s.store }

// Shutdown stops accepting requests, waits for the ones in flight (writes
// included) up to the shutdown timeout, then closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.http.Shutdown(ctx)
	<-s.stopped
	s.txns.Close()
	if cerr := s.store.Close(); err == nil {
		err = cerr
	}
	s.log.Info("gitstate stopped")
	return err
}

// staticToken authenticates one bearer token as the administrator.
type staticToken string

func (t staticToken) Authenticate(r *http.Request) (*api.Principal, error) {
	tok, ok := bearer(r)
	if !ok {
		return nil, gitstate.Errorf(gitstate.KindUnauthorized, "unauthorized", "missing bearer token")
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(t)) != 1 {
		return nil, gitstate.Errorf(gitstate.KindUnauthorized, "unauthorized", "invalid token")
	}
	return &api.Principal{TokenID: "admin", Name: "admin", Scopes: []api.Scope{api.ScopeAdmin}, Repos: []string{"*"}}, nil
}

// bearer returns the request's bearer token (or HTTP basic password).
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok && tok != "" {
		return strings.TrimSpace(tok), true
	}
	if _, pw, ok := r.BasicAuth(); ok && pw != "" {
		return pw, true
	}
	return "", false
}
