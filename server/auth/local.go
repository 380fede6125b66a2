package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gitstate/gitstate/api"
)

// LocalTokenFile is the file, in the data directory, that holds the
// administrator token made at first start (mode 0600).
const LocalTokenFile = "admin.token"

// DefaultDataDir is the data directory of the server and of the CLI when
// none is given (relative to the working directory).
const DefaultDataDir = "gitstate-data"

// Bootstrap makes an administrator token when store has never been
// configured, and writes it to dataDir/admin.token (mode 0600) before the
// store records it: a crash in between leaves an unconfigured store, and
// the next start makes a new token. It returns the token and the file's
// path, or "" when the store was already configured.
func Bootstrap(store *Store, dataDir string) (token, path string, err error) {
	if store.Configured() {
		return "", "", nil
	}
	path = filepath.Join(dataDir, LocalTokenFile)
	spec := api.TokenSpec{Name: AdminName, Scopes: []api.Scope{api.ScopeAdmin}, Repos: []string{"*"}, CreatedBy: "bootstrap"}
	tok, err := store.create(spec, func(tok string) error {
		return writeFileAtomic(path, []byte(tok+"\n"), 0o600)
	})
	if err != nil {
		return "", "", fmt.Errorf("bootstrap administrator token: %w", err)
	}
	return tok.Secret, path, nil
}

// FindLocalToken returns the administrator token the server wrote at first
// start into dataDir (DefaultDataDir when empty): what lets the CLI, run on
// the server's machine with --data (or $GITSTATE_DATA) pointing at the data
// directory, or in the directory where the server was started, work with
// no token given. The error wraps fs.ErrNotExist when there is no such
// file; a file that others may read is refused, as ssh refuses keys.
func FindLocalToken(dataDir string) (string, error) {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	path := filepath.Join(dataDir, LocalTokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("no token given and no %s: %w", path, err)
		}
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is readable by others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return tok, nil
}
