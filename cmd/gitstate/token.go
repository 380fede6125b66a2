package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
)

// tokenOptions are the flags of the token commands: the client commands'
// global flags.
type tokenOptions struct {
	g *globalOptions
}

func newTokenCmd(g *globalOptions) *cobra.Command {
	o := &tokenOptions{g: g}
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke access tokens (administrators)",
		Long: `Create, list and revoke access tokens. These commands need an
administrator's token: on the server's machine the CLI takes the one the
server made at first start from <data>/admin.token.

A token has a name (its identity: the author of its commits, the subject of
the audit log), scopes (read, write, txn, approve, secrets:read,
secrets:write, admin; admin implies every other), the repos it may touch
(* for all) and the key prefixes it may touch (all keys by default).`,
	}
	cmd.AddCommand(newTokenCreateCmd(o), newTokenListCmd(o), newTokenRevokeCmd(o))
	return cmd
}

type tokenCreateOptions struct {
	*tokenOptions
	scopes    []string
	repos     []string
	prefixes  []string
	expiresIn time.Duration
}

func newTokenCreateCmd(to *tokenOptions) *cobra.Command {
	o := &tokenCreateOptions{tokenOptions: to}
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a token and print it (it is shown only once)",
		Example: `  gitstate token create ci --scope read,write --repo default --prefix apps/web/ --expires-in 720h
  export GITSTATE_TOKEN=$(gitstate token create alice --scope read)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.scopes, "scope", []string{"read"}, "scopes: read, write, txn, approve, secrets:read, secrets:write, admin")
	f.StringSliceVar(&o.repos, "repo", nil, "repos the token may touch (default: all)")
	f.StringSliceVar(&o.prefixes, "prefix", nil, "key prefixes the token may touch (default: all keys)")
	f.DurationVar(&o.expiresIn, "expires-in", 0, "lifetime, such as 720h (default: no expiry)")
	return cmd
}

func (o *tokenCreateOptions) run(cmd *cobra.Command, name string) error {
	c, err := o.client(cmd)
	if err != nil {
		return err
	}
	req := wire.CreateTokenRequest{Name: name, Scopes: o.scopes, Repos: o.repos, Prefixes: o.prefixes}
	if o.expiresIn > 0 {
		req.ExpiresIn = o.expiresIn.String()
	}
	var tok wire.CreatedToken
	if err := c.do(cmd.Context(), http.MethodPost, "/v1/tokens", req, &tok); err != nil {
		return err
	}
	if o.g.output == "json" {
		return printJSON(cmd.OutOrStdout(), tok)
	}
	// The token alone on stdout, for $(...); the rest on stderr.
	fmt.Fprintln(cmd.OutOrStdout(), tok.Secret)
	fmt.Fprintf(cmd.ErrOrStderr(), "created token %s for %s (scopes %s, repos %s%s%s); it will not be shown again\n",
		tok.ID, tok.Name, strings.Join(tok.Scopes, ","), strings.Join(tok.Repos, ","),
		prefixNote(tok.Prefixes), expiryNote(tok.ExpiresAt))
	return nil
}

func prefixNote(p []string) string {
	if len(p) == 0 {
		return ""
	}
	return ", prefixes " + strings.Join(p, ",")
}

func expiryNote(t *time.Time) string {
	if t == nil {
		return ""
	}
	return ", expires " + t.Local().Format(time.RFC3339)
}

func newTokenListCmd(o *tokenOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List tokens (never their secrets)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			var list wire.TokenList
			if err := c.do(cmd.Context(), http.MethodGet, "/v1/tokens", nil, &list); err != nil {
				return err
			}
			if o.g.output == "json" {
				return printJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tREPOS\tPREFIXES\tCREATED\tSTATUS")
			now := time.Now()
			for _, t := range list.Tokens {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, strings.Join(t.Scopes, ","),
					strings.Join(t.Repos, ","), orDash(strings.Join(t.Prefixes, ",")),
					t.CreatedAt.Local().Format("2006-01-02 15:04"), tokenStatus(t, now))
			}
			return tw.Flush()
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func tokenStatus(t wire.Token, now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return "revoked " + t.RevokedAt.Local().Format("2006-01-02 15:04")
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return "expired " + t.ExpiresAt.Local().Format("2006-01-02 15:04")
	case t.ExpiresAt != nil:
		return "active until " + t.ExpiresAt.Local().Format("2006-01-02 15:04")
	}
	return "active"
}

func newTokenRevokeCmd(o *tokenOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token; its next request is refused",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			var tok wire.Token
			if err := c.do(cmd.Context(), http.MethodDelete, "/v1/tokens/"+url.PathEscape(args[0]), nil, &tok); err != nil {
				return err
			}
			if o.g.output == "json" {
				return printJSON(cmd.OutOrStdout(), tok)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked token %s (%s)\n", tok.ID, tok.Name)
			return nil
		},
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// client returns an API client with the command's server and token.
func (o *tokenOptions) client(cmd *cobra.Command) (*apiClient, error) {
	g := o.g
	if g.output != "text" && g.output != "json" {
		return nil, usageErrorf("--output must be text or json, not %q", g.output)
	}
	server := g.server
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	tok, err := g.root.clientToken(g.cmd, server, g.token)
	if err != nil {
		return nil, err
	}
	return &apiClient{base: strings.TrimSuffix(server, "/"), token: tok, hc: http.DefaultClient}, nil
}

// apiClient is the little HTTP client of the token commands, until they
// move onto clients/go.
type apiClient struct {
	base  string
	token string
	hc    *http.Client
}

// apiError is an error answer of the API.
type apiError struct {
	status int
	body   wire.Error
}

func (e *apiError) Error() string {
	msg := e.body.Message
	if msg == "" {
		msg = http.StatusText(e.status)
	}
	if e.body.Missing != "" {
		msg += " (missing " + e.body.Missing + ")"
	}
	return msg
}

func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		e := &apiError{status: resp.StatusCode}
		var er wire.ErrorResponse
		if json.Unmarshal(b, &er) == nil {
			e.body = er.Error
		}
		if resp.StatusCode == http.StatusUnauthorized && c.token == "" {
			return errors.Join(e, errors.New("no token: give --token or $GITSTATE_TOKEN, or run on the server's machine with --data pointing at its data directory"))
		}
		return e
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
