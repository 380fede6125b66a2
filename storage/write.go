package storage

import (
	"strconv"
	"time"
)

// OpKind is the kind of an Op.
type OpKind uint8

// The kinds of op.
const (
	// OpPut sets Key to Value (or to the stored blob Blob when Value is nil).
	OpPut OpKind = iota + 1
	// OpDelete removes Key. It is a no-op when Key is absent, unless
	// MustExist is set (then the batch fails with key_not_found).
	OpDelete
	// OpDeletePrefix removes every key under the directory Key.
	OpDeletePrefix
	// OpMove renames From to Key, keeping its value. From must exist and
	// Key must not.
	OpMove
	// OpRestoreDir sets the directory Key ("" for the root) to the tree
	// Blob (zero removes it).
	OpRestoreDir
)

// Op is one change in a Batch.
type Op struct {
	Kind OpKind
	Key  string
	From string
	// Value is the new value of an OpPut. It is not modified or retained
	// after Write returns.
	Value []byte
	// Blob names a stored blob for an OpPut whose Value is nil, or the tree
	// of an OpRestoreDir.
	Blob Hash
	// Mode is the file mode for an OpPut (0 keeps the key's mode).
	Mode      uint32
	MustExist bool
}

// Precondition must hold, at the start of its batch, for the batch to apply.
type Precondition struct {
	Key string
	// ETag, when not zero, is the blob id Key must have.
	ETag Hash
	// Absent requires Key not to exist.
	Absent bool
	// Exists requires Key to exist.
	Exists bool
}

// TreeGuard names the tree a directory must be (see Batch.Unchanged).
type TreeGuard struct {
	// Dir is the directory ("" for the root), without a trailing slash.
	Dir string
	// Tree is its tree id, ZeroHash when there was no such directory.
	Tree Hash
}

// Merge makes a batch a key-level merge: the changes between the commits
// Base and Source are applied on top of the batch's ref, and the new commit
// has Source as its second parent. A key changed both by Source (since Base)
// and on the ref, to different values, is a conflict.
type Merge struct {
	Base   Hash
	Source Hash
	// Squash makes an ordinary commit (Source is not a parent).
	Squash bool
}

// Batch is the unit of change: at most one commit on one ref.
type Batch struct {
	// Ref is the full name of the ref to change; "" means refs/heads/main.
	Ref string
	// ExpectRef, when set, is the commit the ref must point to (ZeroHash:
	// must not exist); otherwise the batch fails with ref_changed.
	ExpectRef *Hash
	// ResetTo, when set, points the ref at that commit (ZeroHash deletes
	// it) instead of making a commit. Ops must be empty.
	ResetTo *Hash
	// RequireRef fails the batch with ref_not_found when the ref does not
	// exist (a transaction's branch that was closed meanwhile, say).
	RequireRef bool
	// Onto, when set, makes the commit on top of that commit instead of
	// the ref's current one (a rebase); combine it with ExpectRef.
	Onto *Hash
	// Advance, when set, moves the ref to commits made elsewhere (see
	// PrepareAdvance) instead of making a commit; Advance.Old is the
	// compare-and-swap. Ops must be empty.
	Advance *Advance
	// Unchanged, when set, fails the batch with changed_concurrently
	// unless a directory of the ref's tree is still the tree it was when
	// the batch was prepared: a batch made from a diff of that directory
	// (a rollback) then applies to exactly what it was made from, new
	// keys included, which preconditions on the keys it names cannot
	// guard.
	Unchanged *TreeGuard

	Ops           []Op
	Preconditions []Precondition
	// With CheckBase, on main, the batch fails with changed_since_base when
	// a key its ops touch differs from what it was at BaseRevision (0 is
	// the empty state before the first commit).
	BaseRevision int64
	CheckBase    bool
	Merge        *Merge

	Message  string
	Author   Signature
	Trailers []Trailer
	// AllowEmpty makes a commit even when the tree does not change.
	AllowEmpty bool

	// Note, when set and the store has a NoteSink (FSOptions.Notes), is
	// called by the committer with the batch's result once the batch has
	// applied; the bytes it returns (nil for none) are journaled with the
	// group and handed to the sink once durable, before Write returns, and
	// Result.Noted is set. It must be quick and must not call the store.
	Note func(*Result) []byte

	// Published, when set, is called with the batch's result once the
	// batch is durable and published (a read sees it), before Write
	// returns. It runs on the goroutine that publishes the repository's
	// commits, which waits for it: it must be quick, must not call the
	// store, and may block on nothing unbounded. The API uses it to send
	// a write's answer without waiting for the handler's goroutine to be
	// scheduled again.
	Published func(*Result)
}

// Result is the outcome of one Batch.
type Result struct {
	// Changed reports whether a commit was made.
	Changed bool
	// Commit is the ref's commit after the batch.
	Commit Hash
	// Revision is main's revision after the batch (0 for other refs).
	Revision int64
	// Changes lists the keys the commit changed (nil when none).
	Changes []Change
	// Noted reports that the batch's Note was made durable with it and
	// handed to the NoteSink.
	Noted bool
}

const mainRef = "refs/heads/" + MainBranch

// BranchRef returns the full ref name of a branch.
func BranchRef(branch string) string { return "refs/heads/" + branch }

// Trailer keys gitstate writes.
const (
	TrailerMoveFrom  = "Gitstate-Move-From"
	TrailerMoveTo    = "Gitstate-Move-To"
	TrailerRequestID = "Gitstate-Request-Id"
)

// defaultMessage describes a batch in one line when the caller gave no
// message.
func defaultMessage(b *Batch) string {
	if b.Merge != nil {
		return "Merge " + b.Merge.Source.String()[:12]
	}
	if len(b.Ops) == 1 {
		op := b.Ops[0]
		switch op.Kind {
		case OpPut:
			return "put " + op.Key
		case OpDelete:
			return "delete " + op.Key
		case OpDeletePrefix:
			return "delete " + op.Key + "/"
		case OpMove:
			return "move " + op.From + " to " + op.Key
		}
	}
	return "update " + strconv.Itoa(len(b.Ops)) + " keys"
}

// nowSig fills in a signature's time.
func nowSig(s Signature, now time.Time) Signature {
	if s.When.IsZero() {
		s.When = now
	}
	if s.Name == "" {
		s.Name = "gitstate"
	}
	if s.Email == "" {
		s.Email = "gitstate@localhost"
	}
	return s
}
