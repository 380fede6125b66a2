package storage

import (
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces path with data durably: it writes a temporary
// file in path's directory, syncs it, renames it over path and syncs the
// directory. A reader sees the old content or the new, never a mix, and
// once it returns nil the new content survives a crash. It is for the
// server's own small files (webhooks, reconciler records).
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := writeFileSync(path, data, perm); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}
