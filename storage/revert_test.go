package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/gitstate/gitstate"
)

// putOp is a batch that sets key to value.
func putOp(key, value string) *Batch {
	return &Batch{Ops: []Op{{Kind: OpPut, Key: key, Value: []byte(value)}}}
}

// deleteOp is a batch that deletes key.
func deleteOp(key string) *Batch {
	return &Batch{Ops: []Op{{Kind: OpDelete, Key: key}}}
}

// moveOp is a batch that moves from to to.
func moveOp(from, to string) *Batch {
	return &Batch{Ops: []Op{{Kind: OpMove, From: from, Key: to}}}
}

// TestRevertRollbackMoves: undoing a move, by revert or rollback, is
// recorded as a move back when the moved value is still where the move put
// it (and its old key is free), and as a delete and a put otherwise.
func TestRevertRollbackMoves(t *testing.T) {
	ctx := context.Background()
	blob := func(v string) string { return HashObject(BlobObject, []byte(v)).String() }
	tests := []struct {
		name string
		// setup writes the history; the undo's commit comes next.
		setup []*Batch
		undo  func(r *Repo) (*Result, error)
		want  []KeyChange
		// values are the keys after the undo ("" for absent).
		values map[string]string
	}{{
		name:   "revert a move",
		setup:  []*Batch{putOp("mv/old", "v"), moveOp("mv/old", "mv/new")},
		undo:   func(r *Repo) (*Result, error) { return r.Revert(ctx, 2, false, Batch{}) },
		want:   []KeyChange{{Key: "mv/old", Op: "move", From: "mv/new", ETag: blob("v")}},
		values: map[string]string{"mv/old": "v", "mv/new": ""},
	}, {
		name:   "revert a move in a batch with other changes",
		setup:  []*Batch{putOp("mv/old", "v"), {Ops: []Op{{Kind: OpMove, From: "mv/old", Key: "mv/new"}, {Kind: OpPut, Key: "x", Value: []byte("x")}}}},
		undo:   func(r *Repo) (*Result, error) { return r.Revert(ctx, 2, false, Batch{}) },
		want:   []KeyChange{{Key: "mv/old", Op: "move", From: "mv/new", ETag: blob("v")}, {Key: "x", Op: "delete"}},
		values: map[string]string{"mv/old": "v", "mv/new": "", "x": ""},
	}, {
		name:   "forced revert of a move whose value changed since",
		setup:  []*Batch{putOp("mv/old", "v"), moveOp("mv/old", "mv/new"), putOp("mv/new", "w")},
		undo:   func(r *Repo) (*Result, error) { return r.Revert(ctx, 2, true, Batch{}) },
		want:   []KeyChange{{Key: "mv/new", Op: "delete"}, {Key: "mv/old", Op: "put", ETag: blob("v")}},
		values: map[string]string{"mv/old": "v", "mv/new": ""},
	}, {
		name:   "forced revert of a move whose old key was taken since",
		setup:  []*Batch{putOp("mv/old", "v"), moveOp("mv/old", "mv/new"), putOp("mv/old", "w")},
		undo:   func(r *Repo) (*Result, error) { return r.Revert(ctx, 2, true, Batch{}) },
		want:   []KeyChange{{Key: "mv/new", Op: "delete"}, {Key: "mv/old", Op: "put", ETag: blob("v")}},
		values: map[string]string{"mv/old": "v", "mv/new": ""},
	}, {
		name: "revert of a batch that moved a key then wrote to it",
		setup: []*Batch{putOp("mv/old", "v"), {Ops: []Op{
			{Kind: OpMove, From: "mv/old", Key: "mv/new"}, {Kind: OpPut, Key: "mv/new", Value: []byte("w")}}}},
		undo:   func(r *Repo) (*Result, error) { return r.Revert(ctx, 2, false, Batch{}) },
		want:   []KeyChange{{Key: "mv/new", Op: "delete"}, {Key: "mv/old", Op: "put", ETag: blob("v")}},
		values: map[string]string{"mv/old": "v", "mv/new": ""},
	}, {
		name:   "rollback over a move",
		setup:  []*Batch{putOp("mv/old", "v"), moveOp("mv/old", "mv/new"), putOp("mv/other", "o")},
		undo:   func(r *Repo) (*Result, error) { return r.Rollback(ctx, 1, "mv/", nil, Batch{}) },
		want:   []KeyChange{{Key: "mv/old", Op: "move", From: "mv/new", ETag: blob("v")}, {Key: "mv/other", Op: "delete"}},
		values: map[string]string{"mv/old": "v", "mv/new": "", "mv/other": ""},
	}, {
		name:   "rollback over a chain of moves",
		setup:  []*Batch{putOp("mv/a", "v"), moveOp("mv/a", "mv/b"), putOp("mv/a", "again"), moveOp("mv/b", "mv/c"), deleteOp("mv/a")},
		undo:   func(r *Repo) (*Result, error) { return r.Rollback(ctx, 1, "", nil, Batch{}) },
		want:   []KeyChange{{Key: "mv/a", Op: "move", From: "mv/c", ETag: blob("v")}},
		values: map[string]string{"mv/a": "v", "mv/b": "", "mv/c": ""},
	}, {
		name:   "rollback over a move whose value changed since",
		setup:  []*Batch{putOp("mv/old", "v"), moveOp("mv/old", "mv/new"), putOp("mv/new", "w")},
		undo:   func(r *Repo) (*Result, error) { return r.Rollback(ctx, 1, "", nil, Batch{}) },
		want:   []KeyChange{{Key: "mv/new", Op: "delete"}, {Key: "mv/old", Op: "put", ETag: blob("v")}},
		values: map[string]string{"mv/old": "v", "mv/new": ""},
	}, {
		name: "rollback over a delete and a put of the same value is no move",
		setup: []*Batch{putOp("mv/old", "v"), {Ops: []Op{
			{Kind: OpDelete, Key: "mv/old"}, {Kind: OpPut, Key: "mv/new", Value: []byte("v")}}}},
		undo:   func(r *Repo) (*Result, error) { return r.Rollback(ctx, 1, "", nil, Batch{}) },
		want:   []KeyChange{{Key: "mv/new", Op: "delete"}, {Key: "mv/old", Op: "put", ETag: blob("v")}},
		values: map[string]string{"mv/old": "v", "mv/new": ""},
	}, {
		name:  "rollback that may not touch the old key",
		setup: []*Batch{putOp("mv/old", "v"), moveOp("mv/old", "mv/new")},
		undo: func(r *Repo) (*Result, error) {
			return r.Rollback(ctx, 1, "", func(k string) bool { return k != "mv/old" }, Batch{})
		},
		want:   []KeyChange{{Key: "mv/new", Op: "delete"}},
		values: map[string]string{"mv/old": "", "mv/new": ""},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := defaultRepo(t, newTestStore(t))
			for i, b := range tt.setup {
				if _, err := r.WriteOne(ctx, b); err != nil {
					t.Fatalf("setup %d: %v", i+1, err)
				}
			}
			res, err := tt.undo(r)
			if err != nil {
				t.Fatal(err)
			}
			ri, err := r.Revision(res.Revision)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ri.Changes, tt.want) {
				t.Errorf("changes\n got %+v\nwant %+v", ri.Changes, tt.want)
			}
			for k, want := range tt.values {
				v, err := r.Lookup(ctx, k, 0)
				if err != nil {
					t.Fatal(err)
				}
				if got := ""; v != nil {
					got = string(v.Data)
					if got != want {
						t.Errorf("%s = %q, want %q", k, got, want)
					}
				} else if want != "" {
					t.Errorf("%s absent, want %q", k, want)
				}
			}
		})
	}
}

