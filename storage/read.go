package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/gitstate/gitstate"
)

// Value is a key's value as read at one revision or commit.
type Value struct {
	Key  string
	Blob Hash
	Mode uint32
	Size int64
	// ModRevision is the revision that last changed the key (0 when read
	// at a commit that is not on main).
	ModRevision int64
	// Data is the value. It must not be modified.
	Data []byte
	// Revision and Commit say what was read (Revision is 0 for a commit
	// that is not on main).
	Revision int64
	Commit   Hash
}

// ListOptions selects keys for List.
type ListOptions struct {
	// Prefix keeps the keys that start with it.
	Prefix string
	// After keeps the keys that sort after it (the cursor of a page).
	After string
	// Limit is the page size (default 1,000).
	Limit int
	// Values asks for the values too.
	Values bool
	// Revision is the revision to list (0: head).
	Revision int64
}

// ListItem is one key of a List.
type ListItem struct {
	Key         string
	Blob        Hash
	Mode        uint32
	Size        int64
	ModRevision int64
	Value       []byte // with ListOptions.Values
}

// ListResult is one page of keys.
type ListResult struct {
	Revision int64
	Commit   Hash
	Items    []ListItem
	// Next is the After of the following page; empty on the last one.
	Next string
}

// DefaultListLimit is the page size of List when none is given.
const DefaultListLimit = 1000

func revisionNotFound(rev int64) error {
	return gitstate.Errorf(gitstate.KindNotFound, "revision_not_found", "revision %d does not exist", rev)
}

// commitOf returns the commit of a revision of main.
func (r *Repo) commitOf(rev int64) (Hash, error) {
	r.viewMu.RLock()
	defer r.viewMu.RUnlock()
	if rev < 0 || rev >= int64(len(r.revs)) {
		return ZeroHash, revisionNotFound(rev)
	}
	return r.revs[rev], nil
}

// RevisionCommit returns the commit of a revision of main (ZeroHash for
// revision 0, the empty state before the first commit).
func (r *Repo) RevisionCommit(rev int64) (Hash, error) { return r.commitOf(rev) }

// RevisionOf returns the revision of a commit on main's first-parent line.
func (r *Repo) RevisionOf(h Hash) (int64, bool) {
	r.viewMu.RLock()
	defer r.viewMu.RUnlock()
	rev, ok := r.revOf[h]
	return rev, ok
}

// ResolveRevision parses a revision as the API takes it: a number, or the
// id of a commit on main (full, or an unambiguous prefix of at least 7 hex
// digits). An empty spec is the head. A string of 7 or more digits is taken
// as a commit id prefix when one matches, else as a number. A negative
// number is invalid_revision (it is no revision, as a malformed spec is
// none); a number after the head is revision_not_found.
func (r *Repo) ResolveRevision(spec string) (int64, error) {
	if spec == "" {
		return r.Head().Revision, nil
	}
	n, numErr := strconv.ParseInt(spec, 10, 64)
	if numErr == nil && n < 0 {
		return 0, gitstate.Errorf(gitstate.KindInvalid, "invalid_revision", "revision must not be negative: %d", n)
	}
	number := func() (int64, error) {
		if n > r.Head().Revision {
			return 0, revisionNotFound(n)
		}
		return n, nil
	}
	if numErr == nil && len(spec) < 7 {
		return number()
	}
	if !isHex(spec) || len(spec) < 7 || len(spec) > 40 {
		if numErr == nil {
			return number()
		}
		return 0, gitstate.Errorf(gitstate.KindInvalid, "invalid_revision", "revision must be a number or a commit id: %q", spec)
	}
	spec = strings.ToLower(spec)
	r.viewMu.RLock()
	found := int64(-1)
	if h, ok := parseHash(spec); ok {
		if rev, ok := r.revOf[h]; ok {
			found = rev
		}
	} else {
		for i := len(r.revs) - 1; i >= 1; i-- {
			if strings.HasPrefix(r.revs[i].String(), spec) {
				if found >= 0 {
					r.viewMu.RUnlock()
					return 0, gitstate.Errorf(gitstate.KindInvalid, "invalid_revision", "commit id prefix %q is ambiguous", spec)
				}
				found = int64(i)
			}
		}
	}
	r.viewMu.RUnlock()
	if found >= 0 {
		return found, nil
	}
	if numErr == nil {
		return number()
	}
	return 0, gitstate.Errorf(gitstate.KindNotFound, "revision_not_found", "no commit on %s matches %s", MainBranch, spec)
}

