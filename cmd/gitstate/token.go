package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
)

func newTokenCmd(g *globalOptions) *cobra.Command {
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
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTokenCreateCmd(g), newTokenListCmd(g), newTokenRevokeCmd(g))
	return cmd
}

// tokenCreateOptions are the options of "gitstate token create".
type tokenCreateOptions struct {
	g         *globalOptions
	scopes    []string
	repos     []string
	prefixes  []string
	expiresIn time.Duration
}

func newTokenCreateCmd(g *globalOptions) *cobra.Command {
	o := &tokenCreateOptions{g: g}
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a token and print it (it is shown only once)",
		Long: `Create a token and print it alone on stdout, for $(...); what it may do goes to
stderr. The server keeps only its hash: it cannot be shown again.`,
		Example: `  gitstate token create ci --scope read,write --repo default --prefix apps/web/ --expires-in 720h
  export GITSTATE_TOKEN=$(gitstate token create alice --scope read,txn)`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: g.runE(o.run),
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.scopes, "scope", []string{"read"}, "scopes: read, write, txn, approve, secrets:read, secrets:write, admin")
	f.StringSliceVar(&o.repos, "repo", nil, "repos the token may touch (default: all)")
	f.StringSliceVar(&o.prefixes, "prefix", nil, "key prefixes the token may touch (default: all keys)")
	f.DurationVar(&o.expiresIn, "expires-in", 0, "lifetime, 1s to 87600h, such as 720h (default: no expiry)")
	return cmd
}

func (o *tokenCreateOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	if o.expiresIn < 0 {
		return usageErrorf("--expires-in must not be negative")
	}
	c, err := o.g.client()
	if err != nil {
		return err
	}
	req := &wire.CreateTokenRequest{Name: args[0], Scopes: o.scopes, Repos: o.repos, Prefixes: o.prefixes}
	if o.expiresIn > 0 {
		req.ExpiresIn = o.expiresIn.String()
	}
	tok, err := c.CreateToken(cmd.Context(), req)
	if err != nil {
		return err
	}
	if err := p.tokenCreated(tok); err != nil {
		return err
	}
	if o.g.output == "text" {
		fmt.Fprintf(cmd.ErrOrStderr(), "created token %s for %s (scopes %s, repos %s%s%s); it will not be shown again\n",
			tok.ID, tok.Name, strings.Join(tok.Scopes, ","), strings.Join(tok.Repos, ","),
			prefixNote(tok.Prefixes), expiryNote(tok.ExpiresAt))
	}
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

// tokenListOptions are the options of "gitstate token ls".
type tokenListOptions struct{ g *globalOptions }

func newTokenListCmd(g *globalOptions) *cobra.Command {
	o := &tokenListOptions{g: g}
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List tokens (never their secrets)",
		Args:    usageArgs(cobra.NoArgs),
		RunE:    g.runE(o.run),
	}
}

func (o *tokenListOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	c, err := o.g.client()
	if err != nil {
		return err
	}
	l, err := c.ListTokens(cmd.Context())
	if err != nil {
		return err
	}
	return p.tokens(l)
}

// tokenRevokeOptions are the options of "gitstate token revoke".
type tokenRevokeOptions struct{ g *globalOptions }

func newTokenRevokeCmd(g *globalOptions) *cobra.Command {
	o := &tokenRevokeOptions{g: g}
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token; its next request is refused",
		Long: `Revoke a token. Its next request gets 401 (token_revoked), and the
watch streams it holds open end within about a second, before any later
revision, with a close event whose reason is "token revoked" (a long poll
it waits in gets 401). The token stays listed as revoked. An expired token's
streams end the same way ("token expired").`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: g.runE(o.run),
	}
}

func (o *tokenRevokeOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	c, err := o.g.client()
	if err != nil {
		return err
	}
	tok, err := c.RevokeToken(cmd.Context(), args[0])
	if err != nil {
		return err
	}
	return p.tokenRevoked(tok)
}

// tokenCreated prints the token alone, for $(...).
func (p *textPrinter) tokenCreated(t *wire.CreatedToken) error { return p.printf("%s\n", t.Secret) }

func (p *textPrinter) tokens(l *wire.TokenList) error {
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tREPOS\tPREFIXES\tCREATED\tSTATUS")
	now := time.Now()
	for _, t := range l.Tokens {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, strings.Join(t.Scopes, ","),
			strings.Join(t.Repos, ","), orDash(strings.Join(t.Prefixes, ",")),
			t.CreatedAt.Local().Format("2006-01-02 15:04"), tokenStatus(t, now))
	}
	return tw.Flush()
}

func (p *textPrinter) tokenRevoked(t *wire.Token) error {
	return p.printf("revoked token %s (%s)\n", t.ID, t.Name)
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
