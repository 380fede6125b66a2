package storage

import (
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/gitstate/gitstate"
)

// treeReader returns decoded trees by id, usually from a cache.
type treeReader func(Hash) (*Tree, error)

// treeEditor applies key changes to a root tree, touching only the trees on
// the changed paths, and writes out the new trees. It is not safe for
// concurrent use.
type treeEditor struct {
	read treeReader
	base Hash // the root the editor started from
	root *editNode
	pool *entryPool // may be nil
}

// editNode is a tree being edited: its entries are a private copy (Git
// order); kids holds the subtrees being edited, by name.
type editNode struct {
	orig    Hash // the tree it was loaded from (zero for a new tree)
	entries []TreeEntry
	// base is the tree n was loaded from (zero for a new directory; unlike
	// orig, write does not move it), and touched the names whose entries
	// have been set or removed since, or whose subtree has been edited
	// (with the kid that edited it; nil once the entry was replaced). The
	// keys the edit changed are found by looking at these names only: see
	// changes.
	base    Hash
	touched nodeRefs
	// shared is set while entries is a decoded tree's own slice (the tree
	// cache's, or the one just written): it is copied before the first
	// change. A directory of a thousand entries is then copied once per
	// edit instead of twice, and not at all when only read.
	shared bool
	kids   nodeRefs
	dirty  bool
	// raw is the encoding of the tree n was loaded from or last wrote, when
	// known (trees this process made), patched the indexes of the entries
	// whose id has changed in place since, and reshaped is set once an
	// entry was added, removed or changed mode. While only ids change (a
	// commit below a busy directory changes one subtree's id), write copies
	// raw and patches 20 bytes per changed entry instead of encoding a
	// thousand entries again.
	raw      []byte
	patched  []int
	reshaped bool
	// inserted is 1 + the index of the one entry added since raw was
	// made, when nothing else reshaped n (0 otherwise): write then copies
	// raw around that entry's encoding (and patches ids after) instead of
	// encoding every entry. A directory that gets a new key per commit is
	// written that way.
	inserted int
	// mid holds the SHA-1 states over raw, when it is long (see
	// midstates): the next version is hashed from its first changed byte.
	mid  *midstates
	pool *entryPool // where own takes its copy from (may be nil)
}

// nodeRefs maps names to nodes: the subtrees a node is editing, or the
// names it touched. An edit usually goes through one name per directory,
// so it is a slice searched in order, with an index by name once it holds
// more than nodeRefsIndexed names (a batch into one directory). A map per
// directory per commit, for one or two names, was 4% of the bytes a write
// allocated.
type nodeRefs struct {
	refs  []nodeRef
	index map[string]int // position in refs, past nodeRefsIndexed names
}

type nodeRef struct {
	name string
	node *editNode
}

const nodeRefsIndexed = 8

func (m *nodeRefs) find(name string) int {
	if m.index != nil {
		if i, ok := m.index[name]; ok {
			return i
		}
		return -1
	}
	for i := range m.refs {
		if m.refs[i].name == name {
			return i
		}
	}
	return -1
}

func (m *nodeRefs) get(name string) (*editNode, bool) {
	if i := m.find(name); i >= 0 {
		return m.refs[i].node, true
	}
	return nil, false
}

func (m *nodeRefs) set(name string, node *editNode) {
	if i := m.find(name); i >= 0 {
		m.refs[i].node = node
		return
	}
	m.refs = append(m.refs, nodeRef{name, node})
	switch {
	case m.index != nil:
		m.index[name] = len(m.refs) - 1
	case len(m.refs) > nodeRefsIndexed:
		m.index = make(map[string]int, 2*len(m.refs))
		for i, r := range m.refs {
			m.index[r.name] = i
		}
	}
}

func (m *nodeRefs) del(name string) {
	i := m.find(name)
	if i < 0 {
		return
	}
	last := len(m.refs) - 1
	if i != last {
		m.refs[i] = m.refs[last]
		if m.index != nil {
			m.index[m.refs[i].name] = i
		}
	}
	m.refs[last] = nodeRef{}
	m.refs = m.refs[:last]
	if m.index != nil {
		delete(m.index, name)
	}
}

