package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrDataDirLocked is the error of Open when another process has the data
// directory open.
var ErrDataDirLocked = errors.New("data directory is in use by another process")

// lockFileName is the file in the data directory that Open locks.
const lockFileName = "LOCK"

// dirLock is an exclusive lock on a data directory (flock on its LOCK
// file), held while a Store is open. Two servers on one data directory
// would each replay, flush and merge the other's journal and packs, and
// the second would take the first's index for a damaged one and set it
// aside. The kernel releases the lock when the process ends, however it
// ends, so a crash leaves nothing to clean up.
type dirLock struct {
	f *os.File
}

// lockDir takes dir's lock, or fails with ErrDataDirLocked (naming the
// holder's process id) when another process holds it.
func lockDir(dir string) (*dirLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := io.ReadAll(io.LimitReader(f, 32))
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w (pid %s)", dir, ErrDataDirLocked, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	// Who holds it, for the error above; only informative.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// unlock releases the lock.
func (l *dirLock) unlock() error { return l.f.Close() }
