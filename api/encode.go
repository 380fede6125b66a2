package api

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
)

// appendList appends the JSON answer to a listing (a wire.ListResponse,
// and a newline, as json.Encoder writes it), with the items keep allows
// and their values when values is set. A listing of 1,000 keys encoded by
// reflection through []wire.ListItem spent 19% of its server CPU in
// encoding/json (33% with values), besides a copy of every value as a
// string; TestAppendListMatchesEncoder and FuzzAppendList compare the two.
func appendList(b []byte, res *storage.ListResult, values bool, keep func(key string) bool) []byte {
	b = append(b, `{"revision":`...)
	b = strconv.AppendInt(b, res.Revision, 10)
	b = append(b, `,"items":[`...)
	first := true
	for i := range res.Items {
		it := &res.Items[i]
		if !keep(it.Key) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendListItem(b, it, values)
	}
	b = append(b, `],"next":`...)
	b = wire.AppendString(b, res.Next)
	return append(b, "}\n"...)
}

// appendListItem appends it as json.Marshal encodes its wire.ListItem: a
// value that is valid UTF-8 as a string, any other in base64.
func appendListItem(b []byte, it *storage.ListItem, values bool) []byte {
	b = append(b, `{"key":`...)
	b = wire.AppendString(b, it.Key)
	b = append(b, `,"etag":"`...)
	b = hex.AppendEncode(b, it.Blob[:])
	b = append(b, `","size":`...)
	b = strconv.AppendInt(b, it.Size, 10)
	b = append(b, `,"mod_revision":`...)
	b = strconv.AppendInt(b, it.ModRevision, 10)
	if values {
		if utf8.Valid(it.Value) {
			b = append(b, `,"value":`...)
			b = wire.AppendString(b, it.Value)
		} else {
			b = append(b, `,"value_base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, it.Value)
			b = append(b, '"')
		}
	}
	return append(b, '}')
}

// listSize estimates the bytes of res's answer, to size its buffer once.
func listSize(res *storage.ListResult, values bool) int {
	n := 64 + len(res.Next)
	for i := range res.Items {
		n += 100 + len(res.Items[i].Key)
		if values {
			n += len(res.Items[i].Value) * 9 / 8
		}
	}
	return n
}

// writeResult answers a write with r, written as json.Encoder writes it
// (TestAppendWriteResult): every PUT answers with one, and encoding it by
// reflection was ~2% of the server's CPU under 64 writers.
func writeResult(w http.ResponseWriter, r *wire.WriteResult) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	var buf [192]byte
	_, _ = w.Write(appendWriteResult(buf[:0], r))
}

// appendWriteResult appends r and a newline, as json.Encoder writes them.
func appendWriteResult(b []byte, r *wire.WriteResult) []byte {
	b = append(b, `{"revision":`...)
	b = strconv.AppendInt(b, r.Revision, 10)
	b = append(b, `,"commit":`...)
	b = wire.AppendString(b, r.Commit)
	if r.ETag != "" {
		b = append(b, `,"etag":`...)
		b = wire.AppendString(b, r.ETag)
	}
	b = append(b, `,"changed":`...)
	b = strconv.AppendBool(b, r.Changed)
	return append(b, "}\n"...)
}
