package storage

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// Hash is a Git object id (SHA-1).
type Hash = plumbing.Hash

// ZeroHash is the zero object id; as a ref's value it means "no ref".
var ZeroHash = plumbing.ZeroHash

// ObjectType is a Git object type.
type ObjectType = plumbing.ObjectType

// The object types gitstate writes.
const (
	CommitObject = plumbing.CommitObject
	TreeObject   = plumbing.TreeObject
	BlobObject   = plumbing.BlobObject
)

// Git file modes as they appear in trees.
const (
	ModeFile       uint32 = 0o100644
	ModeExecutable uint32 = 0o100755
	ModeSymlink    uint32 = 0o120000
	ModeDir        uint32 = 0o040000
	ModeSubmodule  uint32 = 0o160000
)

// ErrObjectNotFound is returned by object readers for an unknown id.
var ErrObjectNotFound = errors.New("object not found")

// Object is a Git object in its canonical (uncompressed) form. Data must not
// be modified once the object has been handed to a store: objects are shared
// between caches and readers.
type Object struct {
	Type ObjectType
	Hash Hash
	Data []byte
	// DeltaBase, when set, names an object this one is likely to resemble
	// (the version of the same directory it replaces). Pack writers may
	// store the object as a delta against it; it is a hint only, never
	// stored, and may be ignored.
	DeltaBase Hash
	// delta is the object as a delta against DeltaBase, once the journal
	// has made it: the pack writer stores it as it is instead of making it
	// again. Set before the object is published to the backend's readers.
	delta []byte
	// span, when spanSet, is the range of Data outside which it is
	// DeltaBase's encoding byte for byte (a tree whose ids the editor
	// patched in place): the delta is made without comparing the two.
	span    [2]int
	spanSet bool
}

// NewObject returns the object of type t holding data, with its id computed.
func NewObject(t ObjectType, data []byte) *Object {
	return &Object{Type: t, Hash: HashObject(t, data), Data: data}
}

// HashObject returns the Git object id of an object of type t holding data.
func HashObject(t ObjectType, data []byte) Hash {
	h := sha1.New()
	var hdr [32]byte
	b := append(hdr[:0], t.Bytes()...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(data)), 10)
	b = append(b, 0)
	h.Write(b)
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// EmptyTreeHash is the id of the empty tree.
var EmptyTreeHash = HashObject(TreeObject, nil)

// TreeEntry is one entry of a Git tree.
type TreeEntry struct {
	Name string
	Mode uint32
	Hash Hash
}

// IsDir reports whether the entry is a subtree.
func (e TreeEntry) IsDir() bool { return e.Mode == ModeDir }

// Tree is a decoded Git tree. Entries are in Git order (see treeLess). A
// Tree handed out by a cache is shared and must not be modified.
type Tree struct {
	Entries []TreeEntry
	// raw is the tree's encoding, kept for the trees this process made
	// (nil otherwise), so that an edit that only changes ids can patch it.
	raw []byte
	// owned is set when Entries is the tree's alone (an edit's copy, not
	// another tree's slice): only then may it be recycled (entryPool).
	owned bool
	// mid, for a long raw, is the SHA-1 states over it, for the
	// committer's next version of the directory (see midstates). It may
	// have moved on to that version: use it only if it matches raw.
	mid *midstates
	// use records who was handed the tree (see lend and editBy), so that
	// the entries of a version of main's directory that only the edit
	// replacing it read can be recycled once that edit is published.
	use atomic.Int64
}

// States of Tree.use besides the positive number of the one group of
// commits whose edits read the tree.
const (
	useRecycled = -1 // its entries were recycled: read it anew
	useShared   = -2 // handed to a reader, or to two groups: never recycled
)

// lend records that a reader holds t. It reports false when t's entries
// were recycled: the caller must decode the tree again.
func (t *Tree) lend() bool {
	for {
		u := t.use.Load()
		switch {
		case u == useRecycled:
			return false
		case u == useShared || t.use.CompareAndSwap(u, useShared):
			return true
		}
	}
}

