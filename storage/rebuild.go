package storage

import (
	"context"
	"fmt"
	"time"
)

// syncIndex brings the index up to date with the repo's main branch: it
// loads the revision list when the index's recorded head is Git's head,
// replays the revisions after the recorded head when that is an ancestor on
// the first-parent line, and otherwise rebuilds the repo's index from
// revision 1. It runs before the repo accepts writes.
func (r *Repo) syncIndex(ctx context.Context) error {
	gitHead := r.be.Ref(mainRef)
	meta, ok, err := r.ix.meta(r.name)
	if err != nil {
		return err
	}
	if ok && meta.Format == indexFormat && meta.Commit == gitHead.String() {
		revs, err := r.ix.revisions(r.name, meta.Revision)
		if err == nil {
			return r.setRevisions(revs)
		}
		r.log.Warn("index revision list is damaged; rebuilding", "err", err)
		ok = false
	}
	// The first-parent line of main, oldest first.
	var line []Hash
	for h := gitHead; !h.IsZero(); {
		line = append(line, h)
		c, err := r.ReadCommit(h)
		if err != nil {
			return fmt.Errorf("walk %s: %w", MainBranch, err)
		}
		if len(c.Parents) == 0 {
			break
		}
		h = c.Parents[0]
		if len(line)%100000 == 0 {
			r.log.Info("reading history", "commits", len(line))
		}
	}
	revs := make([]Hash, len(line)+1)
	for i, h := range line {
		revs[len(line)-i] = h
	}
	start := int64(1)
	if ok && meta.Format == indexFormat && meta.Revision > 0 && meta.Revision < int64(len(revs)) && revs[meta.Revision].String() == meta.Commit {
		start = meta.Revision + 1
		r.log.Info("catching the index up with git", "from", meta.Revision, "to", len(revs)-1)
	} else {
		if ok || len(revs) > 1 {
			r.log.Info("rebuilding the index from git", "revisions", len(revs)-1)
		}
		if err := r.ix.dropRepo(r.name); err != nil {
			return err
		}
	}
	if err := r.replay(ctx, revs, start); err != nil {
		return err
	}
	return r.setRevisions(revs)
}

func (r *Repo) setRevisions(revs []Hash) error {
	r.viewMu.Lock()
	defer r.viewMu.Unlock()
	r.revs = revs
	r.revOf = make(map[Hash]int64, len(revs))
	for i, h := range revs[1:] {
		r.revOf[h] = int64(i + 1)
	}
	head := Head{Revision: int64(len(revs) - 1)}
	if head.Revision > 0 {
		head.Commit = revs[head.Revision]
		c, err := r.ReadCommit(head.Commit)
		if err != nil {
			return err
		}
		head.Tree = c.Tree
	}
	r.head = head
	r.hot.clear()
	if r.mx != nil {
		r.mx.headRevision.WithLabelValues(r.name).Set(float64(head.Revision))
	}
	return nil
}

// replay indexes revisions start..len(revs)-1. Entries are collected in
// memory and written once at the end (with their values), so a key changed
// by many revisions is read once; revision records are written in batches,
// with progress in the log. Reading Git (commits and the trees they
// changed, then the values) runs in a goroutine of its own, ahead of the
// index writes: the two took about half the time each.
func (r *Repo) replay(ctx context.Context, revs []Hash, start int64) error {
	last := int64(len(revs) - 1)
	if start > last {
		return nil
	}
	began := time.Now()
	type latest struct {
		te      TreeEntry
		rev     int64
		deleted bool
	}
	entries := map[string]*latest{}
	var prevTree Hash
	if start > 1 {
		var err error
		if prevTree, err = r.commitTree(revs[start-1]); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The revisions, read and diffed in order.
	type revision struct {
		rev     int64
		c       *Commit
		changes []Change
		err     error
	}
	revCh := make(chan revision, 256)
	go func() {
		defer close(revCh)
		send := func(v revision) bool {
			select {
			case revCh <- v:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for rev := start; rev <= last; rev++ {
			if err := ctx.Err(); err != nil {
				send(revision{err: err})
				return
			}
			c, err := r.ReadCommit(revs[rev])
			if err != nil {
				send(revision{err: err})
				return
			}
			var changes []Change
			if err := diffTrees(r.readTree, prevTree, c.Tree, "", func(ch Change) bool {
				changes = append(changes, ch)
				return true
			}); err != nil {
				send(revision{err: fmt.Errorf("revision %d: %w", rev, err)})
				return
			}
			if !send(revision{rev: rev, c: c, changes: changes}) {
				return
			}
			prevTree = c.Tree
		}
	}()
	ib := r.ix.newBatch(r.name)
	pending := 0
	lastLog := time.Now()
	for v := range revCh {
		if v.err != nil {
			ib.discard()
			return v.err
		}
		rev, h := v.rev, revs[v.rev]
		for _, ch := range v.changes {
			entries[ch.Key] = &latest{te: ch.To, rev: rev, deleted: ch.Op == Deleted}
		}
		if err := ib.addRevision(revisionInfo(rev, h, v.c, v.changes, Trailers(v.c.Message))); err != nil {
			ib.discard()
			return err
		}
		if pending++; pending == 2000 {
			if err := ib.commit(); err != nil {
				return err
			}
			ib, pending = r.ix.newBatch(r.name), 0
		}
		if r.replayProgress != nil && (rev == last || rev%100 == 0) {
			r.replayProgress(rev-start+1, last-start+1)
		}
		if time.Since(lastLog) > 2*time.Second {
			r.log.Info("indexing revisions", "revision", rev, "of", last, "keys", len(entries))
			lastLog = time.Now()
		}
	}
	if err := ctx.Err(); err != nil {
		// The reader stopped early without a word: it saw ctx done.
		ib.discard()
		return err
	}

	// The entries, their values read ahead of the writes.
	type entry struct {
		key string
		e   *IndexEntry // nil: deleted
		err error
	}
	entCh := make(chan entry, 256)
	go func() {
		defer close(entCh)
		for key, l := range entries {
			v := entry{key: key}
			if !l.deleted {
				if v.e, v.err = r.newEntry(l.te, l.rev, r.readBlob); v.err != nil {
					v.err = fmt.Errorf("index %q: %w", key, v.err)
				}
			}
			select {
			case entCh <- v:
			case <-ctx.Done():
				return
			}
			if v.err != nil {
				return
			}
		}
	}()
	n := 0
	for v := range entCh {
		switch {
		case v.err != nil:
			ib.discard()
			return v.err
		case v.e == nil:
			ib.deleteEntry(v.key)
		default:
			ib.setEntry(v.key, v.e)
		}
		if n++; n%20000 == 0 {
			if err := ib.commit(); err != nil {
				return err
			}
			ib = r.ix.newBatch(r.name)
			r.log.Info("writing index entries", "done", n, "of", len(entries))
		}
	}
	if n != len(entries) {
		ib.discard()
		return fmt.Errorf("index entries: %d of %d written: %w", n, len(entries), ctx.Err())
	}
	ib.setHead(last, revs[last])
	if err := ib.commit(); err != nil {
		return err
	}
	r.log.Info("index up to date", "revisions", last-start+1, "keys", len(entries), "took", time.Since(began).Round(time.Millisecond))
	return nil
}
