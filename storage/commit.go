package storage

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/gitstate/gitstate"
)

// groupState is the committer's working state while it applies a group of
// write requests: every ref the group touches, and the objects it creates.
// Nothing in it is visible to readers until the group is durable.
type groupState struct {
	r     *Repo
	now   time.Time
	refs  map[string]refState
	orig  map[string]Hash
	objs  []*Object
	seen  map[Hash]bool
	trees map[Hash]*Tree
	// prevTrees are the trees of the group sealed before, while it waits
	// for its sync (they enter the tree cache once it is durable).
	prevTrees map[Hash]*Tree
	blobs     map[Hash][]byte
	// superseded are the trees of main from before the group that its
	// commits replaced. finishGroup drops them from the tree cache once
	// the group is published: they are then read only for an old
	// revision. Under a stream of writes they were most of the cache, and
	// pushed out the trees of directories that are read. (A branch's
	// first commit replaces trees that are main's: those stay.)
	superseded []Hash
	// main's working revision and the commits the group adds to it.
	mainRev     int64
	mainCommits []*mainCommit
	// seq numbers the group (from 1): the trees its edits read are marked
	// with it (Tree.editBy), and finishGroup recycles the entries of the
	// superseded ones no one else was handed.
	seq int64
}

type refState struct {
	commit Hash
	tree   Hash
}

// refsCheckpoint holds a group's refs (refs and orig) as they were before
// a request, so that a failing request can be undone. Its slices are
// reused from request to request: a group holds a ref or two, and cloning
// its maps for every request was one of a write's larger allocations.
type refsCheckpoint struct {
	refs []refPair
	orig []origPair
}

type refPair struct {
	name string
	st   refState
}

type origPair struct {
	name string
	h    Hash
}

func (c *refsCheckpoint) save(g *groupState) {
	c.refs, c.orig = c.refs[:0], c.orig[:0]
	for name, st := range g.refs {
		c.refs = append(c.refs, refPair{name, st})
	}
	for name, h := range g.orig {
		c.orig = append(c.orig, origPair{name, h})
	}
}

func (c *refsCheckpoint) restore(g *groupState) {
	clear(g.refs)
	for _, p := range c.refs {
		g.refs[p.name] = p.st
	}
	clear(g.orig)
	for _, p := range c.orig {
		g.orig[p.name] = p.h
	}
}

type mainCommit struct {
	rev      int64
	hash     Hash
	commit   *Commit
	changes  []Change
	trailers []Trailer
}

func (g *groupState) readTree(h Hash) (*Tree, error) {
	if t, ok := g.trees[h]; ok && t.editBy(g.seq) {
		return t, nil
	}
	if t, ok := g.prevTrees[h]; ok && t.editBy(g.seq) {
		return t, nil
	}
	return g.r.editTree(h, g.seq)
}

// emit records a new object, unless it is already stored.
func (g *groupState) emit(o *Object, t *Tree) {
	if g.seen[o.Hash] {
		return
	}
	if t != nil {
		if _, ok := g.r.trees.Peek(o.Hash); ok {
			return // trees enter the cache only once they are stored
		}
	}
	if g.r.be.HasObject(o.Hash) {
		if t != nil {
			g.r.trees.Add(o.Hash, t)
		}
		return
	}
	g.add(o, t)
}

// emitMade records an object the group has just made: a commit, or a tree
// an edit has changed. It does not ask the object store whether it is
// already there: it almost never is (a tree is stored again only when an
// edit brings a directory back to an earlier content), the question costs
// a lookup in every pack, and an object stored twice is valid Git and is
// stored once again when packs are merged. Nor does it look in the tree
// cache (a lookup in a map of 65,536 trees, 1% of the CPU under load, for
// the same rare case).
func (g *groupState) emitMade(o *Object, t *Tree) {
	if g.seen[o.Hash] {
		return
	}
	g.add(o, t)
}

func (g *groupState) add(o *Object, t *Tree) {
	g.seen[o.Hash] = true
	g.objs = append(g.objs, o)
	if t != nil {
		g.trees[o.Hash] = t
	}
	if o.Type == BlobObject {
		g.blobs[o.Hash] = o.Data
	}
}