// editBy records that the committer's group seq reads t. It reports false
// when t's entries were recycled.
func (t *Tree) editBy(seq int64) bool {
	for {
		u := t.use.Load()
		switch {
		case u == useRecycled:
			return false
		case u == seq || u == useShared:
			return true
		case u == 0 && t.use.CompareAndSwap(0, seq):
			return true
		case u != 0 && t.use.CompareAndSwap(u, useShared):
			return true
		}
	}
}

// recycleFor takes t's entries for recycling if group seq alone was ever
// handed t, and reports whether it did; t must then be out of every cache.
func (t *Tree) recycleFor(seq int64) ([]TreeEntry, bool) {
	if !t.owned || seq <= 0 || !t.use.CompareAndSwap(seq, useRecycled) {
		return nil, false
	}
	es := t.Entries
	t.Entries = nil
	return es, true
}

// Find returns the index of the entry named name, or -1.
func (t *Tree) Find(name string) int { return t.find(name, false) }

// find is Find, trying first the place name has as a directory when dir is
// set, else as a file.
func (t *Tree) find(name string, dir bool) int {
	// Entries are sorted in Git order, which differs from name order only for
	// directories (compared as name+"/"); search for both forms.
	n := len(t.Entries)
	for _, asDir := range [2]bool{dir, !dir} {
		i := sort.Search(n, func(i int) bool { return !treeNameLess(t.Entries[i].Name, t.Entries[i].IsDir(), name, asDir) })
		if i < n && t.Entries[i].Name == name {
			return i
		}
	}
	return -1
}

// treeNameLess orders tree entries the way Git does: by name, where a
// directory's name is compared as if it ended with '/'.
func treeNameLess(a string, aDir bool, b string, bDir bool) bool {
	n := min(len(a), len(b))
	if c := strings.Compare(a[:n], b[:n]); c != 0 {
		return c < 0
	}
	ca, cb := byte(0), byte(0)
	if len(a) > n {
		ca = a[n]
	} else if aDir {
		ca = '/'
	}
	if len(b) > n {
		cb = b[n]
	} else if bDir {
		cb = '/'
	}
	return ca < cb
}

// sortTree puts entries in Git order.
func sortTree(es []TreeEntry) {
	sort.Slice(es, func(i, j int) bool {
		return treeNameLess(es[i].Name, es[i].IsDir(), es[j].Name, es[j].IsDir())
	})
}

// Encode returns the canonical Git encoding of the tree.
func (t *Tree) Encode() []byte {
	size := 0
	for _, e := range t.Entries {
		size += 7 + len(e.Name) + 1 + 20
	}
	b := make([]byte, 0, size)
	for i := range t.Entries {
		b = appendTreeEntry(b, &t.Entries[i])
	}
	return b
}

// appendTreeEntry appends e's encoding in a tree.
func appendTreeEntry(b []byte, e *TreeEntry) []byte {
	// The usual modes as constants: formatting each entry's mode was a
	// fifth of the cost of encoding a directory.
	b = append(b, modeText(e.Mode)...)
	b = append(b, ' ')
	b = append(b, e.Name...)
	b = append(b, 0)
	return append(b, e.Hash[:]...)
}

// treeEntryLen is the length of e's encoding in a tree.
func treeEntryLen(e *TreeEntry) int {
	return len(modeText(e.Mode)) + 1 + len(e.Name) + 1 + len(e.Hash)
}

// modeText is a mode as a tree entry spells it (octal, no leading zero).
func modeText(m uint32) string {
	switch m {
	case ModeDir:
		return "40000"
	case ModeFile:
		return "100644"
	case ModeExecutable:
		return "100755"
	case ModeSymlink:
		return "120000"
	case ModeSubmodule:
		return "160000"
	}
	return strconv.FormatUint(uint64(m), 8)
}

