package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gitstate/gitstate"
)

// memTrees is a tree store in memory, for the editor's tests.
type memTrees map[Hash]*Tree

func (m memTrees) read(h Hash) (*Tree, error) {
	if t, ok := m[h]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("tree %s: %w", h, ErrObjectNotFound)
}

// emit keeps t, after checking that the editor's bytes for it (patched
// from the previous version's where it could) are its encoding.
func (m memTrees) emit(o *Object, t *Tree) {
	if t != nil {
		if want := t.Encode(); !bytes.Equal(o.Data, want) || o.Hash != HashObject(TreeObject, want) || !bytes.Equal(t.raw, want) {
			panic(fmt.Sprintf("tree %s written as %q, its entries encode as %q", o.Hash, o.Data, want))
		}
		if o.spanSet {
			// Outside its span, the object is its delta base byte for byte.
			base, ok := m[o.DeltaBase]
			from, to := o.span[0], o.span[1]
			if !ok || len(base.raw) != len(o.Data) || from < 0 || from > to || to > len(o.Data) ||
				!bytes.Equal(base.raw[:from], o.Data[:from]) || !bytes.Equal(base.raw[to:], o.Data[to:]) {
				panic(fmt.Sprintf("tree %s: span [%d,%d) does not hold all it changed from %s", o.Hash, from, to, o.DeltaBase))
			}
		}
		m[o.Hash] = t
	}
}

// testBlobs are the values the editor tests put.
var testBlobs = [4]Hash{
	HashObject(BlobObject, []byte("zero")),
	HashObject(BlobObject, []byte("one")),
	HashObject(BlobObject, []byte("two")),
	HashObject(BlobObject, []byte("three")),
}

// editNames are the names of keys and directories in the editor tests:
// names whose Git order (a directory compared as name+"/") differs from
// plain string order, as '!' < '-' < '.' < '/' < '0'.
var editNames = []string{"a", "a!", "a-b", "a.b", "a0", "b"}

// editProgram reads a test case from bytes, so that random and fuzzed byte
// strings are test cases: two base trees, then edits of the first. Past
// the end of the bytes it reads zeros.
type editProgram struct {
	p     []byte
	trees memTrees
	trace []string // the edits, for failure messages
}

func (e *editProgram) next() byte {
	if len(e.p) == 0 {
		return 0
	}
	b := e.p[0]
	e.p = e.p[1:]
	return b
}

// path reads a path of one to depth names.
func (e *editProgram) path(depth int) string {
	segs := make([]string, 1+int(e.next())%depth)
	for i := range segs {
		segs[i] = editNames[int(e.next())%len(editNames)]
	}
	return strings.Join(segs, "/")
}

func (e *editProgram) blob() Hash { return testBlobs[int(e.next())%len(testBlobs)] }

// mode reads a mode for put (0 keeps the key's mode).
func (e *editProgram) mode() uint32 {
	return [...]uint32{0, ModeFile, ModeExecutable}[int(e.next())%3]
}

func (e *editProgram) logf(format string, args ...any) {
	e.trace = append(e.trace, fmt.Sprintf(format, args...))
}

// edited reports err unless it is one an edit may well give (a key that
// holds a value where a directory is wanted, or the other way round).
func edited(err error) error {
	var ge *gitstate.Error
	if err == nil || errors.As(err, &ge) && ge.Kind == gitstate.KindConflict {
		return nil
	}
	return err
}

// baseTree builds a tree of up to 7 keys: small trees, so that the names
// around a change are often missing on one side.
func (e *editProgram) baseTree() (Hash, error) {
	ed, err := newTreeEditor(e.trees.read, ZeroHash, nil)
	if err != nil {
		return ZeroHash, err
	}
	for range int(e.next()) % 8 {
		key, h := e.path(3), e.blob()
		mode := ModeFile
		if e.next()%4 == 0 {
			mode = ModeExecutable
		}
		if _, err := ed.put(key, h, mode); edited(err) != nil {
			return ZeroHash, err
		}
	}
	return ed.write(e.trees.emit), nil
}

