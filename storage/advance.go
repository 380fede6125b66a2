package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gitstate/gitstate"
)

// An Advance moves a ref to commits made elsewhere: commits pushed by a Git
// client, fetched from an upstream. The commits keep their ids (the client
// holds them) and their objects are stored as they are. The ref must move
// forward along the new head's first-parent line; on main, each commit of
// that line becomes a revision, indexed like any other, and watchers wake.
//
// PrepareAdvance checks the commits and computes what each one changes;
// a Batch with Advance set applies it, atomically and durably, with a
// compare-and-swap on the ref (Old); Repo.Advance does both.
//
// An Advance is not safe for concurrent use; it may be applied once.
type Advance struct {
	// Ref is the full name of the ref; Old and New its value before and
	// after.
	Ref      string
	Old, New Hash
	// Line is the new head's first-parent line above Old, oldest first:
	// on main, one revision each.
	Line []*AdvanceCommit
	// Others are the new commits off that line (the side branches of
	// merges), which become no revision.
	Others []*AdvanceCommit

	objs  []*Object // objects the repo lacks, in the order given
	byID  map[Hash]*Object
	trees map[Hash]*Tree
	r     *Repo
}

// AdvanceCommit is one commit of an Advance with what it changes against
// its first parent (against the empty tree for a root commit).
type AdvanceCommit struct {
	Hash    Hash
	Commit  *Commit
	Changes []Change
}

// AdvanceOptions relaxes the checks of PrepareAdvance.
type AdvanceOptions struct {
	// AllowSpecial accepts symbolic links and submodules among the new
	// entries (an upstream the administrator trusts); pushes refuse them.
	AllowSpecial bool
}

// Blob returns the data of a blob of the advance or of the repo.
func (a *Advance) Blob(h Hash) ([]byte, error) {
	if o, ok := a.byID[h]; ok {
		return o.Data, nil
	}
	return a.r.readBlob(h)
}

