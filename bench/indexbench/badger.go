package indexbench

import (
	"errors"
	"log"

	"github.com/dgraph-io/badger/v4"
)

// badgerKV is the index on dgraph-io/badger.
type badgerKV struct {
	db *badger.DB
}

func openBadger(dir string) (kv, error) {
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(false).
		WithBlockCacheSize(blockCacheSize).
		WithMemTableSize(memTableSize).
		// One writer (the group-commit loop) and snapshot reads: nothing
		// for badger's conflict detection to find.
		WithDetectConflicts(false).
		WithLogger(badgerLogger{})
	db, err := badger.Open(opts)
	if err != nil {
		return nil, err
	}
	return &badgerKV{db: db}, nil
}

func (b *badgerKV) Get(dst, key []byte) ([]byte, bool, error) {
	dst = dst[:0]
	found := false
	err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		dst, err = item.ValueCopy(dst)
		return err
	})
	return dst, found, err
}

func (b *badgerKV) Scan(prefix []byte, limit int, fn func(k, v []byte) error) error {
	return b.db.View(func(txn *badger.Txn) error {
		// Values are stored inline in the LSM (they are below badger's
		// value threshold), so prefetching would only add a copy.
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		n := 0
		for it.Seek(prefix); it.Valid() && n < limit; it.Next() {
			item := it.Item()
			k := item.Key()
			if err := item.Value(func(v []byte) error { return fn(k, v) }); err != nil {
				return err
			}
			n++
		}
		return nil
	})
}

func (b *badgerKV) ApplyBatch(ops []op) error {
	// A transaction, not a badger.WriteBatch: WriteBatch splits large
	// batches into several commits, and the index needs the group atomic.
	txn := b.db.NewTransaction(true)
	defer txn.Discard()
	for _, o := range ops {
		if err := txn.Set(o.key, o.value); err != nil {
			return err
		}
	}
	return txn.Commit()
}

func (b *badgerKV) Close() error { return b.db.Close() }

// badgerLogger drops informational messages and keeps errors.
type badgerLogger struct{}

func (badgerLogger) Errorf(format string, args ...any) { log.Printf("badger: "+format, args...) }

func (badgerLogger) Warningf(string, ...any) {}

func (badgerLogger) Infof(string, ...any) {}

func (badgerLogger) Debugf(string, ...any) {}
