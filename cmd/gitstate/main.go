// Command gitstate is the gitstate server and its command-line client.
//
//	gitstate serve                 start the server on ./gitstate-data
//	gitstate put apps/web/x.yaml - < x.yaml
//	gitstate get apps/web/x.yaml
//
// Run "gitstate help" for every command.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