func (g *groupState) ref(name string) (refState, error) {
	if st, ok := g.refs[name]; ok {
		return st, nil
	}
	var h Hash
	if ac, ok := g.r.be.(asyncCommitter); ok {
		h = ac.Tip(name) // groups before this one may not be durable yet
	} else {
		h = g.r.be.Ref(name)
	}
	tree, err := g.r.commitTree(h)
	if err != nil {
		return refState{}, err
	}
	st := refState{commit: h, tree: tree}
	g.refs[name] = st
	g.orig[name] = h
	return st, nil
}

// sealedGroup is a group the committer has applied and written to the
// journal: the publisher waits for its sync, then publishes it and answers
// its requests.
type sealedGroup struct {
	g       *groupState
	ok      []*writeReq
	moved   bool // refs moved
	noted   []*Result
	wait    func() error // nil when there was nothing to write
	start   time.Time
	settled chan struct{} // closed once published (or failed) and answered
}

// done reports whether s is settled.
func (s *sealedGroup) done() bool {
	select {
	case <-s.settled:
		return true
	default:
		return false
	}
}

// needsBarrier reports whether a group must wait for every group before it
// to be published before it is applied: batches that read more than the
// working trees and refs (a base revision, a merge, a move of a ref to
// another commit) read the published state.
func needsBarrier(reqs []*writeReq) bool {
	for _, req := range reqs {
		for _, b := range req.batches {
			if b.CheckBase || b.Merge != nil || b.Advance != nil || b.Onto != nil || b.ResetTo != nil {
				return true
			}
		}
	}
	return false
}

// prepareGroup applies a group of requests on top of last (the group sealed
// before it, published or not), each request atomically, and writes the
// successful ones to the journal with one record. It answers the requests
// that failed, and returns the group for finishGroup, or nil when nothing
// is left to answer.
func (r *Repo) prepareGroup(reqs []*writeReq, last *sealedGroup) *sealedGroup {
	start := time.Now()
	// Where main stands: after last while it is unpublished, else at head.
	// The order matters: head read before last was found published may
	// be from before last's publication, and the group would number its
	// commits from there again.
	var rev int64
	var prevTrees map[Hash]*Tree
	if last != nil && !last.done() {
		rev, prevTrees = last.g.mainRev, last.g.trees
	} else {
		rev = r.Head().Revision
	}
	// A one-key write usually makes a blob, a commit and a tree or four:
	// sized for that, the maps do not grow while the group is applied.
	n := len(reqs)
	g := &groupState{
		r:         r,
		now:       time.Now(),
		refs:      map[string]refState{},
		orig:      map[string]Hash{},
		seen:      make(map[Hash]bool, 6*n),
		trees:     make(map[Hash]*Tree, 4*n),
		prevTrees: prevTrees,
		blobs:     make(map[Hash][]byte, n),
		mainRev:   rev,
	}
	r.groupSeq++
	g.seq = r.groupSeq
	var ok []*writeReq
	var cp refsCheckpoint
	for _, req := range reqs {
		// Take a checkpoint, so that a failing request leaves no trace.
		cp.save(g)
		nobj, nmain, nsup, rev := len(g.objs), len(g.mainCommits), len(g.superseded), g.mainRev
		res, err := r.applyRequest(g, req.batches)
		if err != nil {
			for _, o := range g.objs[nobj:] {
				delete(g.seen, o.Hash)
				delete(g.trees, o.Hash)
				delete(g.blobs, o.Hash)
			}
			g.objs, g.mainCommits, g.superseded, g.mainRev = g.objs[:nobj], g.mainCommits[:nmain], g.superseded[:nsup], rev
			cp.restore(g)
			req.err = err
			close(req.done)
			continue
		}
		req.res = res
		ok = append(ok, req)
	}
	if len(ok) == 0 {
		return nil
	}
	var updates []RefUpdate
	for name, st := range g.refs {
		if st.commit != g.orig[name] {
			updates = append(updates, RefUpdate{Name: name, Old: g.orig[name], New: st.commit})
		}
	}
	slices.SortFunc(updates, func(a, b RefUpdate) int {
		if a.Name < b.Name {
			return -1
		} else if a.Name > b.Name {
			return 1
		}
		return 0
	})
	var notes [][]byte
	var noted []*Result
	if r.opts.FS.Notes != nil {
		for _, req := range ok {
			for i, b := range req.batches {
				if b.Note == nil {
					continue
				}
				if n := b.Note(req.res[i]); n != nil {
					notes = append(notes, n)
					noted = append(noted, req.res[i])
				}
			}
		}
	}
	s := &sealedGroup{g: g, ok: ok, moved: len(updates) > 0, noted: noted, start: start, settled: make(chan struct{})}
	if len(updates) > 0 || len(g.objs) > 0 || len(notes) > 0 {
		var err error
		if ac, isAsync := r.be.(asyncCommitter); isAsync {
			s.wait, err = ac.CommitAsync(g.objs, updates, notes)
		} else if err = r.be.Commit(g.objs, updates, notes); err == nil {
			s.wait = func() error { return nil }
		}
		if err != nil {
			r.failGroup(s, err)
			return nil
		}
	}
	r.recycleReplaced(g)
	return s
}

