package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
	"github.com/gitstate/gitstate/server"
)

// driver is what the end-to-end scenarios need of gitstate: implemented by
// the Go client (clientDriver) and by the built binary (cliDriver), so that
// the same scenarios check both. Errors are *gitstate.Error (the CLI's are
// rebuilt from its stderr and also carry its exit status).
type driver interface {
	CreateRepo(name string) (*wire.Repo, error)
	ListRepos() (*wire.RepoList, error)
	Put(repo, key string, value []byte, o client.PutOptions) (*wire.WriteResult, error)
	Get(repo, key string, rev wire.Rev) (*client.Value, error)
	Del(repo, key string, o client.DeleteOptions) (*wire.DeleteResult, error)
	// List reads a whole listing (at most max keys when max > 0); o.Limit
	// is the page size.
	List(repo string, o client.ListOptions, max int) (*wire.ListResponse, error)
	Log(repo string, o client.LogOptions) (*wire.CommitList, error)
	Diff(repo string, from, to wire.Rev, o client.DiffOptions) (*wire.DiffResponse, error)
	Revert(repo string, rev wire.Rev, force bool) (*wire.CommitResult, error)
	Rollback(repo string, to wire.Rev, prefix string) (*wire.CommitResult, error)

	// InTxn returns a driver whose key-value calls (Put, Get, Del, List)
	// act inside transaction id; its other calls are the receiver's.
	InTxn(id string) driver
	// As returns a driver that authenticates with token.
	As(token string) driver
	CreateToken(name string, scopes ...string) (*wire.CreatedToken, error)
	BeginTxn(repo string, o client.BeginTxnOptions) (*wire.Txn, error)
	ListTxns(repo string, o client.ListTxnsOptions) (*wire.TxnList, error)
	ShowTxn(repo, id string) (*wire.Txn, error)
	TxnDiff(repo, id string, o client.TxnDiffOptions) (*wire.TxnDiff, error)
	ApproveTxn(repo, id, comment string) (*wire.Txn, error)
	ReportTxn(repo, id string, r wire.ReportRequest) (*wire.Txn, error)
	CommitTxn(repo, id string) (*wire.CommitResult, error)
	RebaseTxn(repo, id string) (*wire.Txn, error)
	AbortTxn(repo, id string) (*wire.Txn, error)
}

// testToken is the administrator token of test servers started without
// one of their own.
const testToken = "gitstate-test-admin-token"

// startServer starts the real server on a loopback port over a fresh data
// directory, stopped when the test ends, and returns its URL.
func startServer(t testing.TB, adminToken string) string {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	if adminToken == "" {
		adminToken = testToken
	}
	cfg.AdminToken = adminToken
	cfg.Banner = io.Discard
	cfg.ShutdownTimeout = 10 * time.Second
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return "http://" + srv.Addr()
}

// clientDriver drives gitstate through the Go client.
type clientDriver struct {
	c *client.Client
	// txn is the transaction the key-value calls act in ("": main).
	txn string
}

var _ driver = clientDriver{}

func newClientDriver(t testing.TB, url string) clientDriver {
	c, err := client.New(url, client.WithToken(testToken))
	if err != nil {
		t.Fatal(err)
	}
	return clientDriver{c: c}
}

// kv returns the repo's keys on main, or in the driver's transaction: the
// same choice the CLI's key-value commands make.
func (d clientDriver) kv(repo string) keyValues {
	if d.txn != "" {
		return d.c.Repo(repo).Txn(d.txn)
	}
	return d.c.Repo(repo)
}

func (d clientDriver) CreateRepo(name string) (*wire.Repo, error) {
	return d.c.CreateRepo(context.Background(), name)
}

func (d clientDriver) ListRepos() (*wire.RepoList, error) { return d.c.ListRepos(context.Background()) }

func (d clientDriver) Put(repo, key string, value []byte, o client.PutOptions) (*wire.WriteResult, error) {
	return d.kv(repo).Put(context.Background(), key, value, &o)
}

func (d clientDriver) Get(repo, key string, rev wire.Rev) (*client.Value, error) {
	return d.kv(repo).Get(context.Background(), key, &client.GetOptions{Rev: rev})
}

func (d clientDriver) Del(repo, key string, o client.DeleteOptions) (*wire.DeleteResult, error) {
	return d.kv(repo).Delete(context.Background(), key, &o)
}

func (d clientDriver) List(repo string, o client.ListOptions, max int) (*wire.ListResponse, error) {
	return d.kv(repo).ListAll(context.Background(), &o, max)
}

func (d clientDriver) Log(repo string, o client.LogOptions) (*wire.CommitList, error) {
	return d.c.Repo(repo).Log(context.Background(), &o)
}

func (d clientDriver) Diff(repo string, from, to wire.Rev, o client.DiffOptions) (*wire.DiffResponse, error) {
	return d.c.Repo(repo).Diff(context.Background(), from, to, &o)
}

