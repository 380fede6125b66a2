package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/server"
)

type serveOptions struct {
	root     *rootOptions
	listen   string
	logLevel string
	logJSON  bool
	cfg      server.Config
	// debugListen serves the profiler, when set.
	debugListen string
}

func newServeCmd(root *rootOptions) *cobra.Command {
	def := server.DefaultConfig()
	o := &serveOptions{root: root, cfg: def}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gitstate server",
		Long: `Run the gitstate server on a local data directory (--data).

The data directory holds one bare Git repository per repo (clone them with
plain git), the index (deletable: it is rebuilt from Git at start) and the
server's own files: auth/tokens.json (token hashes), audit/ (the audit log),
age.key (the server's age identity, the default recipient of secrets: back
it up, see docs/SECRETS.md) and, after the first start, admin.token.

On the first start with no token configured (and no GITSTATE_ADMIN_TOKEN),
the server creates an administrator token, saves it to <data>/admin.token
(mode 0600) and prints it once. The CLI finds it there on this machine.
GITSTATE_ADMIN_TOKEN, when set, is accepted as an administrator token too.

Plain HTTP is served only on loopback addresses: elsewhere give --tls-cert
and --tls-key, or --insecure behind a TLS proxy.

SIGTERM or SIGINT stops the server gracefully: watch streams are told where to
resume, and requests in flight (writes, git pushes) finish first, for up to
--shutdown-timeout. Past it they are cut, the log says how many, and the
server exits with status 1 ("shutdown timed out after 30s with 2 requests in
flight"): a client's request was cut, and may or may not have been applied.
A clean shutdown exits 0. Give a slow push (docs/GIT.md allows its body 30
minutes) time with e.g. --shutdown-timeout 5m, and the process manager more
(Kubernetes: terminationGracePeriodSeconds).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context()) },
	}
	c := &o.cfg
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", envOr("GITSTATE_LISTEN", def.Listen), "address to listen on ($GITSTATE_LISTEN)")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.BoolVar(&o.logJSON, "log-json", false, "log JSON lines instead of text")
	f.Int64Var(&c.MaxValueSize, "max-value-size", def.MaxValueSize, "largest value, in bytes")
	f.Int64Var(&c.MaxBodyBytes, "max-body-size", def.MaxBodyBytes, "largest request body, in bytes (413 beyond)")
	f.Int64Var(&c.Storage.HotCacheBytes, "value-cache", 32<<20, "bytes of values (and absent keys) read at head kept in memory, one cache for all repos (at least 32 MiB; -1: none)")
	f.Int64Var(&c.Storage.IndexCacheBytes, "index-cache", 64<<20, "bytes of the index's block cache, shared by all repos")
	f.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) file: serve HTTPS, TLS 1.2 or later (reloaded when it or --tls-key changes)")
	f.StringVar(&c.TLSKey, "tls-key", "", "PEM private key file of --tls-cert")
	f.BoolVar(&c.Insecure, "insecure", false, "allow plain HTTP on an address that is not loopback")
	f.BoolVar(&c.MetricsAuth, "metrics-auth", false, "require a token with scope read for /metrics")
	f.StringVar(&c.CommitEmailDomain, "commit-email-domain", def.CommitEmailDomain, "commits by the token named alice are authored by alice@<domain>")
	f.Float64Var(&c.Limits.TokenRate, "token-rate", def.Limits.TokenRate, "requests per second one token may make, sustained (0: no limit)")
	f.IntVar(&c.Limits.TokenBurst, "token-burst", def.Limits.TokenBurst, "requests one token may make at once above --token-rate")
	f.Float64Var(&c.Limits.FailRate, "auth-fail-rate", def.Limits.FailRate, "failed authentications per second one client address may make before 429 (0: no limit)")
	f.IntVar(&c.Limits.FailBurst, "auth-fail-burst", def.Limits.FailBurst, "failed authentications one client address may make at once")
	f.IntVar(&c.Limits.StreamsPerToken, "max-streams-per-token", def.Limits.StreamsPerToken, "watch streams one token may hold open (0: no limit)")
	f.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", def.ReadHeaderTimeout, "time allowed to read a request's header")
	f.DurationVar(&c.ReadTimeout, "read-timeout", def.ReadTimeout, "time allowed to read a whole request, body included")
	f.DurationVar(&c.IdleTimeout, "idle-timeout", def.IdleTimeout, "how long an idle kept-alive connection stays open")
	f.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", def.ShutdownTimeout, "on SIGTERM or SIGINT, how long requests in flight may take to finish before they are cut (then the exit status is 1)")
	f.Int64Var(&c.AuditMaxSize, "audit-max-size", def.AuditMaxSize, "size in bytes past which the audit log is rotated (rotated files are kept)")
	f.StringVar(&c.VaultAddr, "vault-addr", os.Getenv("GITSTATE_VAULT_ADDR"), "Vault server whose transit keys may be recipients of secrets, token from $VAULT_TOKEN ($GITSTATE_VAULT_ADDR)")
	f.StringVar(&o.debugListen, "debug-listen", "", "serve Go's profiler (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060 (off by default)")
	return cmd
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newLogger(level string, json bool) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("bad --log-level %q", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	if json {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
}

func (o *serveOptions) run(ctx context.Context) error {
	log, err := newLogger(o.logLevel, o.logJSON)
	if err != nil {
		return err
	}
	cfg := o.cfg
	cfg.DataDir = o.root.data
	cfg.Listen = o.listen
	cfg.AdminToken = os.Getenv("GITSTATE_ADMIN_TOKEN")
	if cfg.VaultAddr != "" {
		cfg.VaultToken = os.Getenv("VAULT_TOKEN")
	}
	cfg.Logger = log
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	if o.debugListen != "" {
		stop, err := serveDebug(o.debugListen, log)
		if err != nil {
			srv.Shutdown(context.Background())
			return err
		}
		defer stop()
	}
	<-ctx.Done()
	log.Info("shutting down: finishing requests in flight")
	return srv.Shutdown(context.Background())
}