// recycleReplaced gives the entries of the trees that a later commit of
// the group replaced (a directory rewritten again) to the committer's
// entry pool, and drops them from the group's trees. Nothing reads them
// again: the group's refs name only the last versions, no one outside
// the committer has seen the group, and the next group and the publisher
// read only what is left in g.trees. A lookup of one by id would find it
// in the backend and decode it anew.
func (r *Repo) recycleReplaced(g *groupState) {
	for _, o := range g.objs {
		if o.Type != TreeObject || o.DeltaBase.IsZero() {
			continue
		}
		t, ok := g.trees[o.DeltaBase]
		if !ok {
			continue
		}
		delete(g.trees, o.DeltaBase)
		if t.owned {
			r.entries.recycle(t.Entries)
			t.Entries = nil
		}
	}
}

// failGroup answers every request of s with the backend's error err.
func (r *Repo) failGroup(s *sealedGroup, err error) {
	r.log.Error("commit failed", "err", err)
	err = gitstate.Errorf(gitstate.KindInternal, "commit_failed", "commit: %w", err)
	for _, req := range s.ok {
		req.res, req.err = nil, err
		close(req.done)
	}
	close(s.settled)
}

// finishGroup waits for s to be durable, publishes it and answers its
// requests. Groups are finished in the order they were sealed.
func (r *Repo) finishGroup(s *sealedGroup) {
	if s.wait == nil {
		// Nothing was written; the groups before are published.
		for _, req := range s.ok {
			close(req.done)
		}
		close(s.settled)
		return
	}
	if err := s.wait(); err != nil {
		r.failGroup(s, err)
		return
	}
	g := s.g
	for _, res := range s.noted {
		res.Noted = true
	}
	// Only the last version of each directory is left in g.trees
	// (recycleReplaced dropped the versions a later commit replaced: they
	// are read again only for an old revision).
	for h, t := range g.trees {
		r.trees.Add(h, t)
	}
	r.publish(g, s.moved)
	// The answers first: the rest is housekeeping.
	for _, req := range s.ok {
		for i, b := range req.batches {
			if b.Published != nil {
				b.Published(req.res[i])
			}
		}
	}
	for _, h := range g.superseded {
		// A directory changed and changed back is at head again.
		if _, ok := g.trees[h]; ok {
			continue
		}
		t, cached := r.trees.Peek(h)
		r.trees.Remove(h)
		// Out of the cache, a version no one but this group's edit read
		// gives its entries to the committer's next copies: under PUT x64
		// each commit copied its key's directory (100 entries) from the
		// version an earlier group wrote, 12% of the bytes allocated.
		if cached {
			if es, ok := t.recycleFor(g.seq); ok {
				r.entries.giveBack(es)
			}
		}
	}
	if r.mx != nil {
		r.mx.observeGroup(len(s.ok), time.Since(s.start))
	}
	for _, req := range s.ok {
		close(req.done)
	}
	close(s.settled)
}

