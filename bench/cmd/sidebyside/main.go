// Command sidebyside measures gitstate side by side with etcd and plain Git
// on this machine and writes RESULTS.md. Run it from bench/:
//
//	go run ./cmd/sidebyside          # the full run, about 12 minutes
//	go run ./cmd/sidebyside -quick   # a smoke run, about a minute
//
// See package github.com/gitstate/gitstate/bench/sidebyside.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gitstate/gitstate/bench/sidebyside"
)

func main() {
	if sidebyside.IsEtcdServer() {
		os.Exit(sidebyside.EtcdServerMain())
	}
	os.Exit(run())
}

func run() int {
	quick := flag.Bool("quick", false, "a smoke run: small datasets, one round, short windows")
	rounds := flag.Int("rounds", 0, "rounds (default: 3, or 1 with -quick)")
	out := flag.String("out", "", "the report to write (default: RESULTS.md; standard output with -quick)")
	systems := flag.String("systems", "gitstate,etcd,git,etcd-shared", "the systems to run, comma-separated: gitstate, etcd, git, etcd-shared (etcd with one client for all workers)")
	src := flag.String("src", "", "the gitstate checkout to build the server from (default: the one around this directory)")
	work := flag.String("work", "", "the directory for the systems' data (default: a new temporary directory)")
	keep := flag.Bool("keep", false, "keep the work directory after the run")
	workloads := flag.String("workloads", "", "the workloads to run, comma-separated: get, put1, putN, list, txn, watch, cold (default: all)")
	profile := flag.String("profile", "", "a directory: profile the servers with `perf record -g` in every measurement window")
	flag.Parse()

	cfg := sidebyside.DefaultConfig()
	if *quick {
		cfg = sidebyside.QuickConfig()
	}
	if *rounds > 0 {
		cfg.Rounds = *rounds
	}
	if *out != "" {
		cfg.Out = *out
	}
	cfg.Systems = strings.Split(*systems, ",")
	cfg.WorkDir, cfg.Keep, cfg.Profile = *work, *keep, *profile
	if *workloads != "" {
		cfg.Workloads = strings.Split(*workloads, ",")
	}
	cfg.Command = "cd bench && go run ./cmd/sidebyside"
	if args := os.Args[1:]; len(args) > 0 {
		cfg.Command += " " + strings.Join(args, " ")
	}
	cfg.Log = os.Stdout
	cfg.Source = *src
	if cfg.Source == "" {
		wd, _ := os.Getwd()
		s, ok := sidebyside.FindSource(wd)
		if !ok {
			fmt.Fprintln(os.Stderr, "sidebyside: not inside a gitstate checkout: give -src")
			return 2
		}
		cfg.Source = s
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := sidebyside.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "sidebyside:", err)
		return 1
	}
	return 0
}
