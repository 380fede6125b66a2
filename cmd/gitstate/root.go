package main

import (
	"errors"
	"io/fs"
	"net"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/server/auth"
)

// rootOptions holds the flags every command shares.
type rootOptions struct {
	// data is the server's data directory. serve keeps its files there;
	// client commands run on the same machine read the administrator token
	// the server wrote there at first start (see clientToken).
	data string
}

func newRootCmd() *cobra.Command {
	o := &rootOptions{}
	root := &cobra.Command{
		Use:   "gitstate",
		Short: "gitstate: a Git-native desired-state store",
		Long: `gitstate is a Git-native desired-state store: the server ("gitstate serve")
and its command-line client.

The client commands talk to --server ($GITSTATE_SERVER) about --repo
($GITSTATE_REPO) with --token ($GITSTATE_TOKEN; on the server's machine the
administrator token of --data is found without one). -o json prints the API's
JSON, for scripts; "gitstate help exit-codes" lists the exit statuses.

--txn ($GITSTATE_TXN) names a transaction: get, put, del, ls and secret act inside it,
the txn commands default to it, and the commands that work on main only (log,
diff, revert, rollback, watch, rollout) refuse to run; give --txn= for main.
See "gitstate txn --help".`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&o.data, "data", envOr("GITSTATE_DATA", auth.DefaultDataDir),
		"the server's data directory ($GITSTATE_DATA); client commands on the server's machine take the administrator token from its admin.token")
	addClientCommands(root, o)
	serve := newServeCmd(o)
	serve.GroupID = groupAdmin
	root.AddCommand(serve)
	return root
}

// clientToken returns the bearer token of a client command talking to
// server: the --token flag's value (given as token), else $GITSTATE_TOKEN,
// else the administrator token the server wrote at first start into the
// data directory (--data, $GITSTATE_DATA, or ./gitstate-data, found with
// auth.FindLocalToken). The file is read only when the data directory was
// named (--data or $GITSTATE_DATA) or the server is on a loopback address,
// so that a local administrator token is never sent to another machine.
// With none of them it returns "", and the server's 401 explains.
//
// Every client command gets its token here: this is the hook that keeps
// the quick start free of copy and paste.
func (o *rootOptions) clientToken(cmd *cobra.Command, server, token string) (string, error) {
	if token != "" {
		return token, nil
	}
	if t := os.Getenv("GITSTATE_TOKEN"); t != "" {
		return t, nil
	}
	named := os.Getenv("GITSTATE_DATA") != ""
	if f := cmd.Flags().Lookup("data"); f != nil && f.Changed {
		named = true
	}
	if !named && !loopbackURL(server) {
		return "", nil
	}
	t, err := auth.FindLocalToken(o.data)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return t, err
}

// loopbackURL reports whether a server URL names this machine.
func loopbackURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// exitCode maps an error to the process's exit status.
func exitCode(err error) int {
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return 1
}
