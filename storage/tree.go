package storage

import (
	"slices"
	"sort"
	"strings"

	"github.com/gitstate/gitstate"
)

// treeReader returns decoded trees by id, usually from a cache.
type treeReader func(Hash) (*Tree, error)

// treeEditor applies key changes to a root tree, touching only the trees on
// the changed paths, and writes out the new trees. It is not safe for
// concurrent use.
type treeEditor struct {
	read treeReader
	root *editNode
}

// editNode is a tree being edited: its entries are a private copy (Git
// order); kids holds the subtrees being edited, by name.
type editNode struct {
	orig    Hash // the tree it was loaded from (zero for a new tree)
	entries []TreeEntry
	// shared is set while entries is a decoded tree's own slice (the tree
	// cache's, or the one just written): it is copied before the first
	// change. A directory of a thousand entries is then copied once per
	// edit instead of twice, and not at all when only read.
	shared bool
	kids   map[string]*editNode
	dirty  bool
}

// own makes n's entries its own to change.
func (n *editNode) own() {
	if n.shared {
		n.entries = slices.Clone(n.entries)
		n.shared = false
	}
}

func newTreeEditor(read treeReader, root Hash) (*treeEditor, error) {
	n, err := loadNode(read, root)
	if err != nil {
		return nil, err
	}
	return &treeEditor{read: read, root: n}, nil
}

func loadNode(read treeReader, h Hash) (*editNode, error) {
	n := &editNode{orig: h}
	if h.IsZero() || h == EmptyTreeHash {
		return n, nil
	}
	t, err := read(h)
	if err != nil {
		return nil, err
	}
	n.entries, n.shared = t.Entries, true
	return n, nil
}

func (n *editNode) find(name string) int {
	t := Tree{Entries: n.entries}
	return t.Find(name)
}

// insert adds or replaces the entry e.
func (n *editNode) set(e TreeEntry) {
	n.own()
	if i := n.find(e.Name); i >= 0 {
		n.entries[i] = e
		return
	}
	i := sort.Search(len(n.entries), func(i int) bool {
		return !treeNameLess(n.entries[i].Name, n.entries[i].IsDir(), e.Name, e.IsDir())
	})
	n.entries = append(n.entries, TreeEntry{})
	copy(n.entries[i+1:], n.entries[i:])
	n.entries[i] = e
}

func (n *editNode) remove(i int) {
	n.own()
	n.entries = append(n.entries[:i], n.entries[i+1:]...)
}

// get returns the entry at path (a key, or a directory path), if any.
func (e *treeEditor) get(path string) (TreeEntry, bool, error) {
	n := e.root
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		if k, ok := n.kids[seg]; ok && i < len(segs)-1 {
			n = k
			continue
		}
		j := n.find(seg)
		if j < 0 {
			return TreeEntry{}, false, nil
		}
		ent := n.entries[j]
		if i == len(segs)-1 {
			if k, ok := n.kids[seg]; ok {
				// An edited subtree: its hash is not known until written.
				if len(k.entries) == 0 {
					return TreeEntry{}, false, nil
				}
				return TreeEntry{Name: seg, Mode: ModeDir}, true, nil
			}
			return ent, true, nil
		}
		if !ent.IsDir() {
			return TreeEntry{}, false, nil
		}
		// Below here nothing is being edited: read the stored trees.
		return lookupPath(e.read, ent.Hash, strings.Join(segs[i+1:], "/"))
	}
	return TreeEntry{}, false, nil
}

// lookupPath returns the entry at path below the tree root.
func lookupPath(read treeReader, root Hash, path string) (TreeEntry, bool, error) {
	h := root
	for {
		seg, rest, more := strings.Cut(path, "/")
		if h.IsZero() || h == EmptyTreeHash {
			return TreeEntry{}, false, nil
		}
		t, err := read(h)
		if err != nil {
			return TreeEntry{}, false, err
		}
		i := t.Find(seg)
		if i < 0 {
			return TreeEntry{}, false, nil
		}
		ent := t.Entries[i]
		if !more {
			return ent, true, nil
		}
		if !ent.IsDir() {
			return TreeEntry{}, false, nil
		}
		h, path = ent.Hash, rest
	}
}

// dirFor returns the node of the directory holding key, creating the
// directories on the way when create is set. It returns nil (and no error)
// when the directory does not exist and create is not set.
func (e *treeEditor) dirFor(key string, create bool) (*editNode, string, error) {
	n := e.root
	segs := strings.Split(key, "/")
	for i, seg := range segs[:len(segs)-1] {
		if k, ok := n.kids[seg]; ok {
			n = k
			continue
		}
		j := n.find(seg)
		var kid *editNode
		switch {
		case j < 0:
			if !create {
				return nil, "", nil
			}
			kid = &editNode{}
			n.set(TreeEntry{Name: seg, Mode: ModeDir})
			n.dirty = true
		case !n.entries[j].IsDir():
			if !create {
				return nil, "", nil
			}
			p := strings.Join(segs[:i+1], "/")
			return nil, "", gitstate.Errorf(gitstate.KindConflict, "key_conflict",
				"%q holds a value, so it cannot hold keys such as %q", p, key).WithKeys(key, p)
		default:
			var err error
			if kid, err = loadNode(e.read, n.entries[j].Hash); err != nil {
				return nil, "", err
			}
		}
		if n.kids == nil {
			n.kids = map[string]*editNode{}
		}
		n.kids[seg] = kid
		n = kid
	}
	return n, segs[len(segs)-1], nil
}