// reset empties m, keeping its slice.
func (m *nodeRefs) reset() {
	clear(m.refs)
	m.refs, m.index = m.refs[:0], nil
}

// own makes n's entries its own to change.
func (n *editNode) own() {
	if n.shared {
		n.entries = n.pool.clone(n.entries)
		n.shared = false
	}
}

// entryPool recycles the entry slices of decoded trees nothing can reach
// any more: the versions of a directory that a group of commits rewrote
// again before the group was sealed (a busy directory is rewritten by
// every commit, and copying its entries for each was the largest
// allocation of a write). It is not safe for concurrent use: only the
// committer has one.
type entryPool struct {
	free [][]TreeEntry
	// back holds the slices other goroutines give back (giveBack): the
	// publisher's, from the versions of main's directories a published
	// group superseded. clone takes them when free has none that fits.
	mu   sync.Mutex
	back [][]TreeEntry
	gave int // slices given back, for tests
}

// maxPooled bounds the slices an entryPool keeps.
const maxPooled = 256

// clone returns a copy of s, in a recycled slice when one fits.
func (p *entryPool) clone(s []TreeEntry) []TreeEntry {
	if p == nil {
		return slices.Clone(s)
	}
	if f, ok := p.take(len(s)); ok {
		return append(f, s...)
	}
	if p.takeBack() {
		if f, ok := p.take(len(s)); ok {
			return append(f, s...)
		}
	}
	return slices.Clone(s)
}

// take removes from free a slice that fits n entries without wasting more
// than about half of it, and returns it empty.
func (p *entryPool) take(n int) ([]TreeEntry, bool) {
	for i := len(p.free) - 1; i >= 0; i-- {
		if f := p.free[i]; cap(f) >= n && cap(f) <= 2*n+16 {
			p.free[i] = p.free[len(p.free)-1]
			p.free = p.free[:len(p.free)-1]
			return f[:0], true
		}
	}
	return nil, false
}

// takeBack moves the slices given back into free, and reports whether
// there were any.
func (p *entryPool) takeBack() bool {
	p.mu.Lock()
	back := p.back
	p.back = nil
	p.mu.Unlock()
	for _, f := range back {
		p.recycle(f)
	}
	return len(back) > 0
}

// giveBack is recycle for any goroutine: the committer takes the slice
// when it next needs one.
func (p *entryPool) giveBack(s []TreeEntry) {
	if cap(s) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gave++
	if len(p.back) < maxPooled {
		p.back = append(p.back, s[:0])
	}
}

// recycle gives the pool a slice no one will read or write again.
func (p *entryPool) recycle(s []TreeEntry) {
	if p == nil || len(p.free) >= maxPooled || cap(s) == 0 {
		return
	}
	p.free = append(p.free, s[:0])
}

func newTreeEditor(read treeReader, root Hash, pool *entryPool) (*treeEditor, error) {
	n, err := loadNode(read, root, pool)
	if err != nil {
		return nil, err
	}
	return &treeEditor{read: read, base: root, root: n, pool: pool}, nil
}

func loadNode(read treeReader, h Hash, pool *entryPool) (*editNode, error) {
	n := &editNode{orig: h, base: h, pool: pool}
	if h.IsZero() || h == EmptyTreeHash {
		return n, nil
	}
	t, err := read(h)
	if err != nil {
		return nil, err
	}
	n.entries, n.shared, n.raw, n.mid = t.Entries, true, t.raw, t.mid
	return n, nil
}

func (n *editNode) find(name string) int {
	t := Tree{Entries: n.entries}
	return t.find(name, false)
}

// findDir is find for a name that is most likely a directory's.
func (n *editNode) findDir(name string) int {
	t := Tree{Entries: n.entries}
	return t.find(name, true)
}

// touch records that the entry name has changed; kid, when not nil, is the
// node editing its subtree.
func (n *editNode) touch(name string, kid *editNode) {
	n.touched.set(name, kid)
}

