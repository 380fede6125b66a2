package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gitstate/gitstate"
)

// Revert makes a commit on main that undoes revision rev: every key rev
// changed goes back to its value before rev (paths that are not keys, which
// Diff leaves out, stay as they are). Unless force is set, it fails
// with revert_conflict (naming the keys) when one of those keys has changed
// since rev. tmpl gives the author, message and trailers.
//
// A move a→b that rev recorded is undone as a move b→a (so that the history
// reads "b moved back to a", not "b deleted, a added") when b still holds
// what the move put there and a is free; otherwise, with force, b is deleted
// and a put back.
func (r *Repo) Revert(ctx context.Context, rev int64, force bool, tmpl Batch) (*Result, error) {
	if rev < 1 {
		return nil, revisionNotFound(rev)
	}
	h, err := r.commitOf(rev)
	if err != nil {
		return nil, err
	}
	c, err := r.ReadCommit(h)
	if err != nil {
		return nil, err
	}
	var parent Hash
	if len(c.Parents) > 0 {
		parent = c.Parents[0]
	}
	changes, err := r.Diff(ctx, parent, h, "")
	if err != nil {
		return nil, err
	}
	moved, err := r.movesOf(rev, changes)
	if err != nil {
		return nil, err
	}
	b := tmpl
	b.Ref = ""
	if b.Message == "" {
		b.Message = fmt.Sprintf("Revert revision %d\n\nThis reverts commit %s.", rev, h)
	}
	for attempt := 0; ; attempt++ {
		// Which moves can be undone as moves depends on the head: decide
		// again on every attempt.
		back, err := r.movesBack(ctx, moved)
		if err != nil {
			return nil, err
		}
		restored := make(map[string]bool, len(back))
		for _, to := range back {
			restored[to] = true
		}
		b.Ops, b.Preconditions = nil, nil
		for _, ch := range changes {
			if restored[ch.Key] {
				continue // put back by the move below
			}
			if to, ok := back[ch.Key]; ok {
				// The preconditions hold even with force: the move must
				// carry exactly what rev moved, onto a free key.
				b.Ops = append(b.Ops, Op{Kind: OpMove, From: ch.Key, Key: to})
				b.Preconditions = append(b.Preconditions,
					Precondition{Key: ch.Key, ETag: ch.To.Hash}, Precondition{Key: to, Absent: true})
				continue
			}
			if ch.Op == Added {
				b.Ops = append(b.Ops, Op{Kind: OpDelete, Key: ch.Key})
			} else {
				b.Ops = append(b.Ops, Op{Kind: OpPut, Key: ch.Key, Blob: ch.From.Hash, Mode: ch.From.Mode})
			}
			if force {
				continue
			}
			if ch.Op == Deleted {
				b.Preconditions = append(b.Preconditions, Precondition{Key: ch.Key, Absent: true})
			} else {
				b.Preconditions = append(b.Preconditions, Precondition{Key: ch.Key, ETag: ch.To.Hash})
			}
		}
		res, err := r.WriteOne(ctx, &b)
		var ge *gitstate.Error
		if errors.As(err, &ge) && ge.Code == "precondition_failed" {
			if force && attempt < 5 {
				// Only a move has preconditions under force: the head
				// changed since movesBack looked at it.
				continue
			}
			return nil, gitstate.Errorf(gitstate.KindConflict, "revert_conflict",
				"%d key(s) changed after revision %d; revert with force to overwrite them", len(ge.Keys), rev).WithKeys(ge.Keys...)
		}
		return res, err
	}
}

// move is a move of one value from one key to another, with the tree
// entry (blob and mode) it moved.
type move struct {
	from, to string
	entry    TreeEntry
}

