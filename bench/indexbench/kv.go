package indexbench

// kv is the part of an ordered key-value store that the gitstate index needs.
type kv interface {
	// Get appends the value stored under key to dst[:0] and returns it.
	// ok is false, and err nil, when key is absent.
	Get(dst, key []byte) (val []byte, ok bool, err error)

	// Scan calls fn, in key order, for at most limit keys that start with
	// prefix. k and v are only valid during the call.
	Scan(prefix []byte, limit int, fn func(k, v []byte) error) error

	// ApplyBatch writes all ops atomically and without waiting for an fsync.
	// It does not retain the slices in ops after it returns.
	ApplyBatch(ops []op) error

	Close() error
}

// op is one write in a batch: set key to value.
type op struct {
	key, value []byte
}

// engine names a kv implementation and opens one in a directory.
type engine struct {
	name string
	open func(dir string) (kv, error)
}

// engines are the implementations under test, in benchmark order.
var engines = []engine{
	{"pebble", openPebble},
	{"badger", openBadger},
}

// Settings shared by both engines, so that neither gets a larger budget.
const (
	blockCacheSize = 64 << 20
	memTableSize   = 16 << 20
)