// applyRequest applies the batches of one request to the group's state.
func (r *Repo) applyRequest(g *groupState, batches []*Batch) ([]*Result, error) {
	out := make([]*Result, 0, len(batches))
	for _, b := range batches {
		res, err := r.applyBatch(g, b)
		if err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	return out, nil
}

func (r *Repo) applyBatch(g *groupState, b *Batch) (*Result, error) {
	ref := b.Ref
	if ref == "" {
		ref = mainRef
	}
	isMain := ref == mainRef
	st, err := g.ref(ref)
	if err != nil {
		return nil, err
	}
	if b.ExpectRef != nil && st.commit != *b.ExpectRef {
		return nil, gitstate.Errorf(gitstate.KindConflict, "ref_changed", "%s moved", ref)
	}
	if b.Unchanged != nil {
		h, err := subtreeOf(g.readTree, st.tree, b.Unchanged.Dir)
		if err != nil {
			return nil, err
		}
		if h != b.Unchanged.Tree {
			what := b.Unchanged.Dir
			if what == "" {
				what = "the repo"
			}
			return nil, gitstate.Errorf(gitstate.KindConflict, "changed_concurrently", "%s changed while the change was being prepared: try again", what)
		}
	}
	if b.RequireRef && st.commit.IsZero() {
		return nil, gitstate.Errorf(gitstate.KindNotFound, "ref_not_found", "%s does not exist", ref)
	}
	if b.Advance != nil {
		if b.Onto != nil || b.ResetTo != nil || b.Merge != nil || len(b.Ops) > 0 {
			return nil, errors.New("storage: Advance combined with a change of its own")
		}
		return r.applyAdvance(g, ref, st, b.Advance)
	}
	if b.Onto != nil {
		if isMain {
			return nil, errors.New("storage: Onto on main is not supported")
		}
		tree, err := r.commitTree(*b.Onto)
		if err != nil {
			return nil, err
		}
		st = refState{commit: *b.Onto, tree: tree}
	}
	if b.ResetTo != nil {
		tree, err := r.commitTree(*b.ResetTo)
		if err != nil {
			return nil, err
		}
		st = refState{commit: *b.ResetTo, tree: tree}
		g.refs[ref] = st
		res := &Result{Changed: true, Commit: st.commit}
		if isMain {
			return nil, errors.New("storage: ResetTo on main is not supported")
		}
		return res, nil
	}
	ed, err := newTreeEditor(g.readTree, st.tree, &r.entries)
	if err != nil {
		return nil, err
	}
	if err := checkPreconditions(ed, b.Preconditions); err != nil {
		return nil, err
	}
	if b.CheckBase && isMain {
		if err := r.checkBase(g, ed, b); err != nil {
			return nil, err
		}
	}
	var trailers []Trailer
	if b.Merge != nil {
		if err := r.applyMerge(g, ed, b.Merge); err != nil {
			return nil, err
		}
	}
	for _, op := range b.Ops {
		t, err := r.applyOp(g, ed, op)
		if err != nil {
			return nil, err
		}
		trailers = append(trailers, t...)
	}
	nobj := len(g.objs)
	newTree := ed.write(g.emitMade)
	if isMain {
		for _, o := range g.objs[nobj:] {
			// A base not among the group's trees is from before it.
			if _, ok := g.trees[o.DeltaBase]; o.Type == TreeObject && !o.DeltaBase.IsZero() && !ok {
				g.superseded = append(g.superseded, o.DeltaBase)
			}
		}
	}
	if newTree == st.tree && !b.AllowEmpty && !(st.commit.IsZero() && b.Merge != nil) {
		if b.Onto != nil {
			// Nothing to add on top: the ref moves to Onto itself.
			g.refs[ref] = st
		}
		res := &Result{Changed: false, Commit: st.commit}
		if isMain {
			res.Revision = g.mainRev
		}
		return res, nil
	}
	parents := []Hash{}
	if !st.commit.IsZero() {
		parents = append(parents, st.commit)
	}
	if b.Merge != nil && !b.Merge.Squash {
		parents = append(parents, b.Merge.Source)
	}
	msg := b.Message
	if msg == "" {
		msg = defaultMessage(b)
	}
	trailers = append(slices.Clone(b.Trailers), trailers...)
	c := &Commit{
		Tree:      newTree,
		Parents:   parents,
		Author:    nowSig(b.Author, g.now),
		Committer: Signature{Name: "gitstate", Email: "gitstate@localhost", When: g.now},
		Message:   withTrailers(msg, trailers),
	}
	co := NewObject(CommitObject, c.Encode())
	g.emitMade(co, nil)
	// What diffTrees(st.tree, newTree) gives, from the names the edit
	// touched: a put into a wide directory costs a lookup, not a walk.
	var changes []Change
	if err := ed.changes(func(ch Change) bool {
		changes = append(changes, ch)
		return true
	}); err != nil {
		return nil, err
	}
	g.refs[ref] = refState{commit: co.Hash, tree: newTree}
	res := &Result{Changed: true, Commit: co.Hash, Changes: changes}
	if isMain {
		g.mainRev++
		res.Revision = g.mainRev
		g.mainCommits = append(g.mainCommits, &mainCommit{rev: g.mainRev, hash: co.Hash, commit: c, changes: changes, trailers: Trailers(c.Message)})
	}
	return res, nil
}

func checkPreconditions(ed *treeEditor, ps []Precondition) error {
	var failed []string
	for _, p := range ps {
		ent, ok, err := ed.get(p.Key)
		if err != nil {
			return err
		}
		if ok && (ent.IsDir() || ent.Mode == ModeSubmodule) {
			ok = false // not a key
		}
		switch {
		case p.Absent && ok,
			p.Exists && !ok,
			!p.ETag.IsZero() && (!ok || ent.Hash != p.ETag):
			failed = append(failed, p.Key)
		}
	}
	if len(failed) > 0 {
		return gitstate.Errorf(gitstate.KindPrecondition, "precondition_failed",
			"precondition failed for %d key(s)", len(failed)).WithKeys(failed...)
	}
	return nil
}

// checkBase fails when a key the batch's ops touch differs from what it was
// at the batch's base revision.
func (r *Repo) checkBase(g *groupState, ed *treeEditor, b *Batch) error {
	if b.BaseRevision > g.mainRev || b.BaseRevision < 0 {
		return gitstate.Errorf(gitstate.KindNotFound, "revision_not_found", "base revision %d does not exist", b.BaseRevision)
	}
	baseCommit, err := r.commitOf(b.BaseRevision)
	if err != nil {
		return err
	}
	baseTree, err := r.commitTree(baseCommit)
	if err != nil {
		return err
	}
	var changed []string
	check := func(key string) error {
		then, okThen, err := lookupPath(g.readTree, baseTree, key)
		if err != nil {
			return err
		}
		now, okNow, err := ed.get(key)
		if err != nil {
			return err
		}
		if okThen != okNow || then.Hash != now.Hash || (okNow && now.IsDir()) {
			if !(okNow && now.IsDir() && okThen && then.IsDir()) || then.Hash != now.Hash {
				changed = append(changed, key)
			}
		}
		return nil
	}
	for _, op := range b.Ops {
		keys := []string{op.Key}
		if op.Kind == OpMove {
			keys = append(keys, op.From)
		}
		for _, k := range keys {
			if k == "" {
				continue
			}
			if err := check(k); err != nil {
				return err
			}
		}
	}
	if len(changed) > 0 {
		return gitstate.Errorf(gitstate.KindConflict, "changed_since_base",
			"%d key(s) changed after revision %d", len(changed), b.BaseRevision).WithKeys(changed...)
	}
	return nil
}

// applyMerge applies the changes between m.Base and m.Source to ed, key by
// key, failing on keys that ed's ref changed differently since m.Base.
func (r *Repo) applyMerge(g *groupState, ed *treeEditor, m *Merge) error {
	baseTree, err := r.commitTree(m.Base)
	if err != nil {
		return err
	}
	srcTree, err := r.commitTree(m.Source)
	if err != nil {
		return err
	}
	var changes []Change
	if err := diffTrees(g.readTree, baseTree, srcTree, "", func(c Change) bool {
		changes = append(changes, c)
		return true
	}); err != nil {
		return err
	}
	// A key's value on ed's ref is its blob; a directory there holds no
	// value (keys under it are other keys). A change conflicts when that
	// value is neither the change's old one nor its new one.
	why := map[string]MergeConflict{}
	var conflicts []string
	for _, c := range changes {
		cur, ok, err := ed.get(c.Key)
		if err != nil {
			return err
		}
		var curHash Hash
		if ok && !cur.IsDir() {
			curHash = cur.Hash
		}
		if curHash != c.From.Hash && curHash != c.To.Hash {
			conflicts = append(conflicts, c.Key)
			main := MainChanged
			switch {
			case curHash.IsZero():
				main = MainDeleted
			case c.From.Hash.IsZero():
				main = MainCreated
			}
			why[c.Key] = MergeConflict{Key: c.Key, Main: main}
		}
	}
	// Deletions first: a value may replace a directory whose keys the
	// source removed, and keys may go under a removed value.
	for _, c := range changes {
		if _, conflicting := why[c.Key]; c.Op == Deleted && !conflicting {
			if _, err := ed.delete(c.Key); err != nil {
				return err
			}
		}
	}
	// A key and a directory cannot share a path: a value put where ed's
	// ref now has a directory, or under a value it has, conflicts too.
	for _, c := range changes {
		if c.Op == Deleted {
			continue
		}
		clash, err := keyDirClash(ed, c.Key)
		if err != nil {
			return err
		}
		if clash.Main != "" {
			if _, conflicting := why[c.Key]; !conflicting {
				conflicts = append(conflicts, c.Key)
			}
			why[c.Key] = clash
		}
	}
	if len(conflicts) > 0 {
		cs := make(MergeConflicts, len(conflicts))
		for i, k := range conflicts {
			cs[i] = why[k]
		}
		return mergeConflictError(cs)
	}
	for _, c := range changes {
		if c.Op == Deleted {
			continue
		}
		if _, err := ed.put(c.Key, c.To.Hash, c.To.Mode); err != nil {
			return err
		}
	}
	return nil
}

// keyDirClash says why key cannot hold a value in ed's tree (no Main when
// it can): a directory is there, or a value above it. O(depth²) lookups.
func keyDirClash(ed *treeEditor, key string) (MergeConflict, error) {
	for i := range len(key) {
		if key[i] != '/' {
			continue
		}
		ent, ok, err := ed.get(key[:i])
		if err != nil {
			return MergeConflict{}, err
		}
		if ok && !ent.IsDir() {
			return MergeConflict{Key: key, Main: MainValueAbove, Above: key[:i]}, nil
		}
		if !ok {
			return MergeConflict{}, nil
		}
	}
	ent, ok, err := ed.get(key)
	if err != nil || !ok || !ent.IsDir() {
		return MergeConflict{}, err
	}
	return MergeConflict{Key: key, Main: MainMadeDir}, nil
}

// applyOp applies one op and returns the trailers that record it.
func (r *Repo) applyOp(g *groupState, ed *treeEditor, op Op) ([]Trailer, error) {
	switch op.Kind {
	case OpPut:
		h := op.Blob
		if op.Value != nil {
			o := NewObject(BlobObject, op.Value)
			g.emit(o, nil)
			h = o.Hash
		} else if !g.seen[h] && !r.be.HasObject(h) {
			return nil, gitstate.Errorf(gitstate.KindInvalid, "invalid_request", "blob %s does not exist", h)
		}
		_, err := ed.put(op.Key, h, op.Mode)
		return nil, err
	case OpDelete:
		found, err := ed.delete(op.Key)
		if err == nil && !found && op.MustExist {
			err = keyNotFound(op.Key)
		}
		return nil, err
	case OpDeletePrefix:
		found, err := ed.deleteDir(op.Key)
		if err == nil && !found && op.MustExist {
			err = gitstate.Errorf(gitstate.KindNotFound, "key_not_found", "no keys under %q", op.Key+"/").WithKeys(op.Key)
		}
		return nil, err
	case OpMove:
		ent, ok, err := ed.get(op.From)
		if err != nil {
			return nil, err
		}
		if !ok || ent.IsDir() || ent.Mode == ModeSubmodule {
			return nil, keyNotFound(op.From)
		}
		if _, exists, err := ed.get(op.Key); err != nil {
			return nil, err
		} else if exists {
			return nil, gitstate.Errorf(gitstate.KindConflict, "key_exists", "cannot move %q to %q: it exists", op.From, op.Key).WithKeys(op.Key)
		}
		if _, err := ed.delete(op.From); err != nil {
			return nil, err
		}
		if _, err := ed.put(op.Key, ent.Hash, ent.Mode); err != nil {
			return nil, err
		}
		return []Trailer{{Key: TrailerMoveFrom, Value: op.From}, {Key: TrailerMoveTo, Value: op.Key}}, nil
	case OpRestoreDir:
		return nil, ed.setDir(op.Key, op.Blob)
	}
	return nil, gitstate.Errorf(gitstate.KindInvalid, "unknown_op", "unknown op %d", op.Kind)
}

// keyNotFound is the error of a read of an absent key. It is built without
// fmt: reads of absent keys are common (every write looks up the repo's
// policy file, which most repos do not have).
func keyNotFound(key string) error {
	return &gitstate.Error{Kind: gitstate.KindNotFound, Code: "key_not_found",
		Message: "key " + strconv.Quote(key) + " does not exist", Keys: []string{key}}
}

// publish moves the index and the in-memory head to the group's new state
// and wakes the watchers.
func (r *Repo) publish(g *groupState, refsMoved bool) {
	if len(g.mainCommits) > 0 {
		ib := r.ix.newBatch(r.name)
		err := r.indexCommits(ib, g.mainCommits, func(h Hash) ([]byte, error) {
			if d, ok := g.blobs[h]; ok {
				return d, nil
			}
			o, err := r.be.ReadObject(h)
			if err != nil {
				return nil, err
			}
			return o.Data, nil
		})
		last := g.mainCommits[len(g.mainCommits)-1]
		r.viewMu.Lock()
		if err == nil {
			err = ib.commit()
		} else {
			ib.discard()
		}
		if err != nil && !r.indexStale {
			r.log.Error("index update failed; serving head from Git until restart", "err", err)
			r.indexStale = true
		}
		for _, mc := range g.mainCommits {
			for _, c := range mc.changes {
				r.hot.forget(c.Key)
			}
			r.revs = append(r.revs, mc.hash)
			r.revOf[mc.hash] = mc.rev
		}
		// Only the head is likely to be read again soon (the next group
		// starts from it): caching every commit of a busy group cost 1% of
		// the CPU under load, and each decoded commit is a few pointers
		// more for every garbage collection to scan.
		r.commits.Add(last.hash, last.commit)
		r.head = Head{Revision: last.rev, Commit: last.hash, Tree: last.commit.Tree}
		r.viewMu.Unlock()
		if r.mx != nil {
			r.mx.headRevision.WithLabelValues(r.name).Set(float64(last.rev))
		}
	}
	if refsMoved {
		r.notifyMu.Lock()
		close(r.notify)
		r.notify = make(chan struct{})
		r.notifyMu.Unlock()
	}
}

// indexCommits adds main commits (in order) to an index batch: their
// revision records and the entries of the keys they changed.
func (r *Repo) indexCommits(ib *indexBatch, mcs []*mainCommit, blob func(Hash) ([]byte, error)) error {
	for _, mc := range mcs {
		for _, c := range mc.changes {
			if c.Op == Deleted {
				ib.deleteEntry(c.Key)
				continue
			}
			e, err := r.newEntry(c.To, mc.rev, blob)
			if err != nil {
				return err
			}
			ib.setEntry(c.Key, e)
		}
		ri := revisionInfo(mc.rev, mc.hash, mc.commit, mc.changes, mc.trailers)
		if err := ib.addRevision(ri); err != nil {
			return err
		}
	}
	last := mcs[len(mcs)-1]
	ib.setHead(last.rev, last.hash)
	return nil
}

func (r *Repo) newEntry(te TreeEntry, rev int64, blob func(Hash) ([]byte, error)) (*IndexEntry, error) {
	e := &IndexEntry{Blob: te.Hash, Mode: te.Mode, ModRev: rev}
	if te.Mode == ModeSubmodule {
		return e, nil // a commit of another repository: no blob here
	}
	data, err := blob(te.Hash)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", te.Hash, err)
	}
	e.Size = int64(len(data))
	if len(data) <= r.opts.InlineValueMax {
		e.Inline, e.Value = true, data
	}
	return e, nil
}