// movesOf returns the moves revision rev recorded (in its trailers) that
// carried their value unchanged: a batch that moved a key and then wrote
// to it did not. changes are rev's tree changes.
func (r *Repo) movesOf(rev int64, changes []Change) ([]move, error) {
	ri, err := r.Revision(rev)
	if err != nil {
		return nil, err
	}
	var byKey map[string]Change
	var out []move
	for _, kc := range ri.Changes {
		if kc.Op != "move" {
			continue
		}
		if byKey == nil {
			byKey = make(map[string]Change, len(changes))
			for _, ch := range changes {
				byKey[ch.Key] = ch
			}
		}
		src, dst := byKey[kc.From], byKey[kc.Key]
		if src.Op != Deleted || dst.Op != Added || src.From.Hash != dst.To.Hash || src.From.Mode != dst.To.Mode {
			continue
		}
		out = append(out, move{from: kc.From, to: kc.Key, entry: dst.To})
	}
	return out, nil
}

// movesBack returns, of moves, those that can be undone as moves at the
// current head (the destination still holds the moved value, the source
// is free), as a map from the key to move back to the key to restore.
func (r *Repo) movesBack(ctx context.Context, moves []move) (map[string]string, error) {
	if len(moves) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(moves))
	for _, m := range moves {
		dst, err := r.Lookup(ctx, m.to, 0)
		if err != nil {
			return nil, fmt.Errorf("look up %s: %w", m.to, err)
		}
		if dst == nil || dst.Blob != m.entry.Hash || dst.Mode != m.entry.Mode {
			continue
		}
		free, err := r.pathFree(m.from)
		if err != nil {
			return nil, err
		}
		if free {
			out[m.to] = m.from
		}
	}
	return out, nil
}

// Rollback makes a commit on main that sets every key under prefix back to
// what it was at revision to (keys added since are deleted). Keys outside the
// prefix, keys for which keep (when not nil) returns false, and paths that
// are not keys (see Diff) keep their current values.
//
// A key b that the rollback would delete, whose value the moves recorded
// since revision to brought there from a key a (through one move or a
// chain of them) that the rollback would put back with that same value, is
// moved back to a instead (recorded as a move b→a, not as a delete and a
// put).
func (r *Repo) Rollback(ctx context.Context, to int64, prefix string, keep func(key string) bool, tmpl Batch) (*Result, error) {
	target, err := r.commitOf(to)
	if err != nil {
		return nil, err
	}
	// The directory holding every key under prefix: the commit applies
	// only if it is still what the diff was made from, so that a key a
	// concurrent write adds under prefix is not left behind.
	dir := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir = prefix[:i]
	}
	for attempt := 0; ; attempt++ {
		head := r.Head()
		headTree, err := r.commitTree(head.Commit)
		if err != nil {
			return nil, err
		}
		guard, err := subtreeOf(r.readTree, headTree, dir)
		if err != nil {
			return nil, err
		}
		changes, err := r.Diff(ctx, head.Commit, target, prefix)
		if err != nil {
			return nil, err
		}
		if keep != nil {
			kept := changes[:0]
			for _, ch := range changes {
				if keep(ch.Key) {
					kept = append(kept, ch)
				}
			}
			changes = kept
		}
		back, err := r.rollbackMoves(changes, to, head.Revision)
		if err != nil {
			return nil, err
		}
		restored := make(map[string]bool, len(back))
		for _, k := range back {
			restored[k] = true
		}
		b := tmpl
		b.Ref = ""
		if b.Message == "" {
			b.Message = fmt.Sprintf("Roll back to revision %d", to)
			if prefix != "" {
				b.Message += " under " + prefix
			}
		}
		b.Ops, b.Preconditions = nil, nil
		b.Unchanged = &TreeGuard{Dir: dir, Tree: guard}
		for _, ch := range changes {
			switch {
			case restored[ch.Key]:
				// Put back by a move.
			case back[ch.Key] != "":
				b.Ops = append(b.Ops, Op{Kind: OpMove, From: ch.Key, Key: back[ch.Key]})
				b.Preconditions = append(b.Preconditions,
					Precondition{Key: ch.Key, ETag: ch.From.Hash}, Precondition{Key: back[ch.Key], Absent: true})
			case ch.Op == Deleted:
				b.Ops = append(b.Ops, Op{Kind: OpDelete, Key: ch.Key})
				b.Preconditions = append(b.Preconditions, Precondition{Key: ch.Key, ETag: ch.From.Hash})
			default:
				b.Ops = append(b.Ops, Op{Kind: OpPut, Key: ch.Key, Blob: ch.To.Hash, Mode: ch.To.Mode})
				if ch.Op == Added {
					b.Preconditions = append(b.Preconditions, Precondition{Key: ch.Key, Absent: true})
				} else {
					b.Preconditions = append(b.Preconditions, Precondition{Key: ch.Key, ETag: ch.From.Hash})
				}
			}
		}
		res, err := r.WriteOne(ctx, &b)
		// A concurrent write between the diff and the commit: diff again
		// and retry.
		if attempt < maxRollbackAttempts && (errors.Is(err, gitstate.ErrPreconditionFailed) || errors.Is(err, gitstate.ErrChangedConcurrently)) {
			continue
		}
		return res, err
	}
}

