package storage

import "strings"

// ChangeOp says how a key changed between two trees.
type ChangeOp uint8

// The ways a key can change.
const (
	Added ChangeOp = iota + 1
	Modified
	Deleted
)

// String returns the op's wire name.
func (op ChangeOp) String() string {
	switch op {
	case Added:
		return "added"
	case Modified:
		return "modified"
	case Deleted:
		return "deleted"
	}
	return "unknown"
}

// Change is one key that differs between two trees. From and To are the
// entries before and after (zero when absent).
type Change struct {
	Key  string
	Op   ChangeOp
	From TreeEntry
	To   TreeEntry
}

// diffTrees calls fn for every key that differs between the trees a and b
// (either may be zero, meaning empty), in key order, limited to keys that
// start with prefix. Subtrees with equal ids are skipped, so the cost is
// proportional to what changed. fn returning false stops the walk.
func diffTrees(read treeReader, a, b Hash, prefix string, fn func(Change) bool) error {
	_, err := diffDir(read, a, b, "", prefix, fn)
	return err
}

// prefixMayMatch reports whether a directory at dir (ending in '/', or ""
// for the root) can hold keys starting with prefix.
func prefixMayMatch(dir, prefix string) bool {
	return strings.HasPrefix(dir, prefix) || strings.HasPrefix(prefix, dir)
}

func readOrEmpty(read treeReader, h Hash) (*Tree, error) {
	if h.IsZero() || h == EmptyTreeHash {
		return &Tree{}, nil
	}
	return read(h)
}

func diffDir(read treeReader, a, b Hash, dir, prefix string, fn func(Change) bool) (bool, error) {
	if a == b || !prefixMayMatch(dir, prefix) {
		return true, nil
	}
	ta, err := readOrEmpty(read, a)
	if err != nil {
		return false, err
	}
	tb, err := readOrEmpty(read, b)
	if err != nil {
		return false, err
	}
	i, j := 0, 0
	for i < len(ta.Entries) || j < len(tb.Entries) {
		var ea, eb *TreeEntry
		switch {
		case i >= len(ta.Entries):
			eb = &tb.Entries[j]
		case j >= len(tb.Entries):
			ea = &ta.Entries[i]
		default:
			x, y := &ta.Entries[i], &tb.Entries[j]
			if x.Name == y.Name {
				ea, eb = x, y
			} else if treeNameLess(x.Name, x.IsDir(), y.Name, y.IsDir()) {
				ea = x
			} else {
				eb = y
			}
		}
		if ea != nil {
			i++
		}
		if eb != nil {
			j++
		}
		var ok bool
		var err error
		switch {
		case ea != nil && eb != nil && ea.IsDir() && eb.IsDir():
			ok = true
			if ea.Hash != eb.Hash { // before building the path: most are equal
				ok, err = diffDir(read, ea.Hash, eb.Hash, dir+ea.Name+"/", prefix, fn)
			}
		case ea != nil && eb != nil && !ea.IsDir() && !eb.IsDir():
			ok = true
			if (ea.Hash != eb.Hash || ea.Mode != eb.Mode) && strings.HasPrefix(dir+ea.Name, prefix) {
				ok = fn(Change{Key: dir + ea.Name, Op: Modified, From: *ea, To: *eb})
			}
		default:
			// Present on one side only, or a value on one side and a
			// directory on the other: the value comes first in key order.
			ok, err = diffOneSide(read, dir, prefix, ea, eb, fn)
		}
		if err != nil || !ok {
			return ok, err
		}
	}
	return true, nil
}

func diffOneSide(read treeReader, dir, prefix string, ea, eb *TreeEntry, fn func(Change) bool) (bool, error) {
	emit := func(e *TreeEntry, deleted bool) (bool, error) {
		if e == nil {
			return true, nil
		}
		if e.IsDir() {
			if deleted {
				return diffDir(read, e.Hash, ZeroHash, dir+e.Name+"/", prefix, fn)
			}
			return diffDir(read, ZeroHash, e.Hash, dir+e.Name+"/", prefix, fn)
		}
		if !strings.HasPrefix(dir+e.Name, prefix) {
			return true, nil
		}
		if deleted {
			return fn(Change{Key: dir + e.Name, Op: Deleted, From: *e}), nil
		}
		return fn(Change{Key: dir + e.Name, Op: Added, To: *e}), nil
	}
	// Key order: "x" (a value) sorts before "x/..." (a directory's keys).
	first, second := ea, eb
	firstDeleted := true
	if ea != nil && eb != nil && ea.IsDir() {
		first, second, firstDeleted = eb, ea, false
	} else if ea == nil {
		first, second, firstDeleted = eb, nil, false
	}
	ok, err := emit(first, firstDeleted)
	if err != nil || !ok {
		return ok, err
	}
	return emit(second, !firstDeleted)
}

// walkTree calls fn for every key (value, not directory) under root that
// starts with prefix and sorts after after, in key order. fn returning false
// stops the walk.
func walkTree(read treeReader, root Hash, prefix, after string, fn func(key string, e TreeEntry) bool) error {
	_, err := walkDir(read, root, "", prefix, after, fn)
	return err
}

func walkDir(read treeReader, h Hash, dir, prefix, after string, fn func(string, TreeEntry) bool) (bool, error) {
	t, err := readOrEmpty(read, h)
	if err != nil {
		return false, err
	}
	for _, e := range t.Entries {
		key := dir + e.Name
		if e.IsDir() {
			sub := key + "/"
			if !prefixMayMatch(sub, prefix) {
				continue
			}
			// Skip a directory whose keys all sort at or before after.
			if after != "" && sub < after && !strings.HasPrefix(after, sub) {
				continue
			}
			ok, err := walkDir(read, e.Hash, sub, prefix, after, fn)
			if err != nil || !ok {
				return ok, err
			}
			continue
		}
		if !strings.HasPrefix(key, prefix) || (after != "" && key <= after) {
			continue
		}
		if !fn(key, e) {
			return false, nil
		}
	}
	return true, nil
}

// keyChange returns a tree change as a change of keys, the paths the API
// can address, and false when it changes none. A submodule (a commit of
// another repository) is not a key: a value it replaces reads as deleted,
// a value that replaces it as added, and a submodule added, changed or
// removed as nothing. Nor is a path that is not a valid key (see listable),
// which only an import brings: its changes are left out, so that a
// rollback or a revert keeps it as it is. diffTrees itself reports both,
// for the pushes that must refuse them.
func keyChange(c Change) (Change, bool) {
	from, to := c.From.Mode == ModeSubmodule, c.To.Mode == ModeSubmodule
	if !from && !to {
		return c, listable(c.Key)
	}
	if from {
		c.From, c.Op = TreeEntry{}, Added
	}
	if to {
		c.To, c.Op = TreeEntry{}, Deleted
	}
	return c, (!c.From.Hash.IsZero() || !c.To.Hash.IsZero()) && listable(c.Key)
}