func isHex(s string) bool {
	_, err := hex.DecodeString(strings.Repeat("0", len(s)%2) + s)
	return err == nil
}

// Get returns key's value at revision rev of main (0: head). At head it is
// one index lookup (and, for a value too large to be inline, one blob read).
func (r *Repo) Get(ctx context.Context, key string, rev int64) (*Value, error) {
	r.viewMu.RLock()
	head, stale := r.head, r.indexStale
	if rev == 0 || rev == head.Revision {
		if stale {
			r.viewMu.RUnlock()
			return r.getAt(head.Commit, head.Revision, key)
		}
		e, known := r.hot.get(key)
		switch known {
		case hotAbsent:
			r.viewMu.RUnlock()
			return nil, keyNotFound(key)
		case hotMiss:
			var ok bool
			var err error
			e, ok, err = getEntry(r.ix.db, r.name, key)
			if err != nil {
				r.viewMu.RUnlock()
				return nil, err
			}
			if !ok {
				r.hot.putAbsent(key)
				r.viewMu.RUnlock()
				return nil, keyNotFound(key)
			}
			r.hot.put(key, &e)
		}
		r.viewMu.RUnlock()
		if e.Mode == ModeSubmodule {
			// Indexed (as older indexes and imports do), yet not a key.
			return nil, keyNotFound(key)
		}
		var err error
		v := &Value{Key: key, Blob: e.Blob, Mode: e.Mode, Size: e.Size, ModRevision: e.ModRev,
			Revision: head.Revision, Commit: head.Commit}
		if e.Inline {
			v.Data = e.Value
		} else if v.Data, err = r.readBlob(e.Blob); err != nil {
			return nil, err
		}
		return v, nil
	}
	r.viewMu.RUnlock()
	h, err := r.commitOf(rev)
	if err != nil {
		return nil, err
	}
	return r.getAt(h, rev, key)
}

// Lookup is Get for a key that may well be absent: it reports an absent
// key with a nil value and a nil error, and at head, when the hot cache
// knows the key is absent, without building the error Get returns. Every
// write looks up the repo's policy file, which is usually absent.
func (r *Repo) Lookup(ctx context.Context, key string, rev int64) (*Value, error) {
	if rev == 0 {
		r.viewMu.RLock()
		_, cached := r.hot.get(key)
		known := cached == hotAbsent && !r.indexStale
		r.viewMu.RUnlock()
		if known {
			return nil, nil
		}
	}
	v, err := r.Get(ctx, key, rev)
	if errors.Is(err, gitstate.ErrKeyNotFound) {
		return nil, nil
	}
	return v, err
}

// GetAt returns key's value at any commit of the repo (a transaction's
// branch, say). ModRevision is left 0.
func (r *Repo) GetAt(ctx context.Context, commit Hash, key string) (*Value, error) {
	return r.getAt(commit, 0, key)
}

func (r *Repo) getAt(commit Hash, rev int64, key string) (*Value, error) {
	tree, err := r.commitTree(commit)
	if err != nil {
		return nil, err
	}
	ent, ok, err := lookupPath(r.readTree, tree, key)
	if err != nil {
		return nil, err
	}
	if !ok || ent.IsDir() || ent.Mode == ModeSubmodule {
		return nil, keyNotFound(key)
	}
	v := &Value{Key: key, Blob: ent.Hash, Mode: ent.Mode, Revision: rev, Commit: commit}
	if v.Data, err = r.readBlob(ent.Hash); err != nil {
		return nil, err
	}
	v.Size = int64(len(v.Data))
	if rev > 0 {
		v.ModRevision, err = r.modRevisionAt(key, rev)
		if err != nil {
			return nil, err
		}
	}
	return v, nil
}

// modRevisionAt returns the revision, at or before rev, that last changed
// key.
func (r *Repo) modRevisionAt(key string, rev int64) (int64, error) {
	var mod int64
	err := r.ix.keyHistory(r.name, key, rev+1, func(n int64) bool {
		mod = n
		return false
	})
	return mod, err
}

func (r *Repo) readBlob(h Hash) ([]byte, error) {
	o, err := r.be.ReadObject(h)
	if err != nil {
		return nil, err
	}
	return o.Data, nil
}

