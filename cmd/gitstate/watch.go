package main

import (
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// watchOptions are the options of "gitstate watch".
type watchOptions struct {
	g      *globalOptions
	from   string
	branch string
}

func newWatchCmd(g *globalOptions) *cobra.Command {
	o := &watchOptions{g: g}
	cmd := &cobra.Command{
		Use:   "watch [PREFIX]",
		Short: "Print revisions as they are committed",
		Long: `Print main's revisions as they are committed (a Server-Sent Events stream),
limited to the changes under PREFIX when one is given. --from replays from a
revision (0: the whole history). -o json prints one JSON line per event,
progress events included. The command runs until interrupted, or until the
stream ends (the server shuts down, or the watched transaction closes).`,
		Example: `  gitstate watch apps/web/
  gitstate watch --from 0 -o json
  gitstate watch --branch txn/abcdefghijkl`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: o.g.runE(o.run),
	}
	f := cmd.Flags()
	f.StringVar(&o.from, "from", "", "replay the revisions after this one (0: all); default: from now")
	f.StringVar(&o.branch, "branch", "", "follow a transaction's branch (txn/<id>) instead of main")
	return cmd
}

func (o *watchOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	repo, err := o.g.repoClient()
	if err != nil {
		return err
	}
	opts := &client.WatchOptions{From: wire.Rev(o.from), Branch: o.branch}
	if len(args) == 1 {
		opts.Prefix = args[0]
	}
	w, err := repo.Watch(cmd.Context(), opts)
	if err != nil {
		return err
	}
	defer w.Close()
	for {
		ev, err := w.Next()
		if errors.Is(err, io.EOF) || cmd.Context().Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if err := p.event(ev); err != nil {
			return err
		}
	}
}