// dirs returns the trees under root, root included.
func (e *editProgram) dirs(root Hash) []Hash {
	out := []Hash{root}
	t, err := readOrEmpty(e.trees.read, root)
	if err != nil {
		return out
	}
	for _, ent := range t.Entries {
		if ent.IsDir() {
			out = append(out, e.dirs(ent.Hash)...)
		}
	}
	return out
}

// run builds the base trees, then edits the first as the program says. It
// returns the tree it started from and the editor, after a last write.
func (e *editProgram) run() (Hash, *treeEditor, error) {
	base, err := e.baseTree()
	if err != nil {
		return ZeroHash, nil, err
	}
	other, err := e.baseTree()
	if err != nil {
		return ZeroHash, nil, err
	}
	// The trees setDir restores, as OpRestoreDir does from other revisions.
	pool := append([]Hash{ZeroHash, EmptyTreeHash}, e.dirs(base)...)
	pool = append(pool, e.dirs(other)...)
	ed, err := newTreeEditor(e.trees.read, base, nil)
	if err != nil {
		return ZeroHash, nil, err
	}
	for len(e.p) > 0 {
		switch e.next() % 10 {
		case 0, 1, 2:
			key, h, mode := e.path(3), e.blob(), e.mode()
			e.logf("put %s %.7s %o", key, h, mode)
			_, err = ed.put(key, h, mode)
		case 3:
			key := e.path(3)
			e.logf("delete %s", key)
			_, err = ed.delete(key)
		case 4:
			dir := e.path(2)
			e.logf("deleteDir %s", dir)
			_, err = ed.deleteDir(dir)
		case 5:
			from, to := e.path(3), e.path(3)
			e.logf("move %s %s", from, to)
			err = testMove(ed, from, to)
		case 6:
			dir := e.path(2)
			if e.next()%8 == 0 {
				dir = ""
			}
			h := pool[int(e.next())%len(pool)]
			e.logf("setDir %q %.7s", dir, h)
			err = ed.setDir(dir, h)
		case 7:
			from, to := base, other
			if e.next()%2 == 0 {
				from, to = other, base
			}
			e.logf("merge %.7s..%.7s", from, to)
			err = testMerge(ed, e.trees.read, from, to)
		case 8:
			// A value becomes a directory, or a directory a value: the
			// case where diffTrees's order is not key order.
			key, name := e.path(2), editNames[int(e.next())%len(editNames)]
			e.logf("flip %s %s", key, name)
			err = testFlip(ed, key, name)
		case 9:
			e.logf("write")
			ed.write(e.trees.emit)
		}
		if err = edited(err); err != nil {
			return ZeroHash, nil, err
		}
	}
	ed.write(e.trees.emit)
	return base, ed, nil
}

// testMove moves a value as applyOp does for OpMove.
func testMove(ed *treeEditor, from, to string) error {
	ent, ok, err := ed.get(from)
	if err != nil || !ok || ent.IsDir() {
		return err
	}
	if _, exists, err := ed.get(to); err != nil || exists {
		return err
	}
	if _, err := ed.delete(from); err != nil {
		return err
	}
	_, err = ed.put(to, ent.Hash, ent.Mode)
	return err
}

// testFlip replaces the value at key by a directory holding name, or the
// directory at key by a value.
func testFlip(ed *treeEditor, key, name string) error {
	ent, ok, err := ed.get(key)
	switch {
	case err != nil || !ok:
		return err
	case ent.IsDir():
		if _, err := ed.deleteDir(key); err != nil {
			return err
		}
		_, err = ed.put(key, testBlobs[2], 0)
	default:
		if _, err := ed.delete(key); err != nil {
			return err
		}
		_, err = ed.put(key+"/"+name, testBlobs[2], 0)
	}
	return err
}

