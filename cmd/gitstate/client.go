package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate"
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
	cmds := []*cobra.Command{
		newGetCmd(g), newPutCmd(g), newDelCmd(g), newLsCmd(g), newLogCmd(g),
		newDiffCmd(g), newRevertCmd(g), newRollbackCmd(g), newRepoCmd(g), newWatchCmd(g),
	}
	for _, c := range cmds {
		setUsageErrors(c)
		root.AddCommand(c)
	}
	root.AddCommand(newExitCodesTopic())
	return g
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
	return c, nil
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
}

// Error returns the error's text and, for an API error that names keys, the
// keys: "precondition_failed: precondition failed for 1 key(s) (keys: k)".
func (e *exitErr) Error() string {
	var ge *gitstate.Error
	if errors.As(e.err, &ge) && len(ge.Keys) > 0 {
		return e.err.Error() + " (keys: " + strings.Join(ge.Keys, ", ") + ")"
	}
	return e.err.Error()
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

// runE adapts a command's run function: its error gets an exit status.
func runE(run func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error { return withExitCode(run(cmd, args)) }
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
// errors.
func setUsageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitErr{code: exitUsage, err: fmt.Errorf("%v\nusage: %s", err, c.UseLine())}
	})
	for _, sub := range cmd.Commands() {
		setUsageErrors(sub)
	}
}

// newExitCodesTopic is the help topic "gitstate help exit-codes".
func newExitCodesTopic() *cobra.Command {
	return &cobra.Command{
		Use:   "exit-codes",
		Short: "Exit statuses of the client commands",
		Long: `The client commands (get, put, del, ls, log, diff, revert, rollback, repo)
exit with:

  0  success
  1  any other error: the server's, the network's
  2  usage: an unknown flag, a missing or extra argument, a bad flag value
  3  not found: the key, the repo or the revision does not exist (404)
  4  the state is not as expected: a precondition failed (412, --if-match,
     --create) or the state changed (409: a revert over later changes);
     read again and retry

An error is printed on stderr as "gitstate: <code>: <message>", where code
is the API's error code (key_not_found, precondition_failed, ...).`,
	}
}
