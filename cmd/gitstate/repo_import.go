package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
)

// repoImportOptions are the options of "gitstate repo import".
type repoImportOptions struct {
	g      *globalOptions
	branch string
	noWait bool
}

func newRepoImportCmd(g *globalOptions) *cobra.Command {
	o := &repoImportOptions{g: g}
	cmd := &cobra.Command{
		Use:   "import NAME SOURCE",
		Short: "Create a repo from an existing Git repository, with its history",
		Long: `Create repo NAME from the Git repository SOURCE (an http, https, ssh, git
or file URL, or a path on the server's machine), with its history: the
commits of --branch (default: the source's HEAD branch) keep their ids, and
its first-parent line becomes revisions 1, 2, 3... on main. Credentials go
in the URL (https://user:token@host/repo.git); the server never shows them.
Needs a token with scope admin.

The server imports in the background; this command follows it with a
progress bar (a line per phase when stderr is not a terminal) and prints
what was imported, including the entries that are not plain files
(symbolic links, submodules, executables, empty trees, paths that are not
valid keys), which are kept untouched. With -o json it prints the import's
final status as the API gives it.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: o.g.runE(o.run),
	}
	cmd.Flags().StringVar(&o.branch, "branch", "", "the source's branch to import as main (default: its HEAD branch)")
	cmd.Flags().BoolVar(&o.noWait, "no-wait", false, "start the import and return (see GET /v1/repos/NAME/import)")
	return cmd
}

func (o *repoImportOptions) run(cmd *cobra.Command, args []string) error {
	name, source := args[0], args[1]
	if o.g.output != "text" && o.g.output != "json" {
		return usageErrorf("-o/--output must be text or json, not %q", o.g.output)
	}
	c, err := o.g.client()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	st, err := c.ImportRepo(ctx, name, source, o.branch)
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	bar := newProgressBar(stderr)
	for !o.noWait && st.State == "running" {
		bar.show(st)
		select {
		case <-ctx.Done():
			bar.clear()
			fmt.Fprintf(stderr, "stopped following: the import of %s goes on in the server\n", name)
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if st, err = c.Repo(name).ImportStatus(ctx); err != nil {
			bar.clear()
			return err
		}
	}
	bar.clear()
	out := cmd.OutOrStdout()
	if o.g.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
	} else {
		printImport(out, st)
	}
	if st.State == "failed" {
		return &gitstate.Error{Kind: gitstate.KindInvalid, Code: "import_failed", Message: st.Error}
	}
	return nil
}

// printImport writes an import's status for people.
func printImport(w io.Writer, st *wire.ImportStatus) {
	switch st.State {
	case "running":
		fmt.Fprintf(w, "importing %s from %s: %s\n", st.Repo, st.Source, st.Phase)
		return
	case "failed":
		fmt.Fprintf(w, "import of %s from %s failed: %s\n", st.Repo, st.Source, st.Error)
		return
	}
	r := st.Report
	if r == nil {
		fmt.Fprintf(w, "imported %s from %s\n", st.Repo, st.Source)
		return
	}
	fmt.Fprintf(w, "imported %s from %s (branch %s): %d revisions, %d keys, %d objects in %.1fs; head %s\n",
		st.Repo, st.Source, st.Branch, r.Revisions, r.Keys, r.Objects, r.Seconds, shortID(r.Commit))
	lists := []struct {
		what  string
		n     int
		paths []string
	}{
		{"executable files (mode kept)", r.ExecutableCount, r.Executables},
		{"symbolic links (read as their target)", r.SymlinkCount, r.Symlinks},
		{"submodules (kept in Git, not keys)", r.SubmoduleCount, r.Submodules},
		{"empty trees (kept in Git)", r.EmptyTreeCount, r.EmptyTrees},
		{"paths that are not valid keys (kept in Git, neither addressable nor listed)", r.InvalidKeyCount, r.InvalidKeys},
	}
	for _, l := range lists {
		if l.n == 0 {
			continue
		}
		more := ""
		if l.n > len(l.paths) {
			more = fmt.Sprintf(", and %d more", l.n-len(l.paths))
		}
		fmt.Fprintf(w, "  %d %s: %s%s\n", l.n, l.what, strings.Join(l.paths, ", "), more)
	}
	for _, x := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s: %s\n", x.Path, x.Message)
	}
	if r.WarningCount > len(r.Warnings) {
		fmt.Fprintf(w, "WARNING: and %d more (GET /v1/repos/%s/import lists the first 100)\n", r.WarningCount-len(r.Warnings), st.Repo)
	}
}

// progressBar draws an import's progress on a terminal, or writes a line
// per phase elsewhere.
type progressBar struct {
	w     io.Writer
	tty   bool
	phase string
	drawn bool
}

func newProgressBar(w io.Writer) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		tty = err == nil
	}
	return &progressBar{w: w, tty: tty}
}

func (b *progressBar) show(st *wire.ImportStatus) {
	if !b.tty {
		if st.Phase != b.phase {
			fmt.Fprintf(b.w, "%s...\n", st.Phase)
			b.phase = st.Phase
		}
		return
	}
	const width = 30
	line := fmt.Sprintf("%-20s", st.Phase)
	if st.Total > 0 {
		done := min(st.Done, st.Total)
		n := int(done * width / st.Total)
		line += fmt.Sprintf(" [%s%s] %3d%% %d/%d", strings.Repeat("=", n), strings.Repeat(" ", width-n), done*100/st.Total, done, st.Total)
	} else if st.Done > 0 {
		line += fmt.Sprintf(" %d", st.Done)
	}
	fmt.Fprintf(b.w, "\r%-80s", line)
	b.drawn = true
}

func (b *progressBar) clear() {
	if b.drawn {
		fmt.Fprintf(b.w, "\r%80s\r", "")
		b.drawn = false
	}
}