func (d clientDriver) Revert(repo string, rev wire.Rev, force bool) (*wire.CommitResult, error) {
	return d.c.Repo(repo).Revert(context.Background(), rev, &client.RevertOptions{Force: force})
}

func (d clientDriver) Rollback(repo string, to wire.Rev, prefix string) (*wire.CommitResult, error) {
	return d.c.Repo(repo).Rollback(context.Background(), to, &client.RollbackOptions{Prefix: prefix})
}

func (d clientDriver) InTxn(id string) driver { d.txn = id; return d }

func (d clientDriver) As(token string) driver {
	c, err := client.New(d.c.BaseURL(), client.WithToken(token))
	if err != nil {
		panic(err) // the URL was accepted before
	}
	d.c = c
	return d
}

func (d clientDriver) CreateToken(name string, scopes ...string) (*wire.CreatedToken, error) {
	return d.c.CreateToken(context.Background(), &wire.CreateTokenRequest{Name: name, Scopes: scopes})
}

func (d clientDriver) BeginTxn(repo string, o client.BeginTxnOptions) (*wire.Txn, error) {
	return d.c.Repo(repo).BeginTxn(context.Background(), &o)
}

func (d clientDriver) ListTxns(repo string, o client.ListTxnsOptions) (*wire.TxnList, error) {
	return d.c.Repo(repo).ListTxns(context.Background(), &o)
}

func (d clientDriver) ShowTxn(repo, id string) (*wire.Txn, error) {
	return d.c.Repo(repo).GetTxn(context.Background(), id)
}

func (d clientDriver) TxnDiff(repo, id string, o client.TxnDiffOptions) (*wire.TxnDiff, error) {
	return d.c.Repo(repo).TxnDiff(context.Background(), id, &o)
}

func (d clientDriver) ApproveTxn(repo, id, comment string) (*wire.Txn, error) {
	return d.c.Repo(repo).ApproveTxn(context.Background(), id, comment)
}

func (d clientDriver) ReportTxn(repo, id string, r wire.ReportRequest) (*wire.Txn, error) {
	return d.c.Repo(repo).ReportTxn(context.Background(), id, &r)
}

func (d clientDriver) CommitTxn(repo, id string) (*wire.CommitResult, error) {
	return d.c.Repo(repo).CommitTxn(context.Background(), id)
}

func (d clientDriver) RebaseTxn(repo, id string) (*wire.Txn, error) {
	return d.c.Repo(repo).RebaseTxn(context.Background(), id)
}

func (d clientDriver) AbortTxn(repo, id string) (*wire.Txn, error) {
	return d.c.Repo(repo).AbortTxn(context.Background(), id)
}

// The gitstate binary, built once per test run by gitstateBinary.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// gitstateBinary builds cmd/gitstate with "go build" (once) and returns the
// path of the binary.
func gitstateBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			binErr = fmt.Errorf("go tool not found: %w", err)
			return
		}
		if binDir, binErr = os.MkdirTemp("", "gitstate-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "gitstate")
		out, err := exec.Command(goTool, "build", "-o", binPath, "github.com/gitstate/gitstate/cmd/gitstate").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// cliEnv is the environment of a run of the binary: the test's, without
// its GITSTATE_ variables, with GITSTATE_SERVER set to url.
func cliEnv(url string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GITSTATE_") {
			env = append(env, kv)
		}
	}
	return append(env, "GITSTATE_SERVER="+url, "GITSTATE_TOKEN="+testToken)
}

// cliResult is what one run of the binary did.
type cliResult struct {
	stdout, stderr string
	exit           int
}

// runCLI runs the binary with args and stdin, with GITSTATE_SERVER set to
// url and every other GITSTATE_ variable of the test's environment removed
// (env adds some back).
func runCLI(t testing.TB, url string, stdin []byte, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(gitstateBinary(t), args...)
	cmd.Env = append(cliEnv(url), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.exit = ee.ExitCode()
	case err != nil:
		t.Fatalf("run gitstate %q: %v", args, err)
	}
	return res
}

// cliError is a failed run of the binary: the API error decoded from the
// JSON on stderr (-o json) and the exit status.
type cliError struct {
	exit int
	err  *gitstate.Error
}

func (e *cliError) Error() string { return fmt.Sprintf("%v (exit status %d)", e.err, e.exit) }
func (e *cliError) Unwrap() error { return e.err }

// cliDriver drives gitstate through the built binary with -o json.
type cliDriver struct {
	t   testing.TB
	url string
	// txn is given to the key-value commands as --txn ("": main).
	txn string
	// token, when set, is given as --token.
	token string
}

var _ driver = cliDriver{}