// DecodeTree parses a Git tree object's data. The entries' names share one
// allocation: decoded trees fill the tree cache, and a name per allocation
// was as many small objects for the GC to mark as the cache held entries.
func DecodeTree(data []byte) (*Tree, error) {
	n, nameBytes := 0, 0
	for rest := data; len(rest) > 0; n++ {
		sp := bytes.IndexByte(rest, ' ')
		if sp < 0 {
			return nil, errors.New("tree: missing mode")
		}
		if _, err := parseMode(rest[:sp]); err != nil {
			return nil, err
		}
		nul := bytes.IndexByte(rest[sp+1:], 0)
		if nul < 0 || len(rest) < sp+1+nul+1+20 {
			return nil, errors.New("tree: truncated entry")
		}
		nameBytes += nul
		rest = rest[sp+1+nul+21:]
	}
	t := &Tree{Entries: make([]TreeEntry, n)}
	var names strings.Builder
	names.Grow(nameBytes)
	for i := range t.Entries {
		sp := bytes.IndexByte(data, ' ')
		mode, _ := parseMode(data[:sp]) // checked above
		data = data[sp+1:]
		nul := bytes.IndexByte(data, 0)
		e := &t.Entries[i]
		// The builder never moves what it holds once grown to fit: each
		// name is a slice of the one string.
		start := names.Len()
		names.Write(data[:nul])
		e.Name, e.Mode = names.String()[start:], mode
		copy(e.Hash[:], data[nul+1:nul+21])
		data = data[nul+21:]
	}
	return t, nil
}

// parseMode parses a tree entry's mode, the usual ones without strconv.
func parseMode(text []byte) (uint32, error) {
	switch string(text) {
	case "100644":
		return ModeFile, nil
	case "40000":
		return ModeDir, nil
	case "100755":
		return ModeExecutable, nil
	case "120000":
		return ModeSymlink, nil
	case "160000":
		return ModeSubmodule, nil
	}
	mode, err := strconv.ParseUint(string(text), 8, 32)
	if err != nil {
		return 0, fmt.Errorf("tree: bad mode %q", text)
	}
	return uint32(mode), nil
}

// Signature is the author or committer of a commit.
type Signature struct {
	Name  string
	Email string
	When  time.Time
}

