package storage

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// A revision's record in the index ('r' keys) is binary: a version byte,
// then
//
//	uvarint revision
//	id      commit
//	uvarint parents, then an id each
//	string  author, email, message
//	varint  time (Unix seconds)
//	uvarint changes, then for each: string key, op, from; id etag
//
// where a string is a uvarint length and its bytes, and an id a uvarint
// length and the bytes its hex stands for (none for an empty etag). It
// replaced JSON (index format 1), whose records were twice the size: every
// commit writes one, and the index's memtable flushes and compactions
// rewrite them.
const revRecordVersion = 1

// errBadRevRecord is the error of a malformed revision record.
var errBadRevRecord = errors.New("malformed revision record")

// appendRevRecord appends ri's record to b.
func appendRevRecord(b []byte, ri *RevisionInfo) ([]byte, error) {
	b = append(b, revRecordVersion)
	b = binary.AppendUvarint(b, uint64(ri.Revision))
	var err error
	if b, err = appendID(b, ri.Commit); err != nil {
		return nil, err
	}
	b = binary.AppendUvarint(b, uint64(len(ri.Parents)))
	for _, p := range ri.Parents {
		if b, err = appendID(b, p); err != nil {
			return nil, err
		}
	}
	b = appendString(b, ri.Author)
	b = appendString(b, ri.Email)
	b = appendString(b, ri.Message)
	b = binary.AppendVarint(b, ri.Time)
	b = binary.AppendUvarint(b, uint64(len(ri.Changes)))
	for i := range ri.Changes {
		c := &ri.Changes[i]
		b = appendString(b, c.Key)
		b = appendString(b, c.Op)
		b = appendString(b, c.From)
		if b, err = appendID(b, c.ETag); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendID appends the hex id s as the bytes it stands for. s must be
// lower-case hex, as Hash.String gives it, so that it reads back the same.
func appendID(b []byte, s string) ([]byte, error) {
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return nil, fmt.Errorf("revision record: id %q is not lower-case hex", s)
		}
	}
	if len(s)%2 != 0 {
		return nil, fmt.Errorf("revision record: id %q has an odd length", s)
	}
	b = binary.AppendUvarint(b, uint64(len(s)/2))
	return hex.AppendDecode(b, []byte(s))
}

// revReader decodes a revision record, keeping its first error.
type revReader struct {
	b   []byte
	err error
}

func (r *revReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadRevRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *revReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errBadRevRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *revReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errBadRevRecord
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *revReader) string() string { return string(r.bytes()) }

func (r *revReader) id() string { return hex.EncodeToString(r.bytes()) }

// count reads a count of items each taking at least min bytes: no more
// than the record can hold.
func (r *revReader) count(min int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/min) {
		r.err = errBadRevRecord
	}
	if r.err != nil {
		return 0
	}
	return int(n)
}

// revRecordCommit returns the commit of a record appendRevRecord made for
// revision rev, reading nothing past it.
func revRecordCommit(b []byte, rev int64) (Hash, error) {
	if len(b) == 0 || b[0] != revRecordVersion {
		return ZeroHash, errBadRevRecord
	}
	r := &revReader{b: b[1:]}
	got := r.uvarint()
	id := r.bytes()
	var h Hash
	if r.err != nil || got != uint64(rev) || len(id) != len(h) {
		return ZeroHash, errBadRevRecord
	}
	copy(h[:], id)
	return h, nil
}

// decodeRevRecord decodes a record appendRevRecord made.
func decodeRevRecord(b []byte) (*RevisionInfo, error) {
	if len(b) == 0 || b[0] != revRecordVersion {
		return nil, errBadRevRecord
	}
	r := &revReader{b: b[1:]}
	ri := &RevisionInfo{}
	rev := r.uvarint()
	if rev > 1<<62 {
		r.err = errBadRevRecord
	}
	ri.Revision = int64(rev)
	ri.Commit = r.id()
	ri.Parents = make([]string, r.count(1))
	for i := range ri.Parents {
		ri.Parents[i] = r.id()
	}
	ri.Author = r.string()
	ri.Email = r.string()
	ri.Message = r.string()
	ri.Time = r.varint()
	ri.Changes = make([]KeyChange, r.count(4))
	for i := range ri.Changes {
		c := &ri.Changes[i]
		c.Key = r.string()
		c.Op = r.string()
		c.From = r.string()
		c.ETag = r.id()
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errBadRevRecord
	}
	if r.err != nil {
		return nil, r.err
	}
	return ri, nil
}
