package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// Defaults of the client commands' global flags.
const (
	defaultServer = "http://127.0.0.1:7070"
	defaultRepo   = "default"
	cliUserAgent  = "gitstate-cli/1"
)

// globalOptions are the flags every client command shares.
type globalOptions struct {
	root   *rootOptions
	cmd    *cobra.Command // the root command
	server string
	repo   string
	token  string
	output string
	// txn is the transaction the key-value commands act in (--txn,
	// $GITSTATE_TXN); empty for main.
	txn string
	// tokenless is set once a client was made without a token, so that a
	// 401 can say where a token comes from.
	tokenless bool
}

// addClientCommands registers the client commands and their global flags
// on root, and returns those flags.
func addClientCommands(root *cobra.Command, o *rootOptions) *globalOptions {
	g := &globalOptions{root: o, cmd: root}
	f := root.PersistentFlags()
	f.StringVar(&g.server, "server", envOr("GITSTATE_SERVER", defaultServer), "server URL ($GITSTATE_SERVER)")
	f.StringVar(&g.repo, "repo", envOr("GITSTATE_REPO", defaultRepo), "repo ($GITSTATE_REPO)")
	// The token's default is read when a command runs, so that help never
	// prints it.
	f.StringVar(&g.token, "token", "", "bearer token (default $GITSTATE_TOKEN)")
	f.StringVarP(&g.output, "output", "o", "text", "output format: text or json (the API's JSON, for scripts)")
	f.StringVar(&g.txn, "txn", os.Getenv("GITSTATE_TXN"),
		"transaction ($GITSTATE_TXN): get, put, del, ls and secret act inside it, txn commands default to it; --txn= for main")
	root.AddGroup(
		&cobra.Group{ID: groupKeys, Title: "Keys (on main, or inside the transaction --txn names):"},
		&cobra.Group{ID: groupHistory, Title: "History (main only):"},
		&cobra.Group{ID: groupTxn, Title: "Transactions:"},
		&cobra.Group{ID: groupConvergence, Title: "Convergence:"},
		&cobra.Group{ID: groupAdmin, Title: "Administration:"},
	)
	groups := []struct {
		id   string
		cmds []*cobra.Command
	}{
		{groupKeys, []*cobra.Command{inTxn(newGetCmd(g)), inTxn(newPutCmd(g)), inTxn(newDelCmd(g)), inTxn(newLsCmd(g)), inTxn(newSecretCmd(g))}},
		{groupHistory, []*cobra.Command{mainOnly(newLogCmd(g)), mainOnly(newDiffCmd(g)), mainOnly(newRevertCmd(g)),
			mainOnly(newRollbackCmd(g)), mainOnly(newWatchCmd(g))}},
		{groupTxn, []*cobra.Command{newTxnCmd(g)}},
		{groupConvergence, []*cobra.Command{newReconcilersCmd(g), mainOnly(newRolloutCmd(g)), newWebhookCmd(g)}},
		{groupAdmin, []*cobra.Command{newRepoCmd(g), newTokenCmd(g), newAuditCmd(g)}},
	}
	for _, gr := range groups {
		for _, c := range gr.cmds {
			c.GroupID = gr.id
			root.AddCommand(c)
		}
	}
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error { return g.checkTxn(cmd) }
	root.AddCommand(newExitCodesTopic())
	return g
}

// Command groups of "gitstate help".
const (
	groupKeys        = "keys"
	groupHistory     = "history"
	groupTxn         = "txn"
	groupConvergence = "convergence"
	groupAdmin       = "admin"
)

// txnAnnotation is the annotation that says how a command treats the
// transaction --txn (or $GITSTATE_TXN) names: txnInside, txnMainOnly, or
// (no annotation) it has nothing to do with a repo's keys and ignores it.
const (
	txnAnnotation = "gitstate/txn"
	// txnInside: the command reads and writes the transaction's branch.
	txnInside = "inside"
	// txnMainOnly: the command works on main only; a transaction is a
	// usage error, lest a revert meant for the transaction land on main.
	txnMainOnly = "main-only"
)

// inTxn marks cmd as acting inside the transaction, when there is one.
func inTxn(cmd *cobra.Command) *cobra.Command { return annotate(cmd, txnAnnotation, txnInside) }

// mainOnly marks cmd as refusing a transaction, and says so in its help.
func mainOnly(cmd *cobra.Command) *cobra.Command {
	cmd.Long = strings.TrimSpace(cmd.Long + "\n\n" +
		"This command works on main only: it refuses to run while --txn or\n" +
		"$GITSTATE_TXN names a transaction (give --txn= to run it on main).")
	return annotate(cmd, txnAnnotation, txnMainOnly)
}

