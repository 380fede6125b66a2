package main

import (
	"github.com/spf13/cobra"
)

// newRepoCmd is "gitstate repo": ls, create and import.
func newRepoCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "List, create or import repos",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newRepoLsCmd(g), newRepoCreateCmd(g), newRepoImportCmd(g))
	return cmd
}

// repoLsOptions are the options of "gitstate repo ls".
type repoLsOptions struct{ g *globalOptions }

func newRepoLsCmd(g *globalOptions) *cobra.Command {
	o := &repoLsOptions{g: g}
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List repos and their head revisions",
		Args:    usageArgs(cobra.NoArgs),
		RunE:    o.g.runE(o.run),
	}
}

func (o *repoLsOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	c, err := o.g.client()
	if err != nil {
		return err
	}
	res, err := c.ListRepos(cmd.Context())
	if err != nil {
		return err
	}
	return p.repos(res)
}

// repoCreateOptions are the options of "gitstate repo create".
type repoCreateOptions struct{ g *globalOptions }

func newRepoCreateCmd(g *globalOptions) *cobra.Command {
	o := &repoCreateOptions{g: g}
	return &cobra.Command{
		Use:   "create NAME",
		Short: "Create an empty repo",
		Long:  `Create an empty repo. NAME is [a-z0-9][a-z0-9-]{0,62}.`,
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE:  o.g.runE(o.run),
	}
}

func (o *repoCreateOptions) run(cmd *cobra.Command, args []string) error {
	p, err := o.g.printer(cmd.OutOrStdout())
	if err != nil {
		return err
	}
	c, err := o.g.client()
	if err != nil {
		return err
	}
	res, err := c.CreateRepo(cmd.Context(), args[0])
	if err != nil {
		return err
	}
	return p.repo(res)
}
