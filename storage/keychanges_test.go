package storage

import (
	"reflect"
	"testing"
)

func TestKeyChanges(t *testing.T) {
	h1, h2 := HashObject(BlobObject, []byte("one")), HashObject(BlobObject, []byte("two"))
	put := func(k string, h Hash) Change { return Change{Key: k, Op: Added, To: TreeEntry{Hash: h}} }
	mod := func(k string, h Hash) Change { return Change{Key: k, Op: Modified, To: TreeEntry{Hash: h}} }
	del := func(k string) Change { return Change{Key: k, Op: Deleted} }
	move := func(from, to string) []Trailer {
		return []Trailer{{Key: TrailerMoveFrom, Value: from}, {Key: TrailerMoveTo, Value: to}}
	}
	tests := []struct {
		name     string
		changes  []Change
		trailers []Trailer
		want     []KeyChange
	}{
		{"none", nil, nil, []KeyChange{}},
		{"put and delete", []Change{put("a", h1), del("b"), mod("c", h2)}, []Trailer{{Key: "Gitstate-Request-Id", Value: "x"}},
			[]KeyChange{{Key: "a", Op: "put", ETag: h1.String()}, {Key: "b", Op: "delete"}, {Key: "c", Op: "put", ETag: h2.String()}}},
		{"move", []Change{del("a"), put("b", h1)}, move("a", "b"),
			[]KeyChange{{Key: "b", Op: "move", From: "a", ETag: h1.String()}}},
		{"move with another put", []Change{del("a"), put("b", h1), put("c", h2)}, move("a", "b"),
			[]KeyChange{{Key: "b", Op: "move", From: "a", ETag: h1.String()}, {Key: "c", Op: "put", ETag: h2.String()}}},
		// A trailer that names a move the tree does not show (the source
		// still there) is no move.
		{"move not in the tree", []Change{put("b", h1)}, move("a", "b"),
			[]KeyChange{{Key: "b", Op: "put", ETag: h1.String()}}},
		// A move-to without its move-from pairs nothing.
		{"lone move-to", []Change{del("a"), put("b", h1)}, []Trailer{{Key: TrailerMoveTo, Value: "b"}},
			[]KeyChange{{Key: "a", Op: "delete"}, {Key: "b", Op: "put", ETag: h1.String()}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := keyChanges(tc.changes, tc.trailers); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("keyChanges = %+v, want %+v", got, tc.want)
			}
		})
	}
}
