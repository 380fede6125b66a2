package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
)

// newWebhookCmd is "gitstate webhook": create, ls, rm, deliveries.
func newWebhookCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "webhook",
		Aliases: []string{"webhooks"},
		Short:   "Create, list and remove webhooks; see their deliveries (administrators)",
		Long: `A webhook POSTs every revision of main that changes a key under its prefix to
a URL, at least once and in revision order, with the revision's JSON (as
"gitstate watch -o json" prints it) signed in X-Gitstate-Signature
(sha256=<hex HMAC-SHA256 of the body, keyed with the webhook's secret>).
Failed deliveries are retried with backoff; a restart resumes after the last
revision delivered. These commands need an administrator's token.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newWebhookCreateCmd(g), newWebhookLsCmd(g), newWebhookRmCmd(g), newWebhookDeliveriesCmd(g))
	return cmd
}

// webhookCreateOptions are the options of "gitstate webhook create".
type webhookCreateOptions struct {
	g          *globalOptions
	prefix     string
	secretFile string
	from       string
}

func newWebhookCreateCmd(g *globalOptions) *cobra.Command {
	o := &webhookCreateOptions{g: g}
	cmd := &cobra.Command{
		Use:   "create URL",
		Short: "Create a webhook",
		Long: `Create a webhook that POSTs revisions to URL. Its secret (16 to 1,024 bytes)
is read from --secret-file ("-": standard input), or made up and printed once:
the server never shows it again. Deliveries start after --from (default: the
head, so the next revision is the first delivered).`,
		Example: `  gitstate webhook create https://deploy.example.com/hook --prefix apps/web/
  printf %s "$HOOK_SECRET" | gitstate webhook create https://deploy.example.com/hook --secret-file -`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: g.runE(o.run),
	}
	f := cmd.Flags()
	f.StringVar(&o.prefix, "prefix", "", "deliver only the revisions that change a key under this prefix")
	f.StringVar(&o.secretFile, "secret-file", "", `read the secret from this file ("-": standard input) instead of making one up`)
	f.StringVar(&o.from, "from", "", "deliver the revisions after this one (default: the head)")
	return cmd
}

// createdWebhook is the output of "gitstate webhook create": the webhook,
// and the secret when the command made it up.
type createdWebhook struct {
	wire.Webhook
	Secret string `json:"secret,omitempty"`
}

func (o *webhookCreateOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	var secret []byte
	made := false
	switch o.secretFile {
	case "":
		b := make([]byte, 32)
		rand.Read(b)
		secret, made = []byte(hex.EncodeToString(b)), true
	case "-":
		secret, err = io.ReadAll(cmd.InOrStdin())
	default:
		secret, err = os.ReadFile(o.secretFile)
	}
	if err != nil {
		return fmt.Errorf("read the secret: %w", err)
	}
	// A file's final newline is not part of the secret.
	secret = bytes.TrimRight(secret, "\r\n")
	repo, err := o.g.repoClient()
	if err != nil {
		return err
	}
	h, err := repo.CreateWebhook(cmd.Context(), &wire.CreateWebhookRequest{URL: args[0], Prefix: o.prefix,
		Secret: string(secret), From: wire.Rev(o.from)})
	if err != nil {
		return err
	}
	out := &createdWebhook{Webhook: *h}
	if made {
		out.Secret = string(secret)
	}
	return p.webhookCreated(out)
}

// webhookLsOptions are the options of "gitstate webhook ls".
type webhookLsOptions struct{ g *globalOptions }

func newWebhookLsCmd(g *globalOptions) *cobra.Command {
	o := &webhookLsOptions{g: g}
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List webhooks and their progress",
		Args:    usageArgs(cobra.NoArgs),
		RunE:    g.runE(o.run),
	}
}

func (o *webhookLsOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	repo, err := o.g.repoClient()
	if err != nil {
		return err
	}
	l, err := repo.ListWebhooks(cmd.Context())
	if err != nil {
		return err
	}
	return p.webhooks(l)
}