func annotate(cmd *cobra.Command, key, value string) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[key] = value
	return cmd
}

// checkTxn refuses a transaction to a command that works on main only.
func (g *globalOptions) checkTxn(cmd *cobra.Command) error {
	if g.txn == "" || cmd.Annotations[txnAnnotation] != txnMainOnly {
		return nil
	}
	from := "--txn"
	if f := cmd.Flags().Lookup("txn"); f == nil || !f.Changed {
		from = "$GITSTATE_TXN"
	}
	return usageErrorf("%s works on main only, and %s names transaction %s: give --txn= to use main, "+
		"or see the transaction with \"gitstate txn show\" and \"gitstate txn diff\"", cmd.Name(), from, g.txn)
}

// client returns a client of the server the flags name.
func (g *globalOptions) client() (*client.Client, error) {
	server := g.server
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	token, err := g.root.clientToken(g.cmd, server, g.token)
	if err != nil {
		return nil, err
	}
	c, err := client.New(server, client.WithToken(token), client.WithUserAgent(cliUserAgent))
	if err != nil {
		return nil, usageErrorf("--server: %v", err)
	}
	g.tokenless = token == ""
	return c, nil
}

// keyValues is what the key-value commands need of main (*client.Repo) or
// of a transaction (*client.Txn).
type keyValues interface {
	Get(ctx context.Context, key string, opts *client.GetOptions) (*client.Value, error)
	Put(ctx context.Context, key string, value []byte, opts *client.PutOptions) (*wire.WriteResult, error)
	Delete(ctx context.Context, key string, opts *client.DeleteOptions) (*wire.DeleteResult, error)
	ListAll(ctx context.Context, opts *client.ListOptions, maxItems int) (*wire.ListResponse, error)
}

var (
	_ keyValues = (*client.Repo)(nil)
	_ keyValues = (*client.Txn)(nil)
)

// keyValues returns the keys the flags name: the repo's on main, or the
// transaction's when --txn names one.
func (g *globalOptions) keyValues() (keyValues, error) {
	repo, err := g.repoClient()
	if err != nil {
		return nil, err
	}
	if g.txn != "" {
		return repo.Txn(g.txn), nil
	}
	return repo, nil
}

// txnArg returns the transaction a txn command is about: its argument, or
// the transaction --txn (or $GITSTATE_TXN) names.
func (g *globalOptions) txnArg(args []string) (string, error) {
	if len(args) > 0 {
		return args[0], nil
	}
	if g.txn == "" {
		return "", usageErrorf("which transaction? give its id, --txn or $GITSTATE_TXN")
	}
	return g.txn, nil
}

// runE adapts a client command's run function: its error gets an exit
// status, and a 401 without a token says where tokens come from.
func (g *globalOptions) runE(run func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := run(cmd, args)
		if g.tokenless && gitstate.KindOf(err) == gitstate.KindUnauthorized {
			err = &exitErr{code: exitError, err: err,
				hint: "no token: give --token or $GITSTATE_TOKEN, or run on the server's machine with --data pointing at its data directory"}
		}
		return withExitCode(err)
	}
}

// repoClient returns a handle on the repo the flags name.
func (g *globalOptions) repoClient() (*client.Repo, error) {
	c, err := g.client()
	if err != nil {
		return nil, err
	}
	return c.Repo(g.repo), nil
}

// Exit codes of the gitstate command. See "gitstate help exit-codes".
const (
	exitError        = 1 // any other error: the server's, the network's, a bug
	exitUsage        = 2 // bad command line: unknown flag, wrong arguments
	exitNotFound     = 3 // the key, repo or revision does not exist
	exitPrecondition = 4 // a precondition failed or the state changed (412, 409)
)

// exitErr carries the exit status of a failed command; root's exitCode
// finds it with errors.As.
type exitErr struct {
	code int
	err  error
	// hint, when set, tells what to do about err: printed on a line of its
	// own after the error, or as "hint" in the JSON of -o json.
	hint string
}

// Error returns the error's text and, for an API error that names keys, the
// keys: "precondition_failed: precondition failed for 1 key(s) (keys: k)";
// then the hint, if any, on a line of its own.
func (e *exitErr) Error() string {
	s := e.err.Error()
	var ge *gitstate.Error
	if errors.As(e.err, &ge) && len(ge.Keys) > 0 {
		s += " (keys: " + strings.Join(ge.Keys, ", ") + ")"
	}
	if e.hint != "" {
		s += "\n" + e.hint
	}
	return s
}
func (e *exitErr) Unwrap() error { return e.err }