// put sets key to the blob h with mode (0 keeps the current mode, or uses
// ModeFile for a new key). It reports whether anything changed.
func (e *treeEditor) put(key string, h Hash, mode uint32) (bool, error) {
	n, name, err := e.dirFor(key, true)
	if err != nil {
		return false, err
	}
	if k, ok := n.kids[name]; ok && len(k.entries) > 0 {
		return false, keyIsDir(key)
	}
	if i := n.find(name); i >= 0 {
		cur := n.entries[i]
		if cur.IsDir() {
			if _, editing := n.kids[name]; !editing {
				return false, keyIsDir(key)
			}
		}
		if mode == 0 {
			mode = cur.Mode
			if cur.IsDir() {
				mode = ModeFile
			}
		}
		if cur.Hash == h && cur.Mode == mode {
			return false, nil
		}
		delete(n.kids, name)
		n.remove(i)
	}
	if mode == 0 {
		mode = ModeFile
	}
	n.set(TreeEntry{Name: name, Mode: mode, Hash: h})
	n.dirty = true
	return true, nil
}

func keyIsDir(key string) error {
	return gitstate.Errorf(gitstate.KindConflict, "key_conflict",
		"%q holds keys under it, so it cannot hold a value", key).WithKeys(key)
}

// delete removes key (a value, not a directory). It reports whether it was
// there.
func (e *treeEditor) delete(key string) (bool, error) {
	n, name, err := e.dirFor(key, false)
	if err != nil || n == nil {
		return false, err
	}
	i := n.find(name)
	if i < 0 || n.entries[i].IsDir() {
		return false, nil
	}
	n.remove(i)
	n.dirty = true
	return true, nil
}

// deleteDir removes the directory dir and every key under it. It reports
// whether it was there.
func (e *treeEditor) deleteDir(dir string) (bool, error) {
	n, name, err := e.dirFor(dir, false)
	if err != nil || n == nil {
		return false, err
	}
	i := n.find(name)
	if i < 0 || !n.entries[i].IsDir() {
		return false, nil
	}
	if k, ok := n.kids[name]; ok && len(k.entries) == 0 {
		return false, nil
	}
	delete(n.kids, name)
	n.remove(i)
	n.dirty = true
	return true, nil
}

// setDir points the directory dir at the tree h (zero removes it). Used to
// restore a subtree as it was at another revision.
func (e *treeEditor) setDir(dir string, h Hash) error {
	if dir == "" {
		n, err := loadNode(e.read, h)
		if err != nil {
			return err
		}
		n.dirty = true
		n.orig = ZeroHash
		e.root = n
		return nil
	}
	if h.IsZero() || h == EmptyTreeHash {
		_, err := e.deleteDir(dir)
		return err
	}
	n, name, err := e.dirFor(dir, true)
	if err != nil {
		return err
	}
	if i := n.find(name); i >= 0 {
		if !n.entries[i].IsDir() {
			return gitstate.Errorf(gitstate.KindConflict, "key_conflict", "%q holds a value", dir).WithKeys(dir)
		}
		n.remove(i)
	}
	delete(n.kids, name)
	n.set(TreeEntry{Name: name, Mode: ModeDir, Hash: h})
	n.dirty = true
	return nil
}

// write writes out every edited tree (calling emit for each new one, which
// may be an object already stored) and returns the id of the root. Empty
// directories disappear. The editor keeps working on the result.
func (e *treeEditor) write(emit func(*Object, *Tree)) Hash {
	h, _ := writeNode(e.root, emit, true)
	return h
}

func writeNode(n *editNode, emit func(*Object, *Tree), isRoot bool) (Hash, bool) {
	for name, k := range n.kids {
		h, empty := writeNode(k, emit, false)
		i := n.find(name)
		if empty {
			if i >= 0 {
				n.remove(i)
			}
			n.dirty = true
		} else if i >= 0 && n.entries[i].Hash != h {
			n.own()
			n.entries[i].Hash = h
			n.dirty = true
		}
	}
	n.kids = nil
	if len(n.entries) == 0 && !isRoot {
		n.orig = ZeroHash
		return ZeroHash, true
	}
	if !n.dirty && !n.orig.IsZero() {
		return n.orig, false
	}
	// The new tree takes the entries; n copies them again if it is
	// changed after this.
	t := &Tree{Entries: n.entries}
	n.shared = true
	o := NewObject(TreeObject, t.Encode())
	o.DeltaBase = n.orig // the version it replaces: a pack can store the change alone
	emit(o, t)
	n.orig, n.dirty = o.Hash, false
	return o.Hash, false
}