// rollbackMoves pairs the keys a rollback would delete with the keys it
// would put back, where the moves recorded after revision to (up to head)
// carried the value of the one to the other and the value is still the
// same: it returns a map from the key to delete to the key to put back.
// changes are the rollback's changes, from head to revision to. Each key
// to put back is paired at most once.
func (r *Repo) rollbackMoves(changes []Change, to, head int64) (map[string]string, error) {
	added := map[string]Change{}
	var deleted []Change
	for _, ch := range changes {
		switch ch.Op {
		case Added:
			added[ch.Key] = ch
		case Deleted:
			deleted = append(deleted, ch)
		}
	}
	if len(added) == 0 || len(deleted) == 0 {
		return nil, nil
	}
	var out map[string]string
	for _, d := range deleted {
		origin, err := r.moveOrigin(d.Key, to, head+1)
		if err != nil {
			return nil, err
		}
		a, ok := added[origin]
		if !ok || a.To.Hash != d.From.Hash || a.To.Mode != d.From.Mode {
			continue
		}
		if free, err := r.pathFree(origin); err != nil {
			return nil, err
		} else if !free {
			continue // a directory now: the put refuses it with key_conflict
		}
		if out == nil {
			out = map[string]string{}
		}
		out[d.Key] = origin
		delete(added, origin)
	}
	return out, nil
}

// moveOrigin follows back the moves that brought key's value to it, among
// the revisions after since and before before: while the last change to
// the key there is a move into it, it goes on from the key moved from,
// before that move. It returns the key where it stops (key itself when its
// last change was not a move).
func (r *Repo) moveOrigin(key string, since, before int64) (string, error) {
	for {
		var last int64
		if err := r.ix.keyHistory(r.name, key, before, func(rev int64) bool {
			last = rev
			return false
		}); err != nil {
			return "", fmt.Errorf("history of %s: %w", key, err)
		}
		if last <= since {
			return key, nil
		}
		ri, err := r.Revision(last)
		if err != nil {
			return "", err
		}
		from := ""
		for _, c := range ri.Changes {
			if c.Key == key && c.Op == "move" {
				from = c.From
			}
		}
		if from == "" {
			return key, nil
		}
		key, before = from, last
	}
}

// pathFree reports whether nothing is at key in main's head tree: no
// value, and no directory or submodule either, which a move there would
// find in its way (a precondition that the key is absent does not).
func (r *Repo) pathFree(key string) (bool, error) {
	tree, err := r.commitTree(r.Head().Commit)
	if err != nil {
		return false, err
	}
	_, ok, err := lookupPath(r.readTree, tree, key)
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", key, err)
	}
	return !ok, nil
}

// maxRollbackAttempts bounds the retries of a rollback whose prefix keeps
// changing between its diff and its commit.
const maxRollbackAttempts = 10
