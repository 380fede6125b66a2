package storage

import (
	"slices"
	"strings"
	"testing"
)

// TestMergeConflictsDescribe checks the merge_conflict message: what main
// did to each key, and, for a caller who may read only some keys, no
// other key named.
func TestMergeConflictsDescribe(t *testing.T) {
	cs := MergeConflicts{
		{Key: "a/changed", Main: MainChanged},
		{Key: "a/deleted", Main: MainDeleted},
		{Key: "b/created", Main: MainCreated},
		{Key: "a/dir", Main: MainMadeDir},
		{Key: "a/v/under", Main: MainValueAbove, Above: "a/v"},
		{Key: "a/under", Main: MainValueAbove, Above: "a"},
	}
	onlyA := func(k string) bool { return strings.HasPrefix(k, "a/") }
	none := func(string) bool { return false }
	for _, c := range []struct {
		name string
		see  func(string) bool
		msg  string
		keys []string
	}{
		{"every key", nil, `6 key(s) conflict with main: main changed "a/changed" to another value; main deleted "a/deleted"; ` +
			`main created "b/created" with another value; main made "a/dir" a directory (it holds keys under "a/dir/"), so it cannot hold a value; ` +
			`main made "a/v" a key with a value, so "a/v/under" cannot be written under it; main made "a" a key with a value, so "a/under" cannot be written under it`,
			[]string{"a/changed", "a/deleted", "b/created", "a/dir", "a/v/under", "a/under"}},
		{"under a/", onlyA, `5 key(s) conflict with main: main changed "a/changed" to another value; main deleted "a/deleted"; ` +
			`main made "a/dir" a directory (it holds keys under "a/dir/"), so it cannot hold a value; ` +
			`main made "a/v" a key with a value, so "a/v/under" cannot be written under it; main made a directory of "a/under" a key with a value, so "a/under" cannot be written under it; ` +
			`and keys outside your token's prefixes conflict with main`,
			[]string{"a/changed", "a/deleted", "a/dir", "a/v/under", "a/under"}},
		{"none", none, "keys outside your token's prefixes conflict with main", []string{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg, keys := cs.Describe(c.see)
			if msg != c.msg || !slices.Equal(keys, c.keys) {
				t.Errorf("Describe = %q, %q\nwant %q, %q", msg, keys, c.msg, c.keys)
			}
		})
	}
}