// List returns a page of keys at a revision of main, in key order, paths
// that are not valid keys left out (see listable). At head
// it reads a snapshot of the index; at an older revision it walks Git's
// trees. Either way a page is one consistent revision; pass the returned
// Revision back with Next to read the following pages at the same one.
func (r *Repo) List(ctx context.Context, o ListOptions) (*ListResult, error) {
	if o.Limit <= 0 {
		o.Limit = DefaultListLimit
	}
	r.viewMu.RLock()
	head, stale := r.head, r.indexStale
	if (o.Revision == 0 || o.Revision == head.Revision) && !stale {
		snap := r.ix.db.NewSnapshot()
		r.viewMu.RUnlock()
		defer snap.Close()
		return r.listIndex(snap, head, o)
	}
	r.viewMu.RUnlock()
	rev := o.Revision
	if rev == 0 {
		rev = head.Revision
	}
	h, err := r.commitOf(rev)
	if err != nil {
		return nil, err
	}
	return r.listAt(h, rev, o)
}

// ListAt is List at any commit of the repo. Mod revisions are left 0.
func (r *Repo) ListAt(ctx context.Context, commit Hash, o ListOptions) (*ListResult, error) {
	if o.Limit <= 0 {
		o.Limit = DefaultListLimit
	}
	return r.listAt(commit, 0, o)
}

