package secrets

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
)

// KeyFileName is the server's age identity file in the data directory.
const KeyFileName = "age.key"

// loadOrCreateIdentities reads the age identities of the key file at path,
// creating the file (mode 0600, with one new X25519 identity) when it does
// not exist. The file has the format of age-keygen and of SOPS's keys.txt,
// so SOPS_AGE_KEY_FILE=<path> lets the sops CLI decrypt what the server
// wrote. created reports whether the file was made now.
func loadOrCreateIdentities(path string) (ids []age.Identity, recipient string, created bool, err error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		if err := createKeyFile(path); err != nil {
			return nil, "", false, err
		}
		created = true
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, "", false, fmt.Errorf("age key file: %w", err)
	}
	ids, err = age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		// The parser's message may quote a line of the file: keep it out.
		return nil, "", false, fmt.Errorf("age key file %s: not a list of age identities", path)
	}
	x, ok := ids[0].(*age.X25519Identity)
	if !ok {
		return nil, "", false, fmt.Errorf("age key file %s: the first identity must be an X25519 identity (AGE-SECRET-KEY-1...)", path)
	}
	return ids, x.Recipient().String(), created, nil
}

// createKeyFile writes a new identity to path, atomically and durably:
// nothing is at path until the whole file is synced.
func createKeyFile(path string) error {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return fmt.Errorf("generate age identity: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".age.key.*")
	if err != nil {
		return fmt.Errorf("age key file: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	content := fmt.Sprintf("# gitstate server identity: the default recipient of this server's secrets.\n"+
		"# Back it up (see docs/SECRETS.md): without it, secrets encrypted only to it are lost.\n"+
		"# created: %s\n# public key: %s\n%s\n",
		time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Link, not rename: never replace a key file another process made
	// meanwhile.
	if err := os.Link(f.Name(), path); err != nil {
		if os.IsExist(err) {
			return nil
		}
		return fmt.Errorf("age key file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