// testMerge applies the changes from one tree to another as applyMerge
// does, without its conflict checks.
func testMerge(ed *treeEditor, read treeReader, from, to Hash) error {
	var changes []Change
	if err := diffTrees(read, from, to, "", func(c Change) bool {
		changes = append(changes, c)
		return true
	}); err != nil {
		return err
	}
	for _, c := range changes {
		var err error
		if c.Op == Deleted {
			_, err = ed.delete(c.Key)
		} else {
			_, err = ed.put(c.Key, c.To.Hash, c.To.Mode)
		}
		if err = edited(err); err != nil {
			return err
		}
	}
	return nil
}

// checkEditChanges runs the program p and checks that the editor's changes
// are exactly what diffTrees gives, also when stopped early.
func checkEditChanges(t *testing.T, p []byte) {
	t.Helper()
	e := &editProgram{p: p, trees: memTrees{}}
	base, ed, err := e.run()
	if err != nil {
		t.Fatalf("program %x: %v\n%s", p, err, strings.Join(e.trace, "\n"))
	}
	want, err := collectChanges(func(fn func(Change) bool) error {
		return diffTrees(e.trees.read, base, ed.root.orig, "", fn)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := collectChanges(ed.changes)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("program %x:\n%s\nchanges from the edit:\n%s\ndiffTrees:\n%s", p,
			strings.Join(e.trace, "\n"), formatChanges(got), formatChanges(want))
	}
	if len(want) > 1 {
		stop := len(want) / 2
		var n int
		var got []Change
		if err := ed.changes(func(c Change) bool {
			got = append(got, c)
			n++
			return n < stop
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want[:stop]) {
			t.Fatalf("program %x: stopped after %d changes, got %d", p, stop, len(got))
		}
	}
}

func collectChanges(walk func(func(Change) bool) error) ([]Change, error) {
	var out []Change
	err := walk(func(c Change) bool {
		out = append(out, c)
		return true
	})
	return out, err
}

func formatChanges(cs []Change) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "  %s %s %o %.7s -> %o %.7s\n", c.Op, c.Key, c.From.Mode, c.From.Hash, c.To.Mode, c.To.Hash)
	}
	return b.String()
}

// TestEditChangesMatchDiffTrees checks the changes the editor derives from
// an edit against diffTrees over the trees before and after, for random
// edits of random trees.
func TestEditChangesMatchDiffTrees(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for range n {
		p := make([]byte, 8+rng.IntN(160))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		checkEditChanges(t, p)
	}
}

// FuzzEditChanges is TestEditChangesMatchDiffTrees driven by the fuzzer.
func FuzzEditChanges(f *testing.F) {
	f.Add([]byte{})
	// A value becoming a directory and back, next to names that sort
	// between the two in Git order.
	f.Add([]byte{6, 1, 0, 0, 0, 1, 2, 0, 0, 0, 1, 3, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 2, 0, 0, 0, 4, 0, 0})
	rng := rand.New(rand.NewPCG(8, 8))
	for range 20 {
		p := make([]byte, 16+rng.IntN(100))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		f.Add(p)
	}
	f.Fuzz(checkEditChanges)
}