func (r *Repo) listIndex(snap *pebble.Snapshot, head Head, o ListOptions) (*ListResult, error) {
	res := &ListResult{Revision: head.Revision, Commit: head.Commit}
	var ferr error
	err := scanEntries(snap, r.name, o.Prefix, o.After, func(key string, e IndexEntry) bool {
		if e.Mode == ModeSubmodule || !listable(key) {
			return true
		}
		if len(res.Items) == o.Limit {
			res.Next = res.Items[len(res.Items)-1].Key
			return false
		}
		it := ListItem{Key: key, Blob: e.Blob, Mode: e.Mode, Size: e.Size, ModRevision: e.ModRev}
		if o.Values {
			if e.Inline {
				it.Value = append([]byte(nil), e.Value...)
			} else if it.Value, ferr = r.readBlob(e.Blob); ferr != nil {
				return false
			}
		}
		res.Items = append(res.Items, it)
		return true
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (r *Repo) listAt(commit Hash, rev int64, o ListOptions) (*ListResult, error) {
	tree, err := r.commitTree(commit)
	if err != nil {
		return nil, err
	}
	res := &ListResult{Revision: rev, Commit: commit}
	var ferr error
	err = walkTree(r.readTree, tree, o.Prefix, o.After, func(key string, e TreeEntry) bool {
		if e.Mode == ModeSubmodule || !listable(key) {
			return true
		}
		if len(res.Items) == o.Limit {
			res.Next = res.Items[len(res.Items)-1].Key
			return false
		}
		it := ListItem{Key: key, Blob: e.Hash, Mode: e.Mode}
		var data []byte
		if data, ferr = r.readBlob(e.Hash); ferr != nil {
			return false
		}
		it.Size = int64(len(data))
		if o.Values {
			it.Value = data
		}
		if rev > 0 {
			if it.ModRevision, ferr = r.modRevisionAt(key, rev); ferr != nil {
				return false
			}
		}
		res.Items = append(res.Items, it)
		return true
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// listable reports whether a path of a tree is listed: whether it is a key
// the API can address (a submodule, whatever its path, is not: callers
// check its mode). An imported repo may hold paths that are not (a
// backslash, a control character...): they stay in Git, named in the
// import's report, and out of listings, since no read, write or delete
// could name them. A path with none of the bytes that can make a key
// invalid is not checked further.
func listable(key string) bool {
	if len(key) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c < 0x20 || c >= 0x7f || c == '\\' || c == '~' || (c == '.' && (i == 0 || key[i-1] == '/')) {
			return ValidateKey(key) == nil
		}
	}
	return true
}

// Diff returns the keys that differ between the commits from and to (either
// may be ZeroHash, the empty state), limited to keys starting with prefix,
// in key order. Paths that are not keys (submodules, invalid keys) are left
// out, a value replaced by a submodule reading as deleted (see keyChange).
func (r *Repo) Diff(ctx context.Context, from, to Hash, prefix string) ([]Change, error) {
	ft, err := r.commitTree(from)
	if err != nil {
		return nil, err
	}
	tt, err := r.commitTree(to)
	if err != nil {
		return nil, err
	}
	var out []Change
	err = diffTrees(r.readTree, ft, tt, prefix, func(c Change) bool {
		if c, ok := keyChange(c); ok {
			out = append(out, c)
		}
		return ctx.Err() == nil
	})
	if err == nil {
		err = ctx.Err()
	}
	return out, err
}

// ReadBlob returns the content of a blob.
func (r *Repo) ReadBlob(h Hash) ([]byte, error) { return r.readBlob(h) }

// LogOptions selects revisions for Log.
type LogOptions struct {
	// Before keeps revisions older than it (the cursor of a page; 0: from
	// head).
	Before int64
	// After keeps revisions newer than it.
	After int64
	// Limit is the page size (default 100).
	Limit int
	// Key keeps revisions that changed this key.
	Key string
	// Prefix keeps revisions that changed a key under it; their changes
	// are limited to the prefix too.
	Prefix string
	// Ascending lists oldest first.
	Ascending bool
}

// Log returns revisions of main, newest first (or oldest first with
// Ascending), and the cursor of the next page: 0 when no older (newer)
// revision remains that the filters keep. With Prefix, the revisions left
// are not read to find one the prefix keeps, so the cursor may lead to an
// empty page.
func (r *Repo) Log(ctx context.Context, o LogOptions) ([]*RevisionInfo, int64, error) {
	if o.Limit <= 0 {
		o.Limit = 100
	}
	head := r.Head().Revision
	hi := head
	if o.Before > 0 && o.Before-1 < hi {
		hi = o.Before - 1
	}
	lo := o.After + 1
	var out []*RevisionInfo
	var next int64
	take := func(rev int64) (bool, error) {
		if len(out) == o.Limit {
			next = out[len(out)-1].Revision
			return false, nil
		}
		ri, err := r.Revision(rev)
		if err != nil {
			return false, err
		}
		if o.Prefix != "" {
			var keep []KeyChange
			for _, c := range ri.Changes {
				if strings.HasPrefix(c.Key, o.Prefix) || (c.From != "" && strings.HasPrefix(c.From, o.Prefix)) {
					keep = append(keep, c)
				}
			}
			if len(keep) == 0 {
				return true, nil
			}
			ri.Changes = keep
		}
		out = append(out, ri)
		return true, ctx.Err()
	}
	if o.Key != "" && !o.Ascending {
		var ferr error
		err := r.ix.keyHistory(r.name, o.Key, hi+1, func(rev int64) bool {
			if rev < lo {
				return false
			}
			var more bool
			more, ferr = take(rev)
			return more && ferr == nil
		})
		if err == nil {
			err = ferr
		}
		return out, next, err
	}
	step, from, to := int64(-1), hi, lo
	if o.Ascending {
		step, from, to = 1, lo, hi
	}
	for rev := from; (step < 0 && rev >= to) || (step > 0 && rev <= to); rev += step {
		ri, err := r.Revision(rev)
		if err != nil {
			return nil, 0, err
		}
		if o.Key != "" && !touches(ri, o.Key) {
			continue
		}
		more, err := take(rev)
		if err != nil {
			return nil, 0, err
		}
		if !more {
			break
		}
	}
	return out, next, nil
}

func touches(ri *RevisionInfo, key string) bool {
	for _, c := range ri.Changes {
		if c.Key == key || c.From == key {
			return true
		}
	}
	return false
}

// Revision returns what the index records of a revision of main.
func (r *Repo) Revision(rev int64) (*RevisionInfo, error) {
	if rev < 1 || rev > r.Head().Revision {
		return nil, revisionNotFound(rev)
	}
	ri, ok, err := getRevision(r.ix.db, r.name, rev)
	if err != nil {
		return nil, err
	}
	if !ok {
		// The index lost it (an index write failed): derive it from Git.
		return r.revisionFromGit(rev)
	}
	return ri, nil
}

func (r *Repo) revisionFromGit(rev int64) (*RevisionInfo, error) {
	h, err := r.commitOf(rev)
	if err != nil {
		return nil, err
	}
	c, err := r.ReadCommit(h)
	if err != nil {
		return nil, err
	}
	var parentTree Hash
	if len(c.Parents) > 0 {
		if parentTree, err = r.commitTree(c.Parents[0]); err != nil {
			return nil, err
		}
	}
	var changes []Change
	if err := diffTrees(r.readTree, parentTree, c.Tree, "", func(ch Change) bool {
		changes = append(changes, ch)
		return true
	}); err != nil {
		return nil, err
	}
	return revisionInfo(rev, h, c, changes, Trailers(c.Message)), nil
}
