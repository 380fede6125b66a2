package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	client "github.com/gitstate/gitstate/clients/go"
	"github.com/gitstate/gitstate/secrets"
)

// logOptions are the options of "gitstate log".
type logOptions struct {
	g      *globalOptions
	key    string
	prefix string
	limit  int
	after  int64
}

func newLogCmd(g *globalOptions) *cobra.Command {
	o := &logOptions{g: g}
	cmd := &cobra.Command{
		Use:   "log",
		Short: "List commits, newest first",
		Long: `List the commits of main, newest first, with the keys each changed. One page
is printed; when there are more, the --after that continues is printed on
stderr (-o json: "next").

--key also finds a secret's history by its name: when no commit changed the
key itself, the commits that changed the secret's document (<key>.sops.json,
as "secret put" stores it) are listed, and a note on stderr says so.`,
		Example: `  gitstate log --limit 10
  gitstate log --key apps/web/deployment.yaml
  gitstate log --key apps/web/db             # a secret: apps/web/db.sops.json
  gitstate log --prefix apps/web/`,
		Args: usageArgs(cobra.NoArgs),
		RunE: o.g.runE(o.run),
	}
	f := cmd.Flags()
	f.StringVar(&o.key, "key", "", "only commits that changed this key")
	f.StringVar(&o.prefix, "prefix", "", "only commits that changed a key under this prefix")
	f.IntVar(&o.limit, "limit", 0, "commits per page (0: the server's default, 100)")
	f.Int64Var(&o.after, "after", 0, "list the commits older than this revision")
	return cmd
}

func (o *logOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	if o.limit < 0 || o.after < 0 {
		return usageErrorf("--limit and --after must not be negative")
	}
	kv, err := o.g.repoClient()
	if err != nil {
		return err
	}
	opts := &client.LogOptions{Key: o.key, Prefix: o.prefix, Limit: o.limit, After: o.after}
	res, err := kv.Log(cmd.Context(), opts)
	if err != nil {
		return err
	}
	if len(res.Commits) == 0 && o.key != "" && !strings.HasSuffix(o.key, secrets.Suffix) {
		// No commit changed the key: it may be a secret's name, whose
		// document is <key>.sops.json.
		opts.Key = o.key + secrets.Suffix
		sres, err := kv.Log(cmd.Context(), opts)
		if err != nil {
			return err
		}
		if len(sres.Commits) > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "(no commit changed key %s: the history of secret %s, %s)\n", o.key, o.key, opts.Key)
			res = sres
		}
	}
	if err := p.log(res); err != nil {
		return err
	}
	if res.Next != 0 && o.g.output == "text" {
		fmt.Fprintf(cmd.ErrOrStderr(), "(more: --after %d)\n", res.Next)
	}
	return nil
}
