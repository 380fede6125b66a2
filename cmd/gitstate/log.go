package main

import (
	"fmt"

	"github.com/spf13/cobra"

	client "github.com/gitstate/gitstate/clients/go"
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
stderr (-o json: "next").`,
		Example: `  gitstate log --limit 10
  gitstate log --key apps/web/deployment.yaml
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
	res, err := kv.Log(cmd.Context(), &client.LogOptions{Key: o.key, Prefix: o.prefix, Limit: o.limit, After: o.after})
	if err != nil {
		return err
	}
	if err := p.log(res); err != nil {
		return err
	}
	if res.Next != 0 && o.g.output == "text" {
		fmt.Fprintf(cmd.ErrOrStderr(), "(more: --after %d)\n", res.Next)
	}
	return nil
}
