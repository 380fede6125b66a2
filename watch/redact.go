package watch

import (
	"strings"

	"github.com/gitstate/gitstate/storage"
)

// Redact returns ri as a caller who may read only the keys see accepts
// sees it: without the changes it may not read, and without the names of
// keys it may not read. A move with one end outside becomes the change at
// the end inside: a put of its destination (its source left out) or a
// delete of its source (its destination left out); the commit message
// loses the trailers of such moves (RedactMessage). see nil accepts every
// key. ri is returned as it is when there is nothing to hide; otherwise a
// copy (sharing Parents) is, and ri is left untouched.
func Redact(ri *storage.RevisionInfo, see func(key string) bool) *storage.RevisionInfo {
	if see == nil {
		return ri
	}
	msg := RedactMessage(ri.Message, see)
	hide := msg != ri.Message
	for _, c := range ri.Changes {
		if !see(c.Key) || (c.From != "" && !see(c.From)) {
			hide = true
			break
		}
	}
	if !hide {
		return ri
	}
	out := *ri
	out.Message = msg
	out.Changes = make([]storage.KeyChange, 0, len(ri.Changes))
	for _, c := range ri.Changes {
		key, from := see(c.Key), c.From != "" && see(c.From)
		switch {
		case key && (c.From == "" || from):
			out.Changes = append(out.Changes, c)
		case key:
			out.Changes = append(out.Changes, storage.KeyChange{Key: c.Key, Op: "put", ETag: c.ETag})
		case from:
			out.Changes = append(out.Changes, storage.KeyChange{Key: c.From, Op: "delete"})
		}
	}
	return &out
}

// RedactMessage returns a commit message without the move trailers
// (Gitstate-Move-From and Gitstate-Move-To) that name a key see rejects:
// both trailers of such a move go, so that no half of a pair is left. The
// subject gitstate writes for a lone move ("move <from> to <to>") then
// becomes the change the caller sees of it ("put <to>" or "delete
// <from>"). Other trailers and the rest of the message are kept; see nil
// keeps everything.
func RedactMessage(msg string, see func(key string) bool) string {
	if see == nil || (!strings.Contains(msg, "\n"+storage.TrailerMoveFrom+": ") && !strings.Contains(msg, "\n"+storage.TrailerMoveTo+": ")) {
		return msg
	}
	ts := storage.Trailers(msg)
	drop := make([]bool, len(ts))
	hidden := false
	var subject, shown string // a move's subject, and what the caller sees of it
	for i := 0; i < len(ts); i++ {
		t := ts[i]
		if t.Key != storage.TrailerMoveFrom && t.Key != storage.TrailerMoveTo {
			continue
		}
		if t.Key == storage.TrailerMoveFrom && i+1 < len(ts) && ts[i+1].Key == storage.TrailerMoveTo {
			from, to := t.Value, ts[i+1].Value
			if !see(from) || !see(to) {
				drop[i], drop[i+1], hidden = true, true, true
				switch subject = "move " + from + " to " + to; {
				case see(to):
					shown = "put " + to
				case see(from):
					shown = "delete " + from
				default:
					shown = ""
				}
			}
			i++
			continue
		}
		if !see(t.Value) {
			drop[i], hidden = true, true
		}
	}
	if !hidden {
		return msg
	}
	body := strings.TrimRight(msg, "\n")
	head := body[:strings.LastIndex(body, "\n\n")]
	if first, rest, multi := strings.Cut(head, "\n"); shown != "" && first == subject {
		head = shown
		if multi {
			head += "\n" + rest
		}
	}
	var b strings.Builder
	b.WriteString(head)
	sep := "\n\n"
	for i, t := range ts {
		if drop[i] {
			continue
		}
		b.WriteString(sep)
		sep = "\n"
		b.WriteString(t.Key)
		b.WriteString(": ")
		b.WriteString(t.Value)
	}
	b.WriteString("\n")
	return b.String()
}
