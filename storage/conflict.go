package storage

import (
	"fmt"
	"strings"

	"github.com/gitstate/gitstate"
)

// What main did to a key of a merge that conflicts with it.
const (
	// MainChanged: main changed the key's value since the merge's base,
	// to one the merge does not write.
	MainChanged = "changed"
	// MainDeleted: main deleted the key, which the merge changes.
	MainDeleted = "deleted"
	// MainCreated: main created the key, which the merge creates too,
	// with another value.
	MainCreated = "created"
	// MainMadeDir: main made the key a directory (keys under key/), where
	// the merge writes a value.
	MainMadeDir = "made_dir"
	// MainValueAbove: main gave a value to Above, a directory of the key
	// the merge writes.
	MainValueAbove = "value_above"
)

// MergeConflict is one key of a merge that conflicts with the ref it is
// merged into (main), and what main did to it.
type MergeConflict struct {
	Key string
	// Main is what main did (MainChanged, MainDeleted...).
	Main string
	// Above is, for MainValueAbove, the key main gave a value.
	Above string
}

// describe says what main did, naming the keys see accepts (every key
// when see is nil).
func (c MergeConflict) describe(see func(string) bool) string {
	switch c.Main {
	case MainDeleted:
		return fmt.Sprintf("main deleted %q", c.Key)
	case MainCreated:
		return fmt.Sprintf("main created %q with another value", c.Key)
	case MainMadeDir:
		return fmt.Sprintf("main made %q a directory (it holds keys under %q), so it cannot hold a value", c.Key, c.Key+"/")
	case MainValueAbove:
		if see != nil && !see(c.Above) {
			return fmt.Sprintf("main made a directory of %q a key with a value, so %q cannot be written under it", c.Key, c.Key)
		}
		return fmt.Sprintf("main made %q a key with a value, so %q cannot be written under it", c.Above, c.Key)
	}
	return fmt.Sprintf("main changed %q to another value", c.Key)
}

// MergeConflicts is the cause (gitstate.Error's Err) of a merge_conflict
// error: every key that conflicts, in order, and what main did to it.
type MergeConflicts []MergeConflict

// Error implements error: each key and what main did, for logs.
func (cs MergeConflicts) Error() string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%q (main %s)", c.Key, c.Main)
	}
	return "conflicting keys: " + strings.Join(parts, ", ")
}

// Describe returns the message and the keys of the merge_conflict error
// of cs as a caller who may read the keys see accepts (all when see is nil)
// is told it: the conflicts of the other keys are not described, only
// said to exist, and no key see refuses is named.
func (cs MergeConflicts) Describe(see func(string) bool) (string, []string) {
	keys := make([]string, 0, len(cs))
	reasons := make([]string, 0, len(cs))
	for _, c := range cs {
		if see == nil || see(c.Key) {
			keys = append(keys, c.Key)
			reasons = append(reasons, c.describe(see))
		}
	}
	if len(keys) < len(cs) {
		if len(keys) == 0 {
			return "keys outside your token's prefixes conflict with main", keys
		}
		reasons = append(reasons, "and keys outside your token's prefixes conflict with main")
	}
	return fmt.Sprintf("%d key(s) conflict with main: %s", len(keys), strings.Join(reasons, "; ")), keys
}

// mergeConflictError is the merge_conflict error of cs, with every key.
func mergeConflictError(cs MergeConflicts) error {
	msg, keys := cs.Describe(nil)
	e := gitstate.Errorf(gitstate.KindConflict, "merge_conflict", "%s", msg).WithKeys(keys...)
	e.Err = cs
	return e
}
