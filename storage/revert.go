package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/gitstate/gitstate"
)

// Revert makes a commit on main that undoes revision rev: every key rev
// changed goes back to its value before rev. Unless force is set, it fails
// with revert_conflict (naming the keys) when one of those keys has changed
// since rev. tmpl gives the author, message and trailers.
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
	b := tmpl
	b.Ref = ""
	if b.Message == "" {
		b.Message = fmt.Sprintf("Revert revision %d\n\nThis reverts commit %s.", rev, h)
	}
	b.Ops, b.Preconditions = nil, nil
	for _, ch := range changes {
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
		return nil, gitstate.Errorf(gitstate.KindConflict, "revert_conflict",
			"%d key(s) changed after revision %d; revert with force to overwrite them", len(ge.Keys), rev).WithKeys(ge.Keys...)
	}
	return res, err
}

// Rollback makes a commit on main that sets every key under prefix back to
// what it was at revision to (keys added since are deleted). Keys outside the
// prefix, and keys for which keep (when not nil) returns false, keep their
// current values.
func (r *Repo) Rollback(ctx context.Context, to int64, prefix string, keep func(key string) bool, tmpl Batch) (*Result, error) {
	target, err := r.commitOf(to)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		head := r.Head()
		changes, err := r.Diff(ctx, head.Commit, target, prefix)
		if err != nil {
			return nil, err
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
		for _, ch := range changes {
			if keep != nil && !keep(ch.Key) {
				continue
			}
			if ch.Op == Deleted {
				b.Ops = append(b.Ops, Op{Kind: OpDelete, Key: ch.Key})
				b.Preconditions = append(b.Preconditions, Precondition{Key: ch.Key, ETag: ch.From.Hash})
			} else {
				b.Ops = append(b.Ops, Op{Kind: OpPut, Key: ch.Key, Blob: ch.To.Hash, Mode: ch.To.Mode})
				if ch.Op == Added {
					b.Preconditions = append(b.Preconditions, Precondition{Key: ch.Key, Absent: true})
				} else {
					b.Preconditions = append(b.Preconditions, Precondition{Key: ch.Key, ETag: ch.From.Hash})
				}
			}
		}
		res, err := r.WriteOne(ctx, &b)
		// The preconditions only guard against a concurrent write between
		// the diff and the commit: diff again and retry.
		if errors.Is(err, gitstate.ErrPreconditionFailed) && attempt < 5 {
			continue
		}
		return res, err
	}
}
