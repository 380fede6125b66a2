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
	data     string
	listen   string
	logLevel string
	logJSON  bool
	maxValue int64
	vault    string
}

func newServeCmd() *cobra.Command {
	def := server.DefaultConfig()
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gitstate server",
		Long: `Run the gitstate server on a local data directory.

The data directory holds one bare Git repository per repo (clone them with
plain git), the index (deletable: it is rebuilt from Git at start) and the
server's own files, among them age.key: the server's age identity, the
default recipient of secrets (back it up: see docs/SECRETS.md). SIGTERM or
SIGINT stops the server gracefully: writes in flight finish first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context()) },
	}
	f := cmd.Flags()
	f.StringVar(&o.data, "data", envOr("GITSTATE_DATA", def.DataDir), "data directory ($GITSTATE_DATA)")
	f.StringVar(&o.listen, "listen", envOr("GITSTATE_LISTEN", def.Listen), "address to listen on ($GITSTATE_LISTEN)")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.BoolVar(&o.logJSON, "log-json", false, "log JSON lines instead of text")
	f.Int64Var(&o.maxValue, "max-value-size", def.MaxValueSize, "largest value, in bytes")
	f.StringVar(&o.vault, "vault-addr", os.Getenv("GITSTATE_VAULT_ADDR"), "Vault server whose transit keys may be recipients of secrets, token from $VAULT_TOKEN ($GITSTATE_VAULT_ADDR)")
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
	cfg := server.DefaultConfig()
	cfg.DataDir = o.data
	cfg.Listen = o.listen
	cfg.MaxValueSize = o.maxValue
	cfg.AdminToken = os.Getenv("GITSTATE_ADMIN_TOKEN")
	if o.vault != "" {
		cfg.VaultAddr = o.vault
		cfg.VaultToken = os.Getenv("VAULT_TOKEN")
	}
	cfg.Logger = log
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down: finishing requests in flight")
	return srv.Shutdown(context.Background())
}
