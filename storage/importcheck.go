package storage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/gitstate/gitstate"
)

// ImportCheck examines the head of the branch an import fetched, before
// the repo is placed (Options.CheckImport). An error fails the import,
// which then leaves nothing behind, with the error's message as the
// import's; warnings are added to its report (ImportReport.Warnings).
//
// Storage knows nothing of policies or secrets: the server's check reads
// the repo's policy and its secrets' files through head.
type ImportCheck func(ctx context.Context, head *ImportHead) ([]ImportWarning, error)

// ImportWarning is something an import brought in that will not work as
// it is: Code is stable (not_encrypted, ...), Path the file concerned.
type ImportWarning struct {
	Code    string `json:"code"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

// ImportHead is the tree at the head of a fetched branch, read with the git
// CLI from the repository being imported: one `git cat-file --batch` for
// every Read, started at the first (a check that reads a thousand secrets'
// files starts one process, not a thousand). It is not safe for concurrent
// use; Close ends the process.
type ImportHead struct {
	ctx   context.Context
	env   GitEnv
	paths []string
	blobs map[string]string // path -> blob id, regular files only

	cat    *exec.Cmd
	catIn  io.WriteCloser
	catOut *bufio.Reader
}

// readImportHead lists the regular files (executable or not) of the tree
// at refs/heads/main of the repository env names.
func readImportHead(ctx context.Context, env GitEnv) (*ImportHead, error) {
	h := &ImportHead{ctx: ctx, env: env, blobs: map[string]string{}}
	out, err := GitCommand(ctx, env, "ls-tree", "-r", "-z", "--full-tree", "refs/heads/"+MainBranch).Output()
	if err != nil {
		return nil, fmt.Errorf("list the imported head: %w", err)
	}
	for ent := range bytes.SplitSeq(out, []byte{0}) {
		// "<mode> SP <type> SP <id> TAB <path>"
		meta, path, ok := bytes.Cut(ent, []byte{'\t'})
		if !ok {
			continue
		}
		f := strings.Fields(string(meta))
		if len(f) != 3 || f[1] != "blob" || (f[0] != "100644" && f[0] != "100755") {
			continue
		}
		h.paths = append(h.paths, string(path))
		h.blobs[string(path)] = f[2]
	}
	return h, nil
}

// Paths returns the paths of the head's regular files, in Git's order. The
// caller must not change the slice.
func (h *ImportHead) Paths() []string { return h.paths }

// Read returns the content of the regular file at path, or an error
// matching gitstate.ErrKeyNotFound when there is none.
func (h *ImportHead) Read(path string) ([]byte, error) {
	id, ok := h.blobs[path]
	if !ok {
		return nil, gitstate.Errorf(gitstate.KindNotFound, "key_not_found", "%s does not exist in the imported head", path).WithKeys(path)
	}
	b, err := h.readBlob(id)
	if err != nil {
		// The process is in an unknown state: the next Read starts anew.
		h.Close()
		return nil, fmt.Errorf("read %s of the imported head: %w", path, err)
	}
	return b, nil
}

// readBlob asks the batch process for the blob id.
func (h *ImportHead) readBlob(id string) ([]byte, error) {
	if h.cat == nil {
		cmd := GitCommand(h.ctx, h.env, "cat-file", "--batch")
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		h.cat, h.catIn, h.catOut = cmd, in, bufio.NewReader(out)
	}
	if _, err := io.WriteString(h.catIn, id+"\n"); err != nil {
		return nil, err
	}
	// "<id> blob <size>\n<content>\n", or "<id> missing\n".
	hdr, err := h.catOut.ReadString('\n')
	if err != nil {
		return nil, err
	}
	f := strings.Fields(hdr)
	if len(f) != 3 || f[0] != id || f[1] != "blob" {
		return nil, fmt.Errorf("git cat-file --batch answered %q for blob %s", strings.TrimSpace(hdr), id)
	}
	size, err := strconv.Atoi(f[2])
	if err != nil || size < 0 {
		return nil, fmt.Errorf("git cat-file --batch answered %q for blob %s", strings.TrimSpace(hdr), id)
	}
	b := make([]byte, size+1)
	if _, err := io.ReadFull(h.catOut, b); err != nil {
		return nil, err
	}
	if b[size] != '\n' {
		return nil, errors.New("git cat-file --batch: no newline after the content")
	}
	return b[:size], nil
}

// Close ends the batch process, if one was started.
func (h *ImportHead) Close() error {
	if h.cat == nil {
		return nil
	}
	h.catIn.Close()
	err := h.cat.Wait()
	h.cat, h.catIn, h.catOut = nil, nil, nil
	return err
}