// sanitizeIdent removes what Git forbids in a name or email (angle brackets
// and newlines) and trims spaces.
func sanitizeIdent(s string) string {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '<', '>', '\n', '\r', 0:
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

func (s Signature) encode(b []byte) []byte {
	name := sanitizeIdent(s.Name)
	if name == "" {
		name = "unknown"
	}
	b = append(b, name...)
	b = append(b, " <"...)
	b = append(b, sanitizeIdent(s.Email)...)
	b = append(b, "> "...)
	b = strconv.AppendInt(b, s.When.Unix(), 10)
	_, off := s.When.Zone()
	sign := byte('+')
	if off < 0 {
		sign = '-'
		off = -off
	}
	b = append(b, ' ', sign)
	b = append(b, fmt.Sprintf("%02d%02d", off/3600, (off%3600)/60)...)
	return b
}

func parseSignature(s string) Signature {
	var sig Signature
	lt := strings.IndexByte(s, '<')
	gt := strings.LastIndexByte(s, '>')
	if lt < 0 || gt < lt {
		sig.Name = s
		return sig
	}
	sig.Name = strings.TrimSpace(s[:lt])
	sig.Email = s[lt+1 : gt]
	fields := strings.Fields(s[gt+1:])
	if len(fields) >= 1 {
		sec, _ := strconv.ParseInt(fields[0], 10, 64)
		loc := time.UTC
		if len(fields) >= 2 && len(fields[1]) == 5 {
			hh, _ := strconv.Atoi(fields[1][1:3])
			mm, _ := strconv.Atoi(fields[1][3:5])
			off := hh*3600 + mm*60
			if fields[1][0] == '-' {
				off = -off
			}
			if off != 0 {
				loc = time.FixedZone("", off)
			}
		}
		sig.When = time.Unix(sec, 0).In(loc)
	}
	return sig
}

// Commit is a decoded Git commit.
type Commit struct {
	Tree      Hash
	Parents   []Hash
	Author    Signature
	Committer Signature
	Message   string
}

// Encode returns the canonical Git encoding of the commit.
func (c *Commit) Encode() []byte {
	b := make([]byte, 0, 256+len(c.Message))
	b = append(b, "tree "...)
	b = hex.AppendEncode(b, c.Tree[:])
	b = append(b, '\n')
	for _, p := range c.Parents {
		b = append(b, "parent "...)
		b = hex.AppendEncode(b, p[:])
		b = append(b, '\n')
	}
	b = append(b, "author "...)
	b = c.Author.encode(b)
	b = append(b, "\ncommitter "...)
	b = c.Committer.encode(b)
	b = append(b, "\n\n"...)
	b = append(b, c.Message...)
	return b
}

// DecodeCommit parses a Git commit object's data. Headers it does not know
// (gpgsig, encoding, mergetag) are skipped.
func DecodeCommit(data []byte) (*Commit, error) {
	c := &Commit{}
	s := string(data)
	hdrEnd := strings.Index(s, "\n\n")
	var hdr string
	if hdrEnd < 0 {
		hdr = s
	} else {
		hdr, c.Message = s[:hdrEnd], s[hdrEnd+2:]
	}
	sawTree := false
	for line := range strings.SplitSeq(hdr, "\n") {
		if strings.HasPrefix(line, " ") {
			continue // continuation of a multi-line header
		}
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "tree":
			h, ok := parseHash(v)
			if !ok {
				return nil, fmt.Errorf("commit: bad tree %q", v)
			}
			c.Tree, sawTree = h, true
		case "parent":
			h, ok := parseHash(v)
			if !ok {
				return nil, fmt.Errorf("commit: bad parent %q", v)
			}
			c.Parents = append(c.Parents, h)
		case "author":
			c.Author = parseSignature(v)
		case "committer":
			c.Committer = parseSignature(v)
		}
	}
	if !sawTree {
		return nil, errors.New("commit: no tree")
	}
	return c, nil
}

// ParseHash parses a full 40-digit lower-case hex object id.
func ParseHash(s string) (Hash, bool) { return parseHash(s) }

// parseHash parses a full 40-digit hex object id.
func parseHash(s string) (Hash, bool) {
	if len(s) != 40 {
		return ZeroHash, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ZeroHash, false
		}
	}
	return plumbing.NewHash(s), true
}

// Trailer is a "Key: value" line at the end of a commit message.
type Trailer struct {
	Key   string
	Value string
}

// Trailers returns the trailers of a commit message: the "Key: value" lines
// of its last paragraph, when every line of that paragraph is one.
func Trailers(msg string) []Trailer {
	msg = strings.TrimRight(msg, "\n")
	i := strings.LastIndex(msg, "\n\n")
	if i < 0 {
		return nil
	}
	var out []Trailer
	for line := range strings.SplitSeq(msg[i+2:], "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil
		}
		out = append(out, Trailer{Key: k, Value: v})
	}
	return out
}

// withTrailers appends trailers to a message as its last paragraph.
func withTrailers(msg string, ts []Trailer) string {
	msg = strings.TrimRight(msg, "\n")
	if len(ts) == 0 {
		return msg + "\n"
	}
	var b strings.Builder
	b.WriteString(msg)
	b.WriteString("\n\n")
	for _, t := range ts {
		b.WriteString(t.Key)
		b.WriteString(": ")
		b.WriteString(t.Value)
		b.WriteString("\n")
	}
	return b.String()
}

// Subject returns the first line of a commit message.
func Subject(msg string) string {
	line, _, _ := strings.Cut(msg, "\n")
	return line
}