// run runs a client command with -o json and decodes its output into out.
func (d cliDriver) run(out any, stdin []byte, args ...string) error {
	d.t.Helper()
	args = append(args, "-o", "json")
	if d.token != "" {
		args = append(args, "--token", d.token)
	}
	res := runCLI(d.t, d.url, stdin, nil, args...)
	if res.exit != 0 {
		// With -o json the error is the API's JSON error body.
		var eo errorOutput
		dec := json.NewDecoder(strings.NewReader(res.stderr))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&eo); err != nil || eo.Error.Code == "" || dec.More() {
			d.t.Fatalf("gitstate %q: exit %d, stderr %q is not one JSON error (%v)", args, res.exit, res.stderr, err)
		}
		ge := &gitstate.Error{Code: eo.Error.Code, Message: eo.Error.Message, Keys: eo.Error.Keys}
		return &cliError{exit: res.exit, err: ge}
	}
	if res.stderr != "" {
		d.t.Errorf("gitstate %q succeeded but wrote to stderr: %q", args, res.stderr)
	}
	dec := json.NewDecoder(strings.NewReader(res.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		d.t.Fatalf("gitstate %q -o json: decode %q: %v", args, res.stdout, err)
	}
	return nil
}

func (d cliDriver) CreateRepo(name string) (*wire.Repo, error) {
	var out wire.Repo
	return &out, d.run(&out, nil, "repo", "create", name)
}

func (d cliDriver) ListRepos() (*wire.RepoList, error) {
	var out wire.RepoList
	return &out, d.run(&out, nil, "repo", "ls")
}

// kvArgs starts the arguments of a key-value command: in the driver's
// transaction, if it has one.
func (d cliDriver) kvArgs(verb, repo string) []string {
	args := []string{verb, "--repo", repo}
	if d.txn != "" {
		args = append(args, "--txn", d.txn)
	}
	return args
}

// Put always sends the value on stdin ("-"), so that any bytes go through.
func (d cliDriver) Put(repo, key string, value []byte, o client.PutOptions) (*wire.WriteResult, error) {
	args := append(d.kvArgs("put", repo), key, "-")
	if o.IfMatch != "" {
		args = append(args, "--if-match", o.IfMatch)
	}
	if o.Create {
		args = append(args, "--create")
	}
	if o.Message != "" {
		args = append(args, "-m", o.Message)
	}
	var out wire.WriteResult
	return &out, d.run(&out, value, args...)
}

func (d cliDriver) Get(repo, key string, rev wire.Rev) (*client.Value, error) {
	args := append(d.kvArgs("get", repo), key)
	if rev != "" {
		args = append(args, "--rev", string(rev))
	}
	var out getOutput
	if err := d.run(&out, nil, args...); err != nil {
		return nil, err
	}
	v := &client.Value{Key: out.Key, ETag: out.ETag, Size: out.Size, Revision: out.Revision, Commit: out.Commit, ModRevision: out.ModRevision}
	switch {
	case out.Value != nil:
		v.Data = []byte(*out.Value)
	case out.ValueBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*out.ValueBase64)
		if err != nil {
			d.t.Fatalf("get %s: value_base64: %v", key, err)
		}
		v.Data = b
	default:
		d.t.Fatalf("get %s -o json: neither value nor value_base64", key)
	}
	return v, nil
}

func (d cliDriver) Del(repo, key string, o client.DeleteOptions) (*wire.DeleteResult, error) {
	args := append(d.kvArgs("del", repo), key)
	if o.IfMatch != "" {
		args = append(args, "--if-match", o.IfMatch)
	}
	if o.Prefix {
		args = append(args, "--prefix")
	}
	var out wire.DeleteResult
	return &out, d.run(&out, nil, args...)
}

func (d cliDriver) List(repo string, o client.ListOptions, max int) (*wire.ListResponse, error) {
	args := d.kvArgs("ls", repo)
	if o.Prefix != "" {
		args = append(args, o.Prefix)
	}
	if o.After != "" {
		args = append(args, "--after", o.After)
	}
	if o.Limit > 0 {
		args = append(args, "--page-size", strconv.Itoa(o.Limit))
	}
	if o.Values {
		args = append(args, "--values")
	}
	if o.Rev != "" {
		args = append(args, "--rev", string(o.Rev))
	}
	if max > 0 {
		args = append(args, "--limit", strconv.Itoa(max))
	}
	var out wire.ListResponse
	return &out, d.run(&out, nil, args...)
}

func (d cliDriver) Log(repo string, o client.LogOptions) (*wire.CommitList, error) {
	args := []string{"log", "--repo", repo}
	if o.Key != "" {
		args = append(args, "--key", o.Key)
	}
	if o.Prefix != "" {
		args = append(args, "--prefix", o.Prefix)
	}
	if o.Limit > 0 {
		args = append(args, "--limit", strconv.Itoa(o.Limit))
	}
	if o.After > 0 {
		args = append(args, "--after", strconv.FormatInt(o.After, 10))
	}
	var out wire.CommitList
	return &out, d.run(&out, nil, args...)
}

