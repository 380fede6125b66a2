// Command dirsync is an example reconciler: it keeps a local directory equal
// to a prefix of a gitstate repo. Each key under the prefix becomes a file
// (the prefix stripped from its path); files that are not keys are removed.
// Files are replaced atomically (written beside, synced, renamed), so a
// reader never sees half a file. When someone edits the directory by hand,
// dirsync notices at its next pass (a change, or every --interval), puts
// the files back, and reports "drifted".
//
//	GITSTATE_TOKEN=$(gitstate token create dirsync --scope read,write) \
//	dirsync --server http://127.0.0.1:7070 --prefix apps/web/ --dir /etc/web
//
// The server records its status reports only under its token's name or a
// sub-name of it (--name dirsync, or dirsync/<host>), unless the token is
// an administrator's.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	client "github.com/gitstate/gitstate/clients/go"
	"github.com/gitstate/gitstate/clients/go/reconcile"
)

func main() {
	server := flag.String("server", envOr("GITSTATE_SERVER", "http://127.0.0.1:7070"), "gitstate server URL")
	repo := flag.String("repo", "default", "repo")
	prefix := flag.String("prefix", "", "the prefix to mirror (e.g. apps/web/)")
	dir := flag.String("dir", "", "the directory to keep equal to the prefix")
	name := flag.String("name", "dirsync", "the reconciler's name in status reports")
	interval := flag.Duration("interval", 30*time.Second, "how often to look for drift even when nothing changes")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "dirsync: --dir is required")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	c, err := client.New(*server, client.WithToken(os.Getenv("GITSTATE_TOKEN")))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dirsync:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &Syncer{Dir: *dir, Prefix: *prefix}
	err = reconcile.Run(ctx, c, reconcile.Options{Name: *name, Repo: *repo, Prefix: *prefix, Interval: *interval, Logger: log}, s.Apply)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "dirsync:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
