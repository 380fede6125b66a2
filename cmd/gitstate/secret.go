package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
)

// secretOptions are the flags every secret command shares: the client
// commands' global flags (--txn among them).
type secretOptions struct {
	g *globalOptions
}

func newSecretCmd(g *globalOptions) *cobra.Command {
	o := &secretOptions{g: g}
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Write, read, list and rotate secrets (SOPS-encrypted values)",
		Long: `Secrets are values kept encrypted in the repo, as SOPS documents
(<key>.sops.json in the tree), versioned in the same commits as the rest of
the state. The server encrypts them to the recipients of the repo's
.gitstate/sops.yaml (its own age key by default).

A secret's value is read from stdin or from a file, never from the command
line, where it would land in the shell's history and in ps.

The server is $GITSTATE_SERVER (--server), the token $GITSTATE_TOKEN, and
$GITSTATE_TXN (--txn) works inside a transaction.`,
	}
	cmd.AddCommand(newSecretPutCmd(o), newSecretGetCmd(o), newSecretLsCmd(o), newSecretRotateCmd(o))
	return cmd
}

type secretPutOptions struct {
	*secretOptions
	fromFile string
	message  string
	ifMatch  string
	create   bool
}

func newSecretPutCmd(so *secretOptions) *cobra.Command {
	o := &secretPutOptions{secretOptions: so}
	cmd := &cobra.Command{
		Use:   "put KEY [--from-file FILE]",
		Short: "Write a secret, reading its value from stdin or a file",
		Long: `Write a secret. The value is read, byte for byte, from --from-file or
from stdin (printf '%s' "$PASSWORD" | gitstate secret put apps/web/db, or
gitstate secret put apps/web/db < file); mind the trailing newline that echo
adds. Writing the value it already has makes no commit.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			value, err := o.value(cmd, args)
			if err != nil {
				return err
			}
			defer clear(value)
			q := url.Values{}
			if o.message != "" {
				q.Set("message", o.message)
			}
			h := http.Header{}
			if o.ifMatch != "" {
				h.Set("If-Match", `"`+strings.Trim(o.ifMatch, `"`)+`"`)
			}
			if o.create {
				h.Set("If-None-Match", "*")
			}
			var res wire.WriteResult
			if err := o.do(cmd, http.MethodPut, o.secretPath(args[0]), q, h, bytes.NewReader(value), &res); err != nil {
				return err
			}
			return o.print(cmd, res, func(w io.Writer) {
				if res.Changed {
					fmt.Fprintf(w, "wrote %s: revision %d, etag %s\n", args[0], res.Revision, res.ETag)
				} else {
					fmt.Fprintf(w, "%s already has this value: no commit (revision %d)\n", args[0], res.Revision)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.fromFile, "from-file", "f", "", "read the value from this file (- for stdin)")
	f.StringVarP(&o.message, "message", "m", "", "commit message")
	f.StringVar(&o.ifMatch, "if-match", "", "write only if the secret's etag is this")
	f.BoolVar(&o.create, "create", false, "write only if the secret does not exist")
	return cmd
}

// value reads the secret's value: from --from-file, else from stdin. A
// value given as an argument is taken, with a warning.
func (o *secretPutOptions) value(cmd *cobra.Command, args []string) ([]byte, error) {
	stderr := cmd.ErrOrStderr()
	switch {
	case len(args) == 2 && o.fromFile != "":
		return nil, errors.New("give the value with --from-file or on stdin, not as an argument too")
	case len(args) == 2:
		fmt.Fprintln(stderr, "gitstate: warning: a secret given on the command line lands in your shell's history and in ps; pipe it on stdin or use --from-file")
		return []byte(args[1]), nil
	case o.fromFile != "" && o.fromFile != "-":
		return os.ReadFile(o.fromFile)
	}
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(stderr, "gitstate: reading the secret from the terminal; end it with Ctrl-D")
		}
	}
	v, err := io.ReadAll(in)
	if err != nil {
		return nil, fmt.Errorf("read the value: %w", err)
	}
	if len(v) == 0 {
		return nil, errors.New("empty value: pipe the secret on stdin or use --from-file")
	}
	return v, nil
}

type secretGetOptions struct {
	*secretOptions
	rev string
}

func newSecretGetCmd(so *secretOptions) *cobra.Command {
	o := &secretGetOptions{secretOptions: so}
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Print a secret's value (every read is audited)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if o.rev != "" {
				q.Set("rev", o.rev)
			}
			var buf bytes.Buffer
			if err := o.do(cmd, http.MethodGet, o.secretPath(args[0]), q, nil, nil, &buf); err != nil {
				return err
			}
			defer clear(buf.Bytes())
			if o.g.output == "json" {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]string{"key": args[0], "value": buf.String()})
			}
			_, err := cmd.OutOrStdout().Write(buf.Bytes())
			return err
		},
	}
	cmd.Flags().StringVar(&o.rev, "rev", "", "read at this revision (number or commit id)")
	return cmd
}

type secretLsOptions struct {
	*secretOptions
	rev string
}

