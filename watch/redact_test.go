package watch_test

import (
	"strings"
	"testing"

	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/watch"
)

// under returns a see function accepting the keys under prefix.
func under(prefix string) func(string) bool {
	return func(key string) bool { return strings.HasPrefix(key, prefix) }
}

func TestRedactMessage(t *testing.T) {
	const id = "Gitstate-Request-Id: 1234\n"
	tests := []struct {
		name, msg, want string
	}{
		{"no trailers", "put b/x\n", "put b/x\n"},
		{"no moves", "put b/x\n\n" + id, "put b/x\n\n" + id},
		{"move inside", "rename\n\n" + id + "Gitstate-Move-From: a/x\nGitstate-Move-To: a/y\n",
			"rename\n\n" + id + "Gitstate-Move-From: a/x\nGitstate-Move-To: a/y\n"},
		{"move in, subject gitstate's", "move b/x to a/x\n\n" + id + "Gitstate-Move-From: b/x\nGitstate-Move-To: a/x\n",
			"put a/x\n\n" + id},
		{"move out, subject gitstate's", "move a/x to b/x\n\n" + id + "Gitstate-Move-From: a/x\nGitstate-Move-To: b/x\n",
			"delete a/x\n\n" + id},
		{"move in, subject the author's", "adopt svc\n\nA body naming no key.\n\n" + id + "Gitstate-Move-From: b/x\nGitstate-Move-To: a/x\n",
			"adopt svc\n\nA body naming no key.\n\n" + id},
		{"only move trailers", "move b/x to a/x\n\nGitstate-Move-From: b/x\nGitstate-Move-To: a/x\n", "put a/x\n"},
		{"two moves, one hidden", "update 2 keys\n\n" + id + "Gitstate-Move-From: a/1\nGitstate-Move-To: a/2\nGitstate-Move-From: b/1\nGitstate-Move-To: b/2\n",
			"update 2 keys\n\n" + id + "Gitstate-Move-From: a/1\nGitstate-Move-To: a/2\n"},
		{"a lone trailer naming a hidden key", "x\n\n" + id + "Gitstate-Move-To: b/2\n", "x\n\n" + id},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := watch.RedactMessage(tt.msg, under("a/")); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if got := watch.RedactMessage(tt.msg, nil); got != tt.msg {
				t.Errorf("see nil: got %q, want the message as it is", got)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	ri := &storage.RevisionInfo{Revision: 7, Message: "update 4 keys\n", Changes: []storage.KeyChange{
		{Key: "a/in", Op: "move", From: "b/src", ETag: "e1"},
		{Key: "b/dst", Op: "move", From: "a/out", ETag: "e2"},
		{Key: "a/y", Op: "move", From: "a/x", ETag: "e3"},
		{Key: "b/other", Op: "put", ETag: "e4"},
		{Key: "a/gone", Op: "delete"},
	}}
	got := watch.Redact(ri, under("a/"))
	want := []storage.KeyChange{
		{Key: "a/in", Op: "put", ETag: "e1"},
		{Key: "a/out", Op: "delete"},
		{Key: "a/y", Op: "move", From: "a/x", ETag: "e3"},
		{Key: "a/gone", Op: "delete"},
	}
	if len(got.Changes) != len(want) {
		t.Fatalf("changes %+v, want %+v", got.Changes, want)
	}
	for i := range want {
		if got.Changes[i] != want[i] {
			t.Errorf("change %d: %+v, want %+v", i, got.Changes[i], want[i])
		}
	}
	if ri.Changes[0].From != "b/src" || len(ri.Changes) != 5 {
		t.Error("Redact changed the record it was given")
	}
	if got.Revision != 7 || got.Message != ri.Message {
		t.Errorf("revision %d, message %q", got.Revision, got.Message)
	}
	// Nothing to hide, or every key visible: the record itself.
	if watch.Redact(ri, nil) != ri || watch.Redact(ri, under("")) != ri {
		t.Error("a record with nothing to hide was copied")
	}
}

// FuzzRedactMessage checks, for any message, that RedactMessage does not
// panic, that no move trailer of the message's trailer block naming a key
// outside "a/" is left in the result's, and that a message whose trailers
// name no hidden key, or read with every key visible, is left as it is.
// (Only the trailer block is redacted: a paragraph of the author's above it
// that reads like trailers is the author's text, and stays.)
func FuzzRedactMessage(f *testing.F) {
	f.Add("move b/x to a/x\n\nGitstate-Request-Id: 1\nGitstate-Move-From: b/x\nGitstate-Move-To: a/x\n")
	f.Add("x\n\nGitstate-Move-To: b/2\n")
	f.Add("\n\nGitstate-Move-From: b\n")
	f.Add("Gitstate-Move-From: b\n\n\n")
	f.Add("s\n\nGitstate-Move-From: b\n\nGitstate-Move-To: c\n")
	f.Fuzz(func(t *testing.T, msg string) {
		see := under("a/")
		isMove := func(tr storage.Trailer) bool {
			return tr.Key == storage.TrailerMoveFrom || tr.Key == storage.TrailerMoveTo
		}
		hidden := map[storage.Trailer]bool{}
		for _, tr := range storage.Trailers(msg) {
			if isMove(tr) && !see(tr.Value) {
				hidden[tr] = true
			}
		}
		got := watch.RedactMessage(msg, see)
		// Text of the author's above the trailers that reads like move
		// trailers is theirs; the check is on the trailer block alone.
		body := strings.TrimRight(msg, "\n")
		authorsOwn := strings.Contains(body[:max(strings.LastIndex(body, "\n\n"), 0)], "Gitstate-Move-")
		for _, tr := range storage.Trailers(got) {
			if hidden[tr] && !authorsOwn {
				t.Fatalf("RedactMessage(%q) = %q: still has %s: %s", msg, got, tr.Key, tr.Value)
			}
		}
		if len(hidden) == 0 && got != msg {
			t.Fatalf("nothing to hide in %q, yet it became %q", msg, got)
		}
		if all := watch.RedactMessage(msg, func(string) bool { return true }); all != msg {
			t.Fatalf("with every key visible: %q became %q", msg, all)
		}
	})
}