// revisionInfo describes a main commit, with its changes as a reconciler
// reads them: moves (from the commit's trailers) as moves.
func revisionInfo(rev int64, h Hash, c *Commit, changes []Change, trailers []Trailer) *RevisionInfo {
	ri := &RevisionInfo{
		Revision: rev,
		Commit:   h.String(),
		Parents:  make([]string, len(c.Parents)),
		Author:   c.Author.Name,
		Email:    c.Author.Email,
		Time:     c.Author.When.Unix(),
		Message:  c.Message,
		Changes:  keyChanges(changes, trailers),
	}
	for i, p := range c.Parents {
		ri.Parents[i] = p.String()
	}
	return ri
}

// hasMoves reports whether trailers record a move.
func hasMoves(trailers []Trailer) bool {
	for _, t := range trailers {
		if t.Key == TrailerMoveTo {
			return true
		}
	}
	return false
}

// keyChanges turns tree changes into key changes, pairing the deletes and
// adds that the trailers record as moves. Paths that are not keys are left
// out (see keyChange).
func keyChanges(changes []Change, trailers []Trailer) []KeyChange {
	if !hasMoves(trailers) {
		// Most commits move nothing: no pairing to do.
		out := make([]KeyChange, 0, len(changes))
		for _, c := range changes {
			c, ok := keyChange(c)
			switch {
			case !ok:
			case c.Op == Deleted:
				out = append(out, KeyChange{Key: c.Key, Op: "delete"})
			default:
				out = append(out, KeyChange{Key: c.Key, Op: "put", ETag: c.To.Hash.String()})
			}
		}
		return out
	}
	keyed := make([]Change, 0, len(changes))
	for _, c := range changes {
		if c, ok := keyChange(c); ok {
			keyed = append(keyed, c)
		}
	}
	changes = keyed
	moveTo := map[string]string{} // to -> from
	var from string
	for _, t := range trailers {
		switch t.Key {
		case TrailerMoveFrom:
			from = t.Value
		case TrailerMoveTo:
			if from != "" {
				moveTo[t.Value] = from
			}
			from = ""
		}
	}
	deleted := map[string]bool{}
	added := map[string]bool{}
	for _, c := range changes {
		switch c.Op {
		case Deleted:
			deleted[c.Key] = true
		case Added:
			added[c.Key] = true
		}
	}
	movedFrom := map[string]bool{}
	for to, from := range moveTo {
		if added[to] && deleted[from] {
			movedFrom[from] = true
		} else {
			delete(moveTo, to)
		}
	}
	out := make([]KeyChange, 0, len(changes))
	for _, c := range changes {
		switch {
		case c.Op == Deleted && movedFrom[c.Key]:
			continue
		case c.Op == Deleted:
			out = append(out, KeyChange{Key: c.Key, Op: "delete"})
		case moveTo[c.Key] != "":
			out = append(out, KeyChange{Key: c.Key, Op: "move", From: moveTo[c.Key], ETag: c.To.Hash.String()})
		default:
			out = append(out, KeyChange{Key: c.Key, Op: "put", ETag: c.To.Hash.String()})
		}
	}
	return out
}

// subtreeOf returns the id of the directory dir ("" for the root) in the
// tree root, ZeroHash when there is no such directory.
func subtreeOf(read treeReader, root Hash, dir string) (Hash, error) {
	if dir == "" {
		if root == EmptyTreeHash {
			return ZeroHash, nil
		}
		return root, nil
	}
	ent, ok, err := lookupPath(read, root, dir)
	if err != nil || !ok || !ent.IsDir() {
		return ZeroHash, err
	}
	return ent.Hash, nil
}