// ExitCode returns the process's exit status.
func (e *exitErr) ExitCode() int { return e.code }

// usageErrorf returns a usage error (exit status 2).
func usageErrorf(format string, args ...any) error {
	return &exitErr{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// withExitCode gives err the exit status of its kind.
func withExitCode(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitErr
	if errors.As(err, &ee) {
		return err
	}
	code := exitError
	var ge *gitstate.Error
	if errors.As(err, &ge) {
		switch ge.Kind {
		case gitstate.KindNotFound:
			code = exitNotFound
		case gitstate.KindPrecondition, gitstate.KindConflict:
			code = exitPrecondition
		}
	}
	return &exitErr{code: code, err: err}
}

// usageArgs makes an argument validator's errors usage errors.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &exitErr{code: exitUsage, err: fmt.Errorf("%v\nusage: %s", err, cmd.UseLine())}
		}
		return nil
	}
}

// setUsageErrors makes the flag errors of cmd and its subcommands usage
// errors, and so an unknown subcommand of a command that only groups
// others (the root, "secret"): cobra would otherwise fail it with a plain
// error (exit 1) or print the help and succeed.
func setUsageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitErr{code: exitUsage, err: fmt.Errorf("%v\nusage: %s", err, c.UseLine())}
	})
	if cmd.HasSubCommands() && !cmd.Runnable() {
		cmd.Args = unknownCommand
		cmd.RunE = func(c *cobra.Command, args []string) error { return c.Help() }
		cmd.SuggestionsMinimumDistance = 2
	}
	for _, sub := range cmd.Commands() {
		setUsageErrors(sub)
	}
}

// unknownCommand refuses, as a usage error, the arguments of a command that
// only groups others: its first is not one of them. The hint names the
// commands whose names are close, or the help.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	hint := fmt.Sprintf("run \"%s --help\" for the commands", cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		hint = "did you mean " + strings.Join(s, " or ") + "?"
	}
	return &exitErr{code: exitUsage, err: fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath()), hint: hint}
}

// newHelpCmd is "gitstate help [command]": cobra's, except that an unknown
// topic is a usage error rather than a message and success.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long:  "Help prints the help of any command or topic (gitstate help exit-codes).",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || cmd == nil || len(rest) > 0 {
				return usageErrorf("unknown help topic %q: run \"gitstate help\" for the commands", strings.Join(args, " "))
			}
			cmd.InitDefaultHelpFlag()
			return cmd.Help()
		},
	}
}

// newExitCodesTopic is the help topic "gitstate help exit-codes".
func newExitCodesTopic() *cobra.Command {
	return &cobra.Command{
		Use:   "exit-codes",
		Short: "Exit statuses of the client commands",
		Long: `The client commands exit with the statuses below; serve and help exit 0
or 1, and 2 on a usage error, as every command does.

  0  success
  1  any other error: the server's, the network's, a refusal (401, 403:
     a missing scope, a protected prefix, approvals a transaction still
     needs), an invalid request or value (400, 422)
  2  usage: an unknown command or help topic, an unknown flag, a missing
     or extra argument, a bad flag value, or a transaction (--txn,
     $GITSTATE_TXN) given to a command that works on main only
  3  not found: the key, the repo, the revision, the transaction or the
     webhook does not exist (404)
  4  the state is not as expected: a precondition failed (412, --if-match,
     --create) or the state changed (409: a revert over later changes, a
     transaction whose keys main changed meanwhile, a transaction that is
     no longer open); read again and retry

An error is printed on stderr as "gitstate: <code>: <message>", where code
is the API's error code (key_not_found, precondition_failed, ...), and a
hint, when there is one, on the next line ("svc is a directory; use
--prefix to delete the keys under it").

With -o json the error is printed on stderr as one line of JSON, the API's
error body with the hint added, and the exit status is the same:

  {"error":{"code":"key_not_found","message":"key \"svc\" does not exist",
   "keys":["svc"],"hint":"svc is a directory; use --prefix to delete the keys under it"}}

It carries what the API's error does: code, message, and keys, missing
(what a token lacks, on 403) and details (a schema's violations) when they
apply. An error that is not the server's has code "usage" (status 2) or
"client_error" (the network, a local file...).`,
	}
}