// set adds or replaces the entry e.
func (n *editNode) set(e TreeEntry) {
	n.own()
	n.touch(e.Name, nil)
	if i := n.find(e.Name); i >= 0 {
		if n.entries[i].Mode == e.Mode {
			n.patched = append(n.patched, i)
		} else {
			n.reshaped, n.inserted = true, 0
		}
		n.entries[i] = e
		return
	}
	i := sort.Search(len(n.entries), func(i int) bool {
		return !treeNameLess(n.entries[i].Name, n.entries[i].IsDir(), e.Name, e.IsDir())
	})
	// Patched indexes count entries before an insertion: only a first
	// change can be an insertion write splices.
	n.inserted = 0
	if !n.reshaped && len(n.patched) == 0 && n.raw != nil {
		n.inserted = i + 1
	}
	n.reshaped = true
	n.entries = append(n.entries, TreeEntry{})
	copy(n.entries[i+1:], n.entries[i:])
	n.entries[i] = e
}

func (n *editNode) remove(i int) {
	n.own()
	n.reshaped, n.inserted = true, 0
	n.touch(n.entries[i].Name, nil)
	n.entries = append(n.entries[:i], n.entries[i+1:]...)
}

// get returns the entry at path (a key, or a directory path), if any.
func (e *treeEditor) get(path string) (TreeEntry, bool, error) {
	n := e.root
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		if k, ok := n.kids.get(seg); ok && i < len(segs)-1 {
			n = k
			continue
		}
		j := n.find(seg)
		if j < 0 {
			return TreeEntry{}, false, nil
		}
		ent := n.entries[j]
		if i == len(segs)-1 {
			if k, ok := n.kids.get(seg); ok {
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
		if k, ok := n.kids.get(seg); ok {
			n = k
			continue
		}
		j := n.findDir(seg)
		var kid *editNode
		switch {
		case j < 0:
			if !create {
				return nil, "", nil
			}
			kid = &editNode{pool: e.pool}
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
			if kid, err = loadNode(e.read, n.entries[j].Hash, e.pool); err != nil {
				return nil, "", err
			}
		}
		n.kids.set(seg, kid)
		n.touch(seg, kid)
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
	if k, ok := n.kids.get(name); ok && len(k.entries) > 0 {
		return false, keyIsDir(key)
	}
	if i := n.find(name); i >= 0 {
		cur := n.entries[i]
		if cur.IsDir() {
			if _, editing := n.kids.get(name); !editing {
				return false, keyIsDir(key)
			}
		}
		if mode == 0 {
			mode = cur.Mode
			if cur.IsDir() || cur.Mode == ModeSubmodule {
				mode = ModeFile // a value replaces it
			}
		}
		if cur.Hash == h && cur.Mode == mode {
			return false, nil
		}
		n.kids.del(name)
		if cur.IsDir() {
			// A directory's place in Git's order is not a value's. A
			// value is replaced where it is (see set).
			n.remove(i)
		}
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

// delete removes key (a value, not a directory nor a submodule, which is
// not a key). It reports whether it was there.
func (e *treeEditor) delete(key string) (bool, error) {
	n, name, err := e.dirFor(key, false)
	if err != nil || n == nil {
		return false, err
	}
	i := n.find(name)
	if i < 0 || n.entries[i].IsDir() || n.entries[i].Mode == ModeSubmodule {
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
	if k, ok := n.kids.get(name); ok && len(k.entries) == 0 {
		return false, nil
	}
	n.kids.del(name)
	n.remove(i)
	n.dirty = true
	return true, nil
}

// setDir points the directory dir at the tree h (zero removes it). Used to
// restore a subtree as it was at another revision.
func (e *treeEditor) setDir(dir string, h Hash) error {
	if dir == "" {
		n, err := loadNode(e.read, h, e.pool)
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
	n.kids.del(name)
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
	for _, ref := range n.kids.refs {
		name, k := ref.name, ref.node
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
			n.patched = append(n.patched, i)
			n.dirty = true
		}
	}
	n.kids.reset()
	if len(n.entries) == 0 && !isRoot {
		n.orig = ZeroHash
		return ZeroHash, true
	}
	if !n.dirty && !n.orig.IsZero() {
		return n.orig, false
	}
	// The new tree takes the entries; n copies them again if it is
	// changed after this.
	t := &Tree{Entries: n.entries, owned: !n.shared}
	prev, from, to := n.raw, 0, -1
	if n.inserted > 0 && n.raw != nil {
		// The length changed: neither the hash's states nor a span
		// against the version before apply.
		t.raw, prev = n.splice(), nil
	} else if n.raw != nil && !n.reshaped && len(n.patched) > 0 {
		t.raw, from, to = n.spliceIDs(slices.Clone(n.raw))
	} else {
		t.raw, prev = t.Encode(), nil
	}
	var h Hash
	if prev == nil && n.mid == nil {
		// States are first taken when an id is patched: a directory
		// that is reshaped every time (a key added per commit) would
		// never use them.
		h = HashObject(TreeObject, t.raw)
	} else {
		h, n.mid = hashTree(t.raw, prev, from, n.mid)
	}
	t.mid = n.mid
	n.raw, n.patched, n.reshaped, n.inserted = t.raw, n.patched[:0], false, 0
	n.shared = true
	// DeltaBase is the version it replaces: a pack can store the change
	// alone.
	o := &Object{Type: TreeObject, Hash: h, Data: t.raw, DeltaBase: n.orig}
	if to >= 0 && !n.orig.IsZero() {
		// n.raw, which the splice copied, is n.orig's encoding.
		o.span, o.spanSet = [2]int{from, to}, true
	}
	emit(o, t)
	n.orig, n.dirty = o.Hash, false
	return o.Hash, false
}

// splice returns the encoding of n.entries made from n.raw when one entry
// was added since (n.inserted): raw with that entry's encoding put in at
// its place, then the patched ids replaced.
func (n *editNode) splice() []byte {
	i := n.inserted - 1
	off := 0
	for j := range i {
		off += treeEntryLen(&n.entries[j])
	}
	e := &n.entries[i]
	data := make([]byte, 0, len(n.raw)+treeEntryLen(e))
	data = append(data, n.raw[:off]...)
	data = appendTreeEntry(data, e)
	data = append(data, n.raw[off:]...)
	data, _, _ = n.spliceIDs(data)
	return data
}

// spliceIDs replaces in data, a copy of n.raw (or splice's), the ids of the
// patched entries: the result is the encoding of n.entries, as long as no
// entry was added, removed or changed mode since data's entries (their
// names and modes, and so their offsets, are the same). from is the offset
// of the first id replaced and to the end of the last: data is the same
// as before outside data[from:to].
func (n *editNode) spliceIDs(data []byte) (_ []byte, from, to int) {
	slices.Sort(n.patched)
	off, j := 0, 0
	from = -1
	for _, i := range n.patched {
		for ; j < i; j++ {
			off += treeEntryLen(&n.entries[j])
		}
		e := &n.entries[i]
		at := off + len(modeText(e.Mode)) + 1 + len(e.Name) + 1
		if from < 0 {
			from = at
		}
		copy(data[at:], e.Hash[:])
		to = at + len(e.Hash)
	}
	return data, max(from, 0), max(to, 0)
}

// changes calls fn for every key that differs between the tree the editor
// started from and the one write last returned: exactly what diffTrees over
// the two trees gives, in the same order. It looks only at the names the
// edit touched, so what it costs grows with the edit rather than with the
// width of the directories the edit went through. fn returning false stops
// it.
func (e *treeEditor) changes(fn func(Change) bool) error {
	if e.root.base != e.base {
		// setDir("") replaced the root: compare the whole trees.
		return diffTrees(e.read, e.base, e.root.orig, "", fn)
	}
	_, err := e.root.changes(e.read, "", fn)
	return err
}

// nameChange is what an edit did to one name of a directory: to the value
// of that name (dir not set), or to the keys under it (dir set). from and
// to are the entries before and after (nil when absent).
type nameChange struct {
	name     string
	dir      bool
	from, to *TreeEntry
	// kid is the directory's edit, when it covers the whole change.
	kid *editNode
	// afterValue is set for a directory that replaced a value of the same
	// name, or was replaced by one, when diffDir meets the two entries at
	// once: it gives the directory's keys right after the value, not where
	// the directory sorts (see compareNameChanges).
	afterValue bool
}

// changes calls fn for the changes below n, a directory at dir (ending in
// '/', or "" for the root), from n's base tree to its entries as written.
func (n *editNode) changes(read treeReader, dir string, fn func(Change) bool) (bool, error) {
	if len(n.touched.refs) == 0 {
		return true, nil
	}
	base, err := readOrEmpty(read, n.base)
	if err != nil {
		return false, err
	}
	cs := make([]nameChange, 0, len(n.touched.refs))
	for _, ref := range n.touched.refs {
		name, kid := ref.name, ref.node
		var from, to *TreeEntry
		i, j := base.Find(name), n.find(name)
		if i >= 0 {
			from = &base.Entries[i]
		}
		if j >= 0 {
			to = &n.entries[j]
		}
		fromDir, toDir := from != nil && from.IsDir(), to != nil && to.IsDir()
		switch {
		case from != nil && to != nil && !fromDir && !toDir:
			if *from != *to {
				cs = append(cs, nameChange{name: name, from: from, to: to})
			}
		case fromDir && toDir:
			if from.Hash != to.Hash {
				c := nameChange{name: name, dir: true, from: from, to: to}
				// The kid's edit covers the change if it started from
				// the old subtree and wrote the new one: not when setDir
				// replaced the subtree before the kid was loaded, nor
				// when the kid was loaded after a write, from the tree
				// that write made.
				if kid != nil && kid.base == from.Hash && kid.orig == to.Hash {
					c.kid = kid
				}
				cs = append(cs, c)
			}
		default:
			// Absent on one side, or a value on one side and a
			// directory on the other.
			val, sub := nameChange{name: name}, nameChange{name: name, dir: true}
			if fromDir {
				sub.from = from
			} else {
				val.from = from
			}
			if toDir {
				sub.to = to
			} else {
				val.to = to
			}
			if val.from != nil || val.to != nil {
				cs = append(cs, val)
			}
			if sub.from != nil || sub.to != nil {
				if val.to != nil {
					sub.afterValue = !nameBetween(base.Entries, i)
				} else if val.from != nil {
					sub.afterValue = !nameBetween(n.entries, j)
				}
				cs = append(cs, sub)
			}
		}
	}
	slices.SortFunc(cs, compareNameChanges)
	for _, c := range cs {
		key := dir + c.name
		ok := true
		var err error
		switch {
		case c.dir && c.kid != nil:
			ok, err = c.kid.changes(read, key+"/", fn)
		case c.dir:
			ok, err = diffDir(read, entryHash(c.from), entryHash(c.to), key+"/", "", fn)
		case c.from == nil:
			ok = fn(Change{Key: key, Op: Added, To: *c.to})
		case c.to == nil:
			ok = fn(Change{Key: key, Op: Deleted, From: *c.from})
		default:
			ok = fn(Change{Key: key, Op: Modified, From: *c.from, To: *c.to})
		}
		if err != nil || !ok {
			return ok, err
		}
	}
	return true, nil
}

// nameBetween reports whether the entry before es[i], a directory, sorts
// after a value of the same name: whether a tree that holds es[i] has a
// name between the value "x" and the directory "x" (compared as "x/"), such
// as "x-y" or "x.y". diffDir, walking this tree and one where "x" is a
// value, meets the two "x" at once only when it has none.
func nameBetween(es []TreeEntry, i int) bool {
	return i > 0 && treeNameLess(es[i].Name, false, es[i-1].Name, es[i-1].IsDir())
}

// compareNameChanges orders the changes of one directory as diffDir gives
// them: by name in Git order, where a directory's keys sort at name+"/",
// unless they come right after the value they meet (afterValue).
func compareNameChanges(a, b nameChange) int {
	aDir, bDir := a.dir && !a.afterValue, b.dir && !b.afterValue
	switch {
	case treeNameLess(a.name, aDir, b.name, bDir):
		return -1
	case treeNameLess(b.name, bDir, a.name, aDir):
		return 1
	case a.dir == b.dir:
		return 0
	case !a.dir:
		return -1 // a value, before the directory's keys that follow it
	}
	return 1
}

// entryHash returns e's hash, or the zero hash when e is nil.
func entryHash(e *TreeEntry) Hash {
	if e == nil {
		return ZeroHash
	}
	return e.Hash
}