// Ops returns the changes of one commit of the advance as ops, values
// included, for the checks of a policy.
func (a *Advance) Ops(c *AdvanceCommit) ([]Op, error) {
	ops := make([]Op, 0, len(c.Changes))
	for _, ch := range c.Changes {
		if ch.Op == Deleted {
			ops = append(ops, Op{Kind: OpDelete, Key: ch.Key})
			continue
		}
		op := Op{Kind: OpPut, Key: ch.Key, Blob: ch.To.Hash, Mode: ch.To.Mode}
		if ch.To.Mode != ModeSubmodule {
			data, err := a.Blob(ch.To.Hash)
			if err != nil {
				return nil, err
			}
			op.Value = data
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// Objects returns how many objects the advance adds to the repo.
func (a *Advance) Objects() int { return len(a.objs) }

// Keys returns every key the commits of the advance change (move sources
// included), each once, in the order met.
func (a *Advance) Keys() []string {
	seen := map[string]bool{}
	var out []string
	for _, cs := range [][]*AdvanceCommit{a.Line, a.Others} {
		for _, c := range cs {
			for _, ch := range c.Changes {
				if !seen[ch.Key] {
					seen[ch.Key] = true
					out = append(out, ch.Key)
				}
			}
		}
	}
	return out
}

func nonFastForward(format string, args ...any) error {
	return gitstate.Errorf(gitstate.KindConflict, "non_fast_forward", format, args...)
}

func badPush(format string, args ...any) error {
	return gitstate.Errorf(gitstate.KindInvalid, "invalid_object", format, args...)
}

// PrepareAdvance checks a move of ref from old to new, a commit that objs
// (objects the client sent; those the repo has already are ignored) and the
// repo hold together, and computes what each new commit changes. It fails
//
//   - with non_fast_forward (409) when old is not on new's first-parent
//     line, or ref is no longer at old;
//   - with invalid_object (400) when an object is malformed or missing (a
//     commit whose tree, parent or blob is nowhere);
//   - with the key's error when a new commit adds a key that is not valid
//     (invalid_key), a value over the size limit (value_too_large), or, unless
//     opts.AllowSpecial, a symbolic link or submodule (special_entry, 422).
//
// The repo's policy (protected prefixes, schemas) is the caller's to apply,
// to the changes of each commit of Line.
func (r *Repo) PrepareAdvance(ctx context.Context, ref string, old, new Hash, objs []*Object, opts AdvanceOptions) (*Advance, error) {
	if !strings.HasPrefix(ref, "refs/heads/") {
		return nil, gitstate.Errorf(gitstate.KindInvalid, "invalid_request", "%s is not a branch", ref)
	}
	if new.IsZero() {
		return nil, gitstate.Errorf(gitstate.KindInvalid, "invalid_request", "deleting %s is not an advance", ref)
	}
	if cur := r.be.Ref(ref); cur != old {
		return nil, nonFastForward("%s is at %s, not %s: fetch first", ref, short(cur), short(old))
	}
	a := &Advance{Ref: ref, Old: old, New: new, byID: map[Hash]*Object{}, trees: map[Hash]*Tree{}, r: r}
	for _, o := range objs {
		if _, dup := a.byID[o.Hash]; dup || r.be.HasObject(o.Hash) {
			continue
		}
		a.byID[o.Hash] = o
		a.objs = append(a.objs, o)
	}
	has := func(h Hash) bool {
		_, ok := a.byID[h]
		return ok || r.be.HasObject(h)
	}
	readTree := func(h Hash) (*Tree, error) {
		if t, ok := a.trees[h]; ok {
			return t, nil
		}
		o, ok := a.byID[h]
		if !ok {
			return r.readTree(h)
		}
		if o.Type != TreeObject {
			return nil, badPush("object %s is a %s, not a tree", h, o.Type)
		}
		t, err := DecodeTree(o.Data)
		if err != nil {
			return nil, badPush("tree %s: %v", h, err)
		}
		a.trees[h] = t
		return t, nil
	}
	readCommit := func(h Hash) (*Commit, error) {
		o, ok := a.byID[h]
		if !ok {
			if !r.be.HasObject(h) {
				return nil, badPush("commit %s is missing", h)
			}
			return r.ReadCommit(h)
		}
		if o.Type != CommitObject {
			return nil, badPush("object %s is a %s, not a commit", h, o.Type)
		}
		c, err := DecodeCommit(o.Data)
		if err != nil {
			return nil, badPush("commit %s: %v", h, err)
		}
		return c, nil
	}
	// The new commits: those reachable from new that the repo lacks.
	newCommits := map[Hash]*Commit{}
	stack := []Hash{new}
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, seen := newCommits[h]; seen {
			continue
		}
		if _, ok := a.byID[h]; !ok {
			if !r.be.HasObject(h) {
				return nil, badPush("commit %s is missing", h)
			}
			continue // stored: complete, and checked when it came
		}
		c, err := readCommit(h)
		if err != nil {
			return nil, err
		}
		newCommits[h] = c
		stack = append(stack, c.Parents...)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	// Every tree and blob a new commit names must be stored or sent.
	seenTree := map[Hash]bool{}
	var checkTree func(h Hash) error
	checkTree = func(h Hash) error {
		if seenTree[h] || h == EmptyTreeHash {
			return nil
		}
		seenTree[h] = true
		if _, ok := a.byID[h]; !ok {
			if !r.be.HasObject(h) {
				return badPush("tree %s is missing", h)
			}
			return nil
		}
		t, err := readTree(h)
		if err != nil {
			return err
		}
		for _, e := range t.Entries {
			switch e.Mode {
			case ModeDir:
				if err := checkTree(e.Hash); err != nil {
					return err
				}
			case ModeSubmodule:
				// A commit of another repository: nothing to hold here.
			default:
				if !has(e.Hash) {
					return badPush("blob %s (%s) is missing", e.Hash, e.Name)
				}
			}
		}
		return nil
	}
	for _, c := range newCommits {
		if err := checkTree(c.Tree); err != nil {
			return nil, err
		}
	}
	// The first-parent line from new down to old.
	onLine := map[Hash]bool{}
	stored := map[Hash]bool{}
	var line []Hash
	for h := new; h != old; {
		if h.IsZero() {
			if old.IsZero() {
				break
			}
			return nil, nonFastForward("%s does not continue from %s along its first-parent line: %s would lose commits; rebase onto %s (git pull --rebase), or merge with it as the first parent", short(new), short(old), ref, short(old))
		}
		if rev, ok := r.RevisionOf(h); ok {
			// Below a revision, the first-parent line holds only older
			// revisions: old must be one of them, and main cannot go back.
			oldRev, oldOK := r.RevisionOf(old)
			if old.IsZero() {
				oldOK = true
			}
			if ref == mainRef || !oldOK || oldRev >= rev {
				return nil, nonFastForward("%s does not continue from %s along its first-parent line (it reaches revision %d of %s instead): %s would lose commits; rebase onto %s",
					short(new), short(old), rev, MainBranch, ref, short(old))
			}
		}
		c, ok := newCommits[h]
		if !ok {
			var err error
			if c, err = r.ReadCommit(h); err != nil {
				return nil, err
			}
			newCommits[h] = c // stored, but on the line: its changes are checked too
			stored[h] = true
		}
		line = append(line, h)
		onLine[h] = true
		if len(c.Parents) == 0 {
			h = ZeroHash
		} else {
			h = c.Parents[0]
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if len(line) == 0 {
		return nil, gitstate.Errorf(gitstate.KindInvalid, "invalid_request", "%s is already at %s", ref, short(new))
	}
	changesOf := func(h Hash, c *Commit) (*AdvanceCommit, error) {
		var parentTree Hash
		if len(c.Parents) > 0 {
			pc, ok := newCommits[c.Parents[0]]
			if !ok {
				var err error
				if pc, err = r.ReadCommit(c.Parents[0]); err != nil {
					return nil, err
				}
			}
			parentTree = pc.Tree
		}
		ac := &AdvanceCommit{Hash: h, Commit: c}
		err := diffTrees(readTree, parentTree, c.Tree, "", func(ch Change) bool {
			ac.Changes = append(ac.Changes, ch)
			return true
		})
		if err != nil {
			return nil, fmt.Errorf("commit %s: %w", h, err)
		}
		for _, ch := range ac.Changes {
			if ch.Op == Deleted {
				continue
			}
			if err := r.checkEntry(a, ch, opts); err != nil {
				return nil, InCommit(h, err)
			}
		}
		return ac, nil
	}
	for i := len(line) - 1; i >= 0; i-- {
		h := line[i]
		ac, err := changesOf(h, newCommits[h])
		if err != nil {
			return nil, err
		}
		a.Line = append(a.Line, ac)
	}
	for h, c := range newCommits {
		if onLine[h] || stored[h] {
			continue
		}
		ac, err := changesOf(h, c)
		if err != nil {
			return nil, err
		}
		a.Others = append(a.Others, ac)
	}
	return a, nil
}

// checkEntry checks a key a new commit adds or changes.
func (r *Repo) checkEntry(a *Advance, ch Change, opts AdvanceOptions) error {
	if err := ValidateKey(ch.Key); err != nil {
		return err
	}
	switch ch.To.Mode {
	case ModeFile, ModeExecutable:
	case ModeSymlink, ModeSubmodule:
		if !opts.AllowSpecial {
			what := "a symbolic link"
			if ch.To.Mode == ModeSubmodule {
				what = "a submodule"
			}
			return gitstate.Errorf(gitstate.KindUnprocessable, "special_entry",
				"%q is %s: a key's value must be a regular file", ch.Key, what).WithKeys(ch.Key)
		}
		return nil
	default:
		return badPush("%q has mode %o", ch.Key, ch.To.Mode)
	}
	if o, ok := a.byID[ch.To.Hash]; ok {
		if o.Type != BlobObject {
			return badPush("%q names %s, a %s, not a blob", ch.Key, ch.To.Hash, o.Type)
		}
		if int64(len(o.Data)) > r.opts.MaxValueSize {
			return gitstate.Errorf(gitstate.KindTooLarge, "value_too_large",
				"value of %q is %d bytes; the limit is %d", ch.Key, len(o.Data), r.opts.MaxValueSize).WithKeys(ch.Key)
		}
	}
	return nil
}

// Advance moves ref from old to new (see PrepareAdvance), storing objs,
// atomically and durably, and returns the result: on main, the last new
// revision.
func (r *Repo) Advance(ctx context.Context, ref string, old, new Hash, objs []*Object, opts AdvanceOptions) (*Result, error) {
	a, err := r.PrepareAdvance(ctx, ref, old, new, objs, opts)
	if err != nil {
		return nil, err
	}
	return r.WriteOne(ctx, &Batch{Ref: ref, Advance: a})
}

// applyAdvance applies an Advance to the group's state.
func (r *Repo) applyAdvance(g *groupState, ref string, st refState, a *Advance) (*Result, error) {
	if a.Ref != ref {
		return nil, fmt.Errorf("storage: advance of %s applied to %s", a.Ref, ref)
	}
	if st.commit != a.Old {
		return nil, nonFastForward("%s moved to %s meanwhile: fetch first", ref, short(st.commit))
	}
	for _, o := range a.objs {
		g.emit(o, a.trees[o.Hash])
	}
	head := a.Line[len(a.Line)-1]
	g.refs[ref] = refState{commit: a.New, tree: head.Commit.Tree}
	res := &Result{Changed: true, Commit: a.New}
	if ref == mainRef {
		for _, ac := range a.Line {
			g.mainRev++
			g.mainCommits = append(g.mainCommits, &mainCommit{
				rev: g.mainRev, hash: ac.Hash, commit: ac.Commit, changes: ac.Changes, trailers: Trailers(ac.Commit.Message),
			})
			res.Changes = append(res.Changes, ac.Changes...)
		}
		res.Revision = g.mainRev
	}
	return res, nil
}

// InCommit returns err as the error of commit h: a *gitstate.Error keeps
// its kind, code and keys, and its message names the commit.
func InCommit(h Hash, err error) error {
	var ge *gitstate.Error
	if errors.As(err, &ge) {
		c := *ge
		c.Message = "commit " + short(h) + ": " + c.Message
		return &c
	}
	return fmt.Errorf("commit %s: %w", short(h), err)
}

// short abbreviates a commit id for messages.
func short(h Hash) string {
	if h.IsZero() {
		return "nothing"
	}
	return h.String()[:12]
}