func (d cliDriver) Diff(repo string, from, to wire.Rev, o client.DiffOptions) (*wire.DiffResponse, error) {
	args := []string{"diff", "--repo", repo, string(from)}
	if to != "" {
		args = append(args, string(to))
	}
	if o.Prefix != "" {
		args = append(args, "--prefix", o.Prefix)
	}
	if o.Patch {
		args = append(args, "--patch")
	}
	var out wire.DiffResponse
	return &out, d.run(&out, nil, args...)
}

func (d cliDriver) Revert(repo string, rev wire.Rev, force bool) (*wire.CommitResult, error) {
	args := []string{"revert", "--repo", repo, string(rev)}
	if force {
		args = append(args, "--force")
	}
	var out wire.CommitResult
	return &out, d.run(&out, nil, args...)
}

func (d cliDriver) Rollback(repo string, to wire.Rev, prefix string) (*wire.CommitResult, error) {
	args := []string{"rollback", "--repo", repo, string(to)}
	if prefix != "" {
		args = append(args, "--prefix", prefix)
	}
	var out wire.CommitResult
	return &out, d.run(&out, nil, args...)
}

func (d cliDriver) InTxn(id string) driver { d.txn = id; return d }

func (d cliDriver) As(token string) driver { d.token = token; return d }

func (d cliDriver) CreateToken(name string, scopes ...string) (*wire.CreatedToken, error) {
	var out wire.CreatedToken
	return &out, d.run(&out, nil, "token", "create", name, "--scope", strings.Join(scopes, ","))
}

func (d cliDriver) BeginTxn(repo string, o client.BeginTxnOptions) (*wire.Txn, error) {
	args := []string{"txn", "begin", "--repo", repo}
	if o.Message != "" {
		args = append(args, "-m", o.Message)
	}
	if o.TTL != 0 {
		args = append(args, "--ttl", o.TTL.String())
	}
	if o.Base != "" {
		args = append(args, "--base", string(o.Base))
	}
	var out wire.Txn
	return &out, d.run(&out, nil, args...)
}

func (d cliDriver) ListTxns(repo string, o client.ListTxnsOptions) (*wire.TxnList, error) {
	args := []string{"txn", "ls", "--repo", repo}
	if o.Status != "" {
		args = append(args, "--status", o.Status)
	}
	if o.Author != "" {
		args = append(args, "--author", o.Author)
	}
	var out wire.TxnList
	return &out, d.run(&out, nil, args...)
}

func (d cliDriver) ShowTxn(repo, id string) (*wire.Txn, error) {
	var out wire.Txn
	return &out, d.run(&out, nil, "txn", "show", "--repo", repo, id)
}

func (d cliDriver) TxnDiff(repo, id string, o client.TxnDiffOptions) (*wire.TxnDiff, error) {
	args := []string{"txn", "diff", "--repo", repo, id}
	if o.AgainstHead {
		args = append(args, "--against", "head")
	}
	if o.Patch {
		args = append(args, "--patch")
	}
	var out wire.TxnDiff
	return &out, d.run(&out, nil, args...)
}

func (d cliDriver) ApproveTxn(repo, id, comment string) (*wire.Txn, error) {
	args := []string{"txn", "approve", "--repo", repo, id}
	if comment != "" {
		args = append(args, "-m", comment)
	}
	var out wire.Txn
	return &out, d.run(&out, nil, args...)
}

// ReportTxn sends the details on stdin ("--details -").
func (d cliDriver) ReportTxn(repo, id string, r wire.ReportRequest) (*wire.Txn, error) {
	args := []string{"txn", "report", "--repo", repo, id, "--reporter", r.Reporter, "--status", r.Status}
	if r.Summary != "" {
		args = append(args, "--summary", r.Summary)
	}
	if r.Commit != "" {
		args = append(args, "--commit", r.Commit)
	}
	if r.Details != nil {
		args = append(args, "--details", "-")
	}
	var out wire.Txn
	return &out, d.run(&out, r.Details, args...)
}

func (d cliDriver) CommitTxn(repo, id string) (*wire.CommitResult, error) {
	var out wire.CommitResult
	return &out, d.run(&out, nil, "txn", "commit", "--repo", repo, id)
}

func (d cliDriver) RebaseTxn(repo, id string) (*wire.Txn, error) {
	var out wire.Txn
	return &out, d.run(&out, nil, "txn", "rebase", "--repo", repo, id)
}

func (d cliDriver) AbortTxn(repo, id string) (*wire.Txn, error) {
	var out wire.Txn
	return &out, d.run(&out, nil, "txn", "abort", "--repo", repo, id)
}
