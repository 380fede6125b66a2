package storage

import "errors"

// ErrRefChanged is returned by Backend.Commit when a ref no longer has the
// value an update expected (compare-and-swap failed). Nothing was applied.
var ErrRefChanged = errors.New("ref changed")

// ObjectReader reads Git objects by id. Implementations are safe for
// concurrent use; returned objects are shared and must not be modified.
type ObjectReader interface {
	// ReadObject returns the object h, or an error wrapping
	// ErrObjectNotFound.
	ReadObject(h Hash) (*Object, error)
}

// Backend is where one repo's objects and refs are kept: the system of
// record. FSBackend keeps them in a bare Git repository on local disk; an
// implementation with objects in an object store and refs in a consensus
// store needs only these methods.
//
// Implementations are safe for concurrent use.
type Backend interface {
	ObjectReader
	// HasObject reports whether the object h is stored.
	HasObject(h Hash) bool
	// Ref returns the value of a ref (a full name, refs/...), or ZeroHash
	// when it does not exist.
	Ref(name string) Hash
	// Refs returns the refs whose names start with prefix.
	Refs(prefix string) map[string]Hash
	// Commit stores objs and applies updates, atomically and durably: when it
	// returns nil, all of it survives a crash; when it returns an error,
	// none of the updates is visible. If any update's Old differs from the
	// ref's current value, it returns ErrRefChanged. notes (see NoteSink)
	// are made durable with the rest and handed to the backend's sink.
	Commit(objs []*Object, updates []RefUpdate, notes [][]byte) error
	// Close releases the backend's resources after making its state
	// durable in its native form.
	Close() error
}

// asyncCommitter is a Backend that commits in two steps, so that the
// committer applies the next group while the disk syncs the last (see
// FSBackend.CommitAsync).
type asyncCommitter interface {
	CommitAsync(objs []*Object, updates []RefUpdate, notes [][]byte) (wait func() error, err error)
	// Tip is Ref as the last group written left it, durable or not.
	Tip(name string) Hash
}