func newSecretLsCmd(so *secretOptions) *cobra.Command {
	o := &secretLsOptions{secretOptions: so}
	cmd := &cobra.Command{
		Use:   "ls [PREFIX]",
		Short: "List secrets (keys and revisions, never values)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if len(args) == 1 {
				q.Set("prefix", args[0])
			}
			if o.rev != "" {
				q.Set("rev", o.rev)
			}
			all := wire.SecretList{Items: []wire.SecretItem{}}
			for {
				var page wire.SecretList
				if err := o.do(cmd, http.MethodGet, o.base()+"/secrets", q, nil, nil, &page); err != nil {
					return err
				}
				all.Revision = page.Revision
				all.Items = append(all.Items, page.Items...)
				if page.Next == "" {
					break
				}
				q.Set("after", page.Next)
				if page.Revision > 0 {
					q.Set("rev", fmt.Sprint(page.Revision))
				}
			}
			return o.print(cmd, all, func(w io.Writer) {
				for _, it := range all.Items {
					fmt.Fprintf(w, "%s\t%d\n", it.Key, it.ModRevision)
				}
			})
		},
	}
	cmd.Flags().StringVar(&o.rev, "rev", "", "list at this revision")
	return cmd
}

type secretRotateOptions struct {
	*secretOptions
	keepDataKey bool
	message     string
}

func newSecretRotateCmd(so *secretOptions) *cobra.Command {
	o := &secretRotateOptions{secretOptions: so}
	cmd := &cobra.Command{
		Use:   "rotate [PREFIX]",
		Short: "Re-encrypt secrets to the current recipients, in one commit",
		Long: `Re-encrypt every secret under PREFIX (all by default) to the recipients
.gitstate/sops.yaml gives it now, in one commit. Each secret gets a new data
key, so a recipient removed from the rules cannot decrypt the new versions;
--keep-data-key only re-wraps the current data keys (SOPS's updatekeys).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := wire.RotateRequest{KeepDataKey: o.keepDataKey, Message: o.message}
			if len(args) == 1 {
				req.Prefix = args[0]
			}
			body, _ := json.Marshal(req)
			h := http.Header{"Content-Type": {"application/json"}}
			var res wire.RotateResult
			if err := o.do(cmd, http.MethodPost, o.base()+"/secrets/rotate", nil, h, bytes.NewReader(body), &res); err != nil {
				return err
			}
			return o.print(cmd, res, func(w io.Writer) {
				if !res.Changed {
					fmt.Fprintf(w, "nothing to re-encrypt (revision %d)\n", res.Revision)
					return
				}
				fmt.Fprintf(w, "re-encrypted %d secret(s): revision %d\n", len(res.Keys), res.Revision)
				for _, k := range res.Keys {
					fmt.Fprintf(w, "  %s\n", k)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&o.keepDataKey, "keep-data-key", false, "keep the data keys; only encrypt them to the current recipients")
	cmd.Flags().StringVarP(&o.message, "message", "m", "", "commit message")
	return cmd
}

// base returns the path of the repo, or of the transaction.
func (o *secretOptions) base() string {
	p := "/v1/repos/" + url.PathEscape(o.g.repo)
	if o.g.txn != "" {
		p += "/txns/" + url.PathEscape(o.g.txn)
	}
	return p
}

// secretPath returns the path of a secret, each segment escaped.
func (o *secretOptions) secretPath(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return o.base() + "/secrets/" + strings.Join(segs, "/")
}

// print writes v as JSON with -o json, else with text.
func (o *secretOptions) print(cmd *cobra.Command, v any, text func(io.Writer)) error {
	if o.g.output == "json" {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(v)
	}
	text(cmd.OutOrStdout())
	return nil
}

// httpError is an error answer of the server.
type httpError struct {
	status int
	body   wire.Error
}

func (e *httpError) Error() string {
	msg := e.body.Code + ": " + e.body.Message
	if e.body.Missing != "" {
		msg += " (missing " + e.body.Missing + ")"
	}
	return msg
}

// ExitCode maps the answer's status to the process's exit status, as the
// other client commands do (see "gitstate help exit-codes").
func (e *httpError) ExitCode() int {
	switch e.status {
	case http.StatusNotFound:
		return exitNotFound
	case http.StatusPreconditionFailed, http.StatusConflict:
		return exitPrecondition
	}
	return exitError
}

// do sends a request to the server and decodes a JSON answer into out (or
// copies a raw one into out when it is a *bytes.Buffer). The token comes
// the client commands' usual way. (A minimal client: the CLI's other
// commands use clients/go, which the secret commands will move to.)
func (o *secretOptions) do(cmd *cobra.Command, method, path string, q url.Values, h http.Header, body io.Reader, out any) error {
	server := o.g.server
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	tok, err := o.g.root.clientToken(o.g.cmd, server, o.g.token)
	if err != nil {
		return err
	}
	u := strings.TrimRight(server, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(cmd.Context(), method, u, body)
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	client := &http.Client{Timeout: 5 * time.Minute}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode >= 400 {
		var er wire.ErrorResponse
		data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		if json.Unmarshal(data, &er) != nil || er.Error.Code == "" {
			return &httpError{status: res.StatusCode, body: wire.Error{Code: "http_" + fmt.Sprint(res.StatusCode), Message: res.Status}}
		}
		return &httpError{status: res.StatusCode, body: er.Error}
	}
	if buf, ok := out.(*bytes.Buffer); ok {
		_, err := io.Copy(buf, res.Body)
		return err
	}
	return json.NewDecoder(res.Body).Decode(out)
}
