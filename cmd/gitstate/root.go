package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
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
	root.SetHelpCommand(newHelpCmd())
	root.InitDefaultCompletionCmd()
	setUsageErrors(root)
	return root
}

// execute runs the command line args and returns the exit status. A
// failure is reported on stderr: as "gitstate: <error>", or with -o json as
// the API's JSON error body (see errorJSON).
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code := exitCode(err)
	asJSON := false
	if f := root.PersistentFlags().Lookup("output"); f != nil && f.Value.String() == "json" {
		asJSON = true
	} else if code == exitUsage {
		// The command line did not parse: -o json may lie past the
		// flag that stopped it.
		asJSON = jsonAsked(args)
	}
	if asJSON {
		if b, jerr := json.Marshal(errorJSON(err, code)); jerr == nil {
			stderr.Write(append(b, '\n'))
			return code
		}
	}
	fmt.Fprintln(stderr, "gitstate:", err)
	return code
}

// jsonAsked reports whether args ask for -o json, up to a "--".
func jsonAsked(args []string) bool {
	for i, a := range args {
		switch {
		case a == "--":
			return false
		case a == "-ojson" || a == "-o=json" || a == "--output=json":
			return true
		case (a == "-o" || a == "--output") && i+1 < len(args) && args[i+1] == "json":
			return true
		}
	}
	return false
}

// errorOutput is a failed command's error with -o json: the API's error
// body ({"error": {"code", "message", "keys", "missing", "details"}}),
// with the CLI's hint when it has one. An error that is not the server's
// has code "usage" (exit status 2) or "client_error" (the network, a local
// file...).
type errorOutput struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	wire.Error
	Hint string `json:"hint,omitempty"`
}

// errorJSON returns the -o json form of err, which exits with code.
func errorJSON(err error, code int) errorOutput {
	var out errorOutput
	var ee *exitErr
	if errors.As(err, &ee) {
		out.Error.Hint = ee.hint
		err = ee.err
	}
	var ge *gitstate.Error
	if errors.As(err, &ge) {
		out.Error.Error = wire.Error{Code: ge.Code, Message: ge.Message, Keys: ge.Keys, Missing: client.MissingOf(ge)}
		for _, d := range ge.Details {
			out.Error.Details = append(out.Error.Details, wire.Detail{Key: d.Key, Path: d.Path, Message: d.Message})
		}
		return out
	}
	out.Error.Code = "client_error"
	if code == exitUsage {
		out.Error.Code = "usage"
	}
	out.Error.Message = err.Error()
	return out
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
