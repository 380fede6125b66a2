package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/gitstate/gitstate/api/wire"
)

func newRepoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Manage repos",
	}
	cmd.AddCommand(newRepoImportCmd())
	return cmd
}

// clientOptions are the flags of a command that talks to a server.
type clientOptions struct {
	server string
	token  string
	output string
}

func (o *clientOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.server, "server", envOr("GITSTATE_SERVER", "http://127.0.0.1:7070"), "server URL ($GITSTATE_SERVER)")
	f.StringVar(&o.token, "token", "", "token (default $GITSTATE_TOKEN)")
	f.StringVarP(&o.output, "output", "o", "text", "output: text or json")
}

// call sends a JSON request to the server and decodes its answer into out.
func (o *clientOptions) call(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(o.server, "/")+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	tok := o.token
	if tok == "" {
		tok = os.Getenv("GITSTATE_TOKEN")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 400 {
		var er wire.ErrorResponse
		if json.Unmarshal(data, &er) == nil && er.Error.Code != "" {
			return resp.StatusCode, fmt.Errorf("%s: %s", er.Error.Code, er.Error.Message)
		}
		return resp.StatusCode, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

type repoImportOptions struct {
	clientOptions
	branch string
	noWait bool
}

func newRepoImportCmd() *cobra.Command {
	o := &repoImportOptions{}
	cmd := &cobra.Command{
		Use:   "import NAME SOURCE",
		Short: "Create a repo from an existing Git repository, with its history",
		Long: `Create repo NAME from the Git repository SOURCE (an http, https, ssh, git
or file URL, or a path on the server's machine), with its history: the
commits of --branch (default: the source's HEAD branch) keep their ids, and
its first-parent line becomes revisions 1, 2, 3... on main. Credentials go
in the URL (https://user:token@host/repo.git); the server never shows them.

The server imports in the background; this command follows it with a
progress bar and prints what was imported, including the entries that are
not plain files (symbolic links, submodules, executables, empty trees,
paths that are not valid keys), which are kept untouched.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0], args[1]) },
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&o.branch, "branch", "", "the source's branch to import as main (default: its HEAD branch)")
	cmd.Flags().BoolVar(&o.noWait, "no-wait", false, "start the import and return (follow it with GET /v1/repos/NAME/import)")
	return cmd
}

func (o *repoImportOptions) run(cmd *cobra.Command, name, source string) error {
	ctx := cmd.Context()
	var st wire.ImportStatus
	if _, err := o.call(ctx, http.MethodPost, "/v1/repos", wire.CreateRepoRequest{Name: name, ImportFrom: source, Branch: o.branch}, &st); err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	bar := newProgressBar(stderr)
	for !o.noWait && st.State == "running" {
		bar.show(st)
		select {
		case <-ctx.Done():
			bar.clear()
			fmt.Fprintf(stderr, "stopped following; the import of %s goes on in the server\n", name)
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := o.call(ctx, http.MethodGet, "/v1/repos/"+name+"/import", nil, &st); err != nil {
			bar.clear()
			return err
		}
	}
	bar.clear()
	out := cmd.OutOrStdout()
	if o.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
	} else {
		printImport(out, st)
	}
	if st.State == "failed" {
		return errors.New("import failed: " + st.Error)
	}
	return nil
}

func printImport(w io.Writer, st wire.ImportStatus) {
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
		st.Repo, st.Source, st.Branch, r.Revisions, r.Keys, r.Objects, r.Seconds, short(r.Commit))
	lists := []struct {
		what  string
		n     int
		paths []string
	}{
		{"executable files (mode kept)", r.ExecutableCount, r.Executables},
		{"symbolic links (read as their target)", r.SymlinkCount, r.Symlinks},
		{"submodules (kept in Git, not keys)", r.SubmoduleCount, r.Submodules},
		{"empty trees (kept in Git)", r.EmptyTreeCount, r.EmptyTrees},
		{"paths that are not valid keys (kept in Git, not addressable)", r.InvalidKeyCount, r.InvalidKeys},
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
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
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

func (b *progressBar) show(st wire.ImportStatus) {
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