// webhookRmOptions are the options of "gitstate webhook rm".
type webhookRmOptions struct{ g *globalOptions }

func newWebhookRmCmd(g *globalOptions) *cobra.Command {
	o := &webhookRmOptions{g: g}
	return &cobra.Command{
		Use:     "rm ID",
		Aliases: []string{"delete"},
		Short:   "Remove a webhook",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE:    g.runE(o.run),
	}
}

func (o *webhookRmOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	repo, err := o.g.repoClient()
	if err != nil {
		return err
	}
	h, err := repo.DeleteWebhook(cmd.Context(), args[0])
	if err != nil {
		return err
	}
	return p.webhookDeleted(h)
}

// webhookDeliveriesOptions are the options of "gitstate webhook deliveries".
type webhookDeliveriesOptions struct{ g *globalOptions }

func newWebhookDeliveriesCmd(g *globalOptions) *cobra.Command {
	o := &webhookDeliveriesOptions{g: g}
	return &cobra.Command{
		Use:   "deliveries ID",
		Short: "List a webhook's recent delivery attempts",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE:  g.runE(o.run),
	}
}

func (o *webhookDeliveriesOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	repo, err := o.g.repoClient()
	if err != nil {
		return err
	}
	l, err := repo.WebhookDeliveries(cmd.Context(), args[0])
	if err != nil {
		return err
	}
	return p.deliveries(l)
}

func (p *textPrinter) webhookCreated(h *createdWebhook) error {
	prefix := ""
	if h.Prefix != "" {
		prefix = " under " + h.Prefix
	}
	if err := p.printf("created webhook %s: revisions after %d%s go to %s\n", h.ID, h.Position, prefix, h.URL); err != nil {
		return err
	}
	if h.Secret != "" {
		return p.printf("secret: %s (it will not be shown again)\n", h.Secret)
	}
	return nil
}

func (p *textPrinter) webhooks(l *wire.WebhookList) error {
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tURL\tPREFIX\tPOSITION\tPENDING\tFAILURES\tLAST DELIVERY")
	for _, h := range l.Webhooks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", h.ID, h.URL, orDash(h.Prefix), h.Position, h.Pending, h.Failures, deliveryText(h.LastDelivery))
	}
	return tw.Flush()
}

func (p *textPrinter) webhookDeleted(h *wire.Webhook) error {
	return p.printf("deleted webhook %s (%s)\n", h.ID, h.URL)
}

func (p *textPrinter) deliveries(l *wire.WebhookDeliveryList) error {
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DELIVERY\tREVISION\tATTEMPT\tTIME\tSTATUS\tDURATION\tERROR")
	for _, d := range l.Deliveries {
		status := "-"
		if d.StatusCode != 0 {
			status = fmt.Sprint(d.StatusCode)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s%s\n", d.ID, d.Revision, d.Attempt, timeText(d.Time), status, durationText(d.Duration), lastCell(d.Error))
	}
	return tw.Flush()
}

// deliveryText sums up a delivery: "r12 ok 200", "r12 failed 503", "-".
func deliveryText(d *wire.WebhookDelivery) string {
	switch {
	case d == nil:
		return "-"
	case d.OK:
		return fmt.Sprintf("r%d ok %d at %s", d.Revision, d.StatusCode, timeText(d.Time))
	case d.StatusCode != 0:
		return fmt.Sprintf("r%d failed %d at %s", d.Revision, d.StatusCode, timeText(d.Time))
	}
	return fmt.Sprintf("r%d failed at %s: %s", d.Revision, timeText(d.Time), d.Error)
}

// durationText formats a delivery's duration to the millisecond.
func durationText(d wire.Duration) string {
	if time.Duration(d) < time.Millisecond {
		return time.Duration(d).Round(time.Microsecond).String()
	}
	return time.Duration(d).Round(time.Millisecond).String()
}
