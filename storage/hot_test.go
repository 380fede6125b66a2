package storage

import (
	"context"
	"errors"
	"testing"

	"github.com/gitstate/gitstate"
)

// TestHotCacheFollowsHead reads keys at head before and after each kind of
// change, so that the hot cache has an entry (or an absent entry) for them
// when the change lands: every read must still see the new head.
func TestHotCacheFollowsHead(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	r := defaultRepo(t, s)
	state := map[string]string{}
	check := func(step string) {
		t.Helper()
		for _, key := range []string{"a", "b", "dir/c", "dir/d", "never"} {
			for range 2 { // the second read is served by the cache
				v, err := r.Get(ctx, key, 0)
				want, exists := state[key]
				switch {
				case !exists && !errors.Is(err, gitstate.ErrKeyNotFound):
					t.Fatalf("%s: get %s: %v, %v; want not found", step, key, v, err)
				case exists && (err != nil || string(v.Data) != want):
					t.Fatalf("%s: get %s: %v, %v; want %q", step, key, v, err, want)
				}
			}
		}
	}
	steps := []struct {
		name string
		ops  []Op
		set  map[string]string // "" deletes
	}{
		{"create", []Op{{Kind: OpPut, Key: "a", Value: []byte("1")}}, map[string]string{"a": "1"}},
		{"update", []Op{{Kind: OpPut, Key: "a", Value: []byte("2")}}, map[string]string{"a": "2"}},
		{"batch", []Op{{Kind: OpPut, Key: "b", Value: []byte("3")}, {Kind: OpPut, Key: "dir/c", Value: []byte("4")},
			{Kind: OpPut, Key: "dir/d", Value: []byte("5")}}, map[string]string{"b": "3", "dir/c": "4", "dir/d": "5"}},
		{"delete", []Op{{Kind: OpDelete, Key: "a"}}, map[string]string{"a": ""}},
		{"delete prefix", []Op{{Kind: OpDeletePrefix, Key: "dir"}}, map[string]string{"dir/c": "", "dir/d": ""}},
		{"recreate", []Op{{Kind: OpPut, Key: "a", Value: []byte("6")}, {Kind: OpPut, Key: "dir/c", Value: []byte("7")}},
			map[string]string{"a": "6", "dir/c": "7"}},
	}
	check("empty")
	for _, st := range steps {
		if _, err := r.WriteOne(ctx, &Batch{Ops: st.ops}); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for k, v := range st.set {
			if v == "" {
				delete(state, k)
			} else {
				state[k] = v
			}
		}
		check(st.name)
	}
}