// TestEditChangesOrder pins down diffTrees's order, which the editor's
// changes follow, where it is not key order: diffDir meets a value and a
// directory of the same name at once when the directory's tree has no
// name between them, and then gives the directory's keys right after the
// value.
func TestEditChangesOrder(t *testing.T) {
	type edit func(*treeEditor) error
	put := func(key string) edit {
		return func(ed *treeEditor) error { _, err := ed.put(key, testBlobs[1], 0); return err }
	}
	putMode := func(key string, mode uint32) edit {
		return func(ed *treeEditor) error { _, err := ed.put(key, testBlobs[0], mode); return err }
	}
	del := func(key string) edit {
		return func(ed *treeEditor) error { _, err := ed.delete(key); return err }
	}
	delDir := func(dir string) edit {
		return func(ed *treeEditor) error { _, err := ed.deleteDir(dir); return err }
	}
	for _, tc := range []struct {
		name  string
		base  []string // keys, all holding testBlobs[0] as ModeFile
		edits []edit
		want  []string // "op key"
	}{
		{
			name:  "value to directory, names between gone",
			base:  []string{"a", "a-b"},
			edits: []edit{del("a"), del("a-b"), put("a/c")},
			want:  []string{"deleted a", "added a/c", "deleted a-b"},
		},
		{
			name:  "value to directory, names between kept",
			base:  []string{"a", "a-b", "a0"},
			edits: []edit{del("a"), put("a/c")},
			want:  []string{"deleted a", "added a/c"},
		},
		{
			name:  "value to directory, names between added",
			base:  []string{"a"},
			edits: []edit{del("a"), put("a/c"), put("a.b")},
			want:  []string{"deleted a", "added a.b", "added a/c"},
		},
		{
			name:  "directory to value, names between added",
			base:  []string{"a/c", "a/d/e"},
			edits: []edit{delDir("a"), put("a"), put("a-b"), put("a0")},
			want:  []string{"added a", "deleted a/c", "deleted a/d/e", "added a-b", "added a0"},
		},
		{
			name:  "directory to value, names between kept",
			base:  []string{"a/c", "a!"},
			edits: []edit{delDir("a"), put("a")},
			want:  []string{"added a", "deleted a/c"},
		},
		{
			name:  "put then delete, and a put of the same value",
			base:  []string{"b/c"},
			edits: []edit{put("a/x"), del("a/x"), putMode("b/c", ModeFile)},
			want:  nil,
		},
		{
			name:  "mode only",
			base:  []string{"a-b/c", "a/c"},
			edits: []edit{putMode("a/c", ModeExecutable), putMode("a-b/c", ModeExecutable)},
			want:  []string{"modified a-b/c", "modified a/c"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trees := memTrees{}
			ed, err := newTreeEditor(trees.read, ZeroHash, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range tc.base {
				if _, err := ed.put(k, testBlobs[0], ModeFile); err != nil {
					t.Fatal(err)
				}
			}
			base := ed.write(trees.emit)
			if ed, err = newTreeEditor(trees.read, base, nil); err != nil {
				t.Fatal(err)
			}
			for _, e := range tc.edits {
				if err := e(ed); err != nil {
					t.Fatal(err)
				}
			}
			after := ed.write(trees.emit)
			want, err := collectChanges(func(fn func(Change) bool) error {
				return diffTrees(trees.read, base, after, "", fn)
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := collectChanges(ed.changes)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("changes from the edit:\n%sdiffTrees:\n%s", formatChanges(got), formatChanges(want))
			}
			var ops []string
			for _, c := range want {
				ops = append(ops, c.Op.String()+" "+c.Key)
			}
			if !slices.Equal(ops, tc.want) {
				t.Errorf("diffTrees gives %q, want %q", ops, tc.want)
			}
		})
	}
}

// TestNodeRefs drives nodeRefs and a map with the same random sets and
// deletes, across the size where nodeRefs starts indexing, and checks that
// they agree after every step.
func TestNodeRefs(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	nodes := make([]*editNode, 4)
	for i := range nodes {
		nodes[i] = &editNode{}
	}
	for round := range 200 {
		var m nodeRefs
		want := map[string]*editNode{}
		names := 2 + rng.IntN(3*nodeRefsIndexed)
		for step := range 100 {
			name := strconv.Itoa(rng.IntN(names))
			if rng.IntN(3) == 0 {
				m.del(name)
				delete(want, name)
			} else {
				n := nodes[rng.IntN(len(nodes))]
				m.set(name, n)
				want[name] = n
			}
			if len(m.refs) != len(want) {
				t.Fatalf("round %d step %d: %d refs, want %d", round, step, len(m.refs), len(want))
			}
			for _, r := range m.refs {
				if want[r.name] != r.node {
					t.Fatalf("round %d step %d: %s lists the wrong node", round, step, r.name)
				}
			}
			for i := range names {
				name := strconv.Itoa(i)
				got, ok := m.get(name)
				w, wok := want[name]
				if ok != wok || got != w {
					t.Fatalf("round %d step %d: get %s = %p, %v; want %p, %v", round, step, name, got, ok, w, wok)
				}
			}
		}
		m.reset()
		if _, ok := m.get("0"); ok || len(m.refs) != 0 {
			t.Fatalf("round %d: not empty after reset", round)
		}
	}
}

// BenchmarkEditBusyDir is the committer's tree work for one PUT of the
// side-by-side benchmark's PUT ×64 workload, without I/O: a key
// apps/putNN/envE/resRRR.yaml is put into a tree like the benchmark's
// (apps/ holds 164 apps and 64 writers' directories), and the trees on its
// path are written: apps/ changes one id, envE/ gains a key.
func BenchmarkEditBusyDir(b *testing.B) {
	trees := memTrees{}
	keep := func(o *Object, t *Tree) { trees[o.Hash] = t }
	ed, err := newTreeEditor(trees.read, EmptyTreeHash, nil)
	if err != nil {
		b.Fatal(err)
	}
	for app := range 164 {
		for k := range 10 {
			key := fmt.Sprintf("apps/app%03d/key%d.yaml", app, k)
			if _, err := ed.put(key, HashObject(BlobObject, []byte(key)), 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	for w := range 64 {
		for e := range 10 {
			// Values differ, so that no two directories are the same tree.
			key := fmt.Sprintf("apps/put%02d/env%d/res000.yaml", w, e)
			if _, err := ed.put(key, HashObject(BlobObject, []byte(key)), 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	root := ed.write(keep)
	// As the committer does (recycleReplaced), each version replaced is
	// dropped, and its entries recycled.
	var pool entryPool
	keep = func(o *Object, t *Tree) {
		trees[o.Hash] = t
		if old, ok := trees[o.DeltaBase]; ok && old.owned {
			pool.recycle(old.Entries)
			delete(trees, o.DeltaBase)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		w := i % 64
		key := fmt.Sprintf("apps/put%02d/env%d/res%03d.yaml", w, i/64/100%10, i/64%100)
		ed, err := newTreeEditor(trees.read, root, &pool)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ed.put(key, HashObject(BlobObject, []byte(strconv.Itoa(i))), 0); err != nil {
			b.Fatal(err)
		}
		root = ed.write(keep)
	}
}

// TestEditWideDirHashes edits a directory long enough for its SHA-1 states
// to be kept (see midstates), commit after commit, sometimes from an older
// root (a failed request goes back to it), and checks every tree written
// against its encoding's hash (memTrees.emit).
func TestEditWideDirHashes(t *testing.T) {
	trees := memTrees{}
	ed, err := newTreeEditor(trees.read, EmptyTreeHash, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if _, err := ed.put(fmt.Sprintf("wide/d%03d/k", i), testBlobs[i%4], 0); err != nil {
			t.Fatal(err)
		}
	}
	roots := []Hash{ed.write(trees.emit)}
	spans := 0
	emit := func(o *Object, t *Tree) {
		if o.spanSet {
			spans++
		}
		trees.emit(o, t)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for step := range 500 {
		root := roots[len(roots)-1]
		if step%9 == 8 {
			root = roots[rng.IntN(len(roots))]
		}
		ed, err := newTreeEditor(trees.read, root, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Mostly an id below the wide directory changes (its encoding is
		// patched); at times a directory is added to it.
		key := fmt.Sprintf("wide/d%03d/k", rng.IntN(300))
		if step%13 == 12 {
			key = fmt.Sprintf("wide/n%d/k", step)
		}
		if _, err := ed.put(key, HashObject(BlobObject, []byte(strconv.Itoa(step))), 0); err != nil {
			t.Fatal(err)
		}
		roots = append(roots, ed.write(emit))
	}
	if spans == 0 {
		t.Fatal("no tree was written with a span: the patched path was not taken")
	}
}

// TestEditInsertSplice checks which edits of a directory write it by
// putting one new entry's encoding into its previous one (editNode.inserted)
// rather than encoding it again; emit checks every tree's bytes either way.

// BenchmarkEditAddKey adds a key to a directory of 100 keys, one level
// below the root (each iteration from the same root).
func BenchmarkEditAddKey(b *testing.B) {
	trees := memTrees{}
	keep := func(o *Object, t *Tree) { trees[o.Hash] = t }
	ed, err := newTreeEditor(trees.read, EmptyTreeHash, nil)
	if err != nil {
		b.Fatal(err)
	}
	for k := range 100 {
		key := fmt.Sprintf("apps/env0/res%03d.yaml", 2*k)
		if _, err := ed.put(key, HashObject(BlobObject, []byte(key)), 0); err != nil {
			b.Fatal(err)
		}
	}
	root := ed.write(keep)
	discard := func(*Object, *Tree) {}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		ed, err := newTreeEditor(trees.read, root, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ed.put(fmt.Sprintf("apps/env0/res%03d.yaml", 2*(i%100)+1), testBlobs[i%4], 0); err != nil {
			b.Fatal(err)
		}
		ed.write(discard)
	}
}

// TestEditInsertSplice checks which edits of a directory write it by
// putting one new entry's encoding into its previous one (editNode.inserted)
// rather than encoding it again; emit checks every tree's bytes either way.
func TestEditInsertSplice(t *testing.T) {
	trees := memTrees{}
	ed, err := newTreeEditor(trees.read, EmptyTreeHash, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i += 2 {
		if _, err := ed.put(fmt.Sprintf("d/k%03d", i), testBlobs[i%4], 0); err != nil {
			t.Fatal(err)
		}
	}
	root := ed.write(trees.emit)
	for _, tc := range []struct {
		name    string
		puts    []string
		deletes []string
		spliced bool
	}{
		{name: "first", puts: []string{"d/a"}, spliced: true},
		{name: "between", puts: []string{"d/k001"}, spliced: true},
		{name: "last", puts: []string{"d/z"}, spliced: true},
		{name: "a new directory, its id patched in at write", puts: []string{"d/k001x/v"}, spliced: true},
		{name: "an insert, then an update", puts: []string{"d/k003", "d/k000", "d/k048"}, spliced: true},
		{name: "an update, then an insert", puts: []string{"d/k000", "d/k003"}},
		{name: "two inserts", puts: []string{"d/k001", "d/k003"}},
		{name: "a delete, then an insert", deletes: []string{"d/k000"}, puts: []string{"d/k001"}},
		{name: "an update only", puts: []string{"d/k002"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ed, err := newTreeEditor(trees.read, root, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range tc.deletes {
				if _, err := ed.delete(k); err != nil {
					t.Fatal(err)
				}
			}
			for i, k := range tc.puts {
				if _, err := ed.put(k, testBlobs[(i+1)%4], 0); err != nil {
					t.Fatal(err)
				}
			}
			d, ok := ed.root.kids.get("d")
			if !ok {
				t.Fatal("no edit of d")
			}
			if got := d.inserted > 0; got != tc.spliced {
				t.Errorf("spliced: %v, want %v", got, tc.spliced)
			}
			h := ed.write(trees.emit) // emit panics on a wrong encoding
			// The same tree built from nothing.
			want, err := newTreeEditor(trees.read, EmptyTreeHash, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 50; i += 2 {
				if k := fmt.Sprintf("d/k%03d", i); !slices.Contains(tc.deletes, k) {
					want.put(k, testBlobs[i%4], 0)
				}
			}
			for i, k := range tc.puts {
				want.put(k, testBlobs[(i+1)%4], 0)
			}
			if wh := want.write(trees.emit); wh != h {
				t.Fatalf("tree %s, built from nothing %s", h, wh)
			}
		})
	}
}