// TestRevertMoveConflict: without force, a revert of a move whose value
// changed since is a revert_conflict naming the key, as for any key.
func TestRevertMoveConflict(t *testing.T) {
	ctx := context.Background()
	r := defaultRepo(t, newTestStore(t))
	for _, b := range []*Batch{putOp("mv/old", "v"), moveOp("mv/old", "mv/new"), putOp("mv/new", "w")} {
		if _, err := r.WriteOne(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	_, err := r.Revert(ctx, 2, false, Batch{})
	var ge *gitstate.Error
	if !errors.As(err, &ge) || ge.Code != "revert_conflict" || !slices.Equal(ge.Keys, []string{"mv/new"}) {
		t.Fatalf("revert: %v, want revert_conflict on mv/new", err)
	}
}

// TestUndoMoveOntoDirectory: undoing a move m→c after m became a directory
// (m/x was written) is refused as a put of m would be, key_conflict naming
// m, not as a move that finds something in its way (key_exists, though m
// is no key).
func TestUndoMoveOntoDirectory(t *testing.T) {
	tests := []struct {
		name string
		undo func(ctx context.Context, r *Repo) error
	}{
		{"revert", func(ctx context.Context, r *Repo) error { _, err := r.Revert(ctx, 2, false, Batch{}); return err }},
		{"revert with force", func(ctx context.Context, r *Repo) error { _, err := r.Revert(ctx, 2, true, Batch{}); return err }},
		{"rollback", func(ctx context.Context, r *Repo) error { _, err := r.Rollback(ctx, 1, "", nil, Batch{}); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r := defaultRepo(t, newTestStore(t))
			for _, b := range []*Batch{putOp("m", "v"), moveOp("m", "c"), putOp("m/x", "w")} {
				if _, err := r.WriteOne(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			err := tt.undo(ctx, r)
			var ge *gitstate.Error
			if !errors.As(err, &ge) || ge.Code != "key_conflict" {
				t.Fatalf("%s: %v, want key_conflict", tt.name, err)
			}
			if head := r.Head().Revision; head != 3 {
				t.Errorf("head %d after a refused %s, want 3", head, tt.name)
			}
		})
	}
}

// TestRollbackUnderConcurrentWrite: a key written under the prefix after
// a rollback's diff and before its commit is not left behind: the commit
// finds the prefix changed, and the rollback diffs again. The write is made
// from the keep filter, which the rollback calls between the two.
func TestRollbackUnderConcurrentWrite(t *testing.T) {
	ctx := context.Background()
	r := defaultRepo(t, newTestStore(t))
	for _, b := range []*Batch{putOp("hot/base", "v"), putOp("hot/two", "w"), putOp("cold/k", "c")} {
		if _, err := r.WriteOne(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, prefix, key string
	}{
		{"a new key under the prefix", "hot/", "hot/new"},
		{"a new directory under the prefix", "hot/", "hot/sub/new"},
		{"a new key beside a prefix that is no directory", "hot/t", "hot/tt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var once sync.Once
			keep := func(string) bool {
				once.Do(func() {
					if _, err := r.WriteOne(ctx, putOp(tt.key, "x")); err != nil {
						t.Error(err)
					}
				})
				return true
			}
			res, err := r.Rollback(ctx, 1, tt.prefix, keep, Batch{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.ListAt(ctx, res.Commit, ListOptions{Prefix: tt.prefix})
			if err != nil {
				t.Fatal(err)
			}
			want, err := r.List(ctx, ListOptions{Prefix: tt.prefix, Revision: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Items) != len(want.Items) {
				t.Errorf("at the rollback's revision %d, %s holds %d keys, want %d (as at revision 1)", res.Revision, tt.prefix, len(got.Items), len(want.Items))
			}
			if v, err := r.GetAt(ctx, res.Commit, "cold/k"); err != nil || string(v.Data) != "c" {
				t.Errorf("cold/k, outside the prefix: %v, %v", v, err)
			}
		})
	}
}

// TestRollbackGivesUp: a rollback whose prefix changes before every commit
// fails with changed_concurrently after its retries, having changed
// nothing itself.
func TestRollbackGivesUp(t *testing.T) {
	ctx := context.Background()
	r := defaultRepo(t, newTestStore(t))
	for _, b := range []*Batch{putOp("hot/base", "v"), putOp("hot/two", "w")} {
		if _, err := r.WriteOne(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	writes := 0
	keep := func(string) bool {
		writes++
		if _, err := r.WriteOne(ctx, putOp(fmt.Sprintf("hot/new%d", writes), "x")); err != nil {
			t.Error(err)
		}
		return true
	}
	_, err := r.Rollback(ctx, 1, "hot/", keep, Batch{})
	if !errors.Is(err, gitstate.ErrChangedConcurrently) {
		t.Fatalf("rollback: %v, want changed_concurrently", err)
	}
	if head := r.Head().Revision; head != int64(2+writes) {
		t.Errorf("head %d after %d writes and a failed rollback, want %d", head, writes, 2+writes)
	}
}
