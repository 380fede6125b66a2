package api

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/storage"
)

// Query parameter limits.
const (
	maxListLimit   = 10000
	maxCommitLimit = 1000
)

// keyOf returns the key in the path, unescaped and validated.
func keyOf(r *http.Request) (string, error) {
	raw := pathVar(r, "key")
	key, err := url.PathUnescape(raw)
	if err != nil {
		return "", gitstate.Errorf(gitstate.KindInvalid, "invalid_key", "key is not a valid escaped path: %q", raw)
	}
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	if info := infoOf(r); info != nil {
		info.keys = []string{key}
	}
	return key, nil
}

// headRev stands for "no ?rev= given": read at head.
const headRev = -1

// revParam resolves the ?rev= parameter (headRev when absent; 0 is the
// empty state before the first commit). A transaction has no revisions of
// its own.
func (t *target) revParam(r *http.Request) (int64, error) {
	q := r.URL.Query()
	if !q.Has("rev") {
		return headRev, nil
	}
	if t.inTxn() {
		return 0, badRequest("rev is not supported inside a transaction")
	}
	return t.repo.ResolveRevision(q.Get("rev"))
}

func etag(h storage.Hash) string { return `"` + h.String() + `"` }

// parseETag parses one entity tag ("<hex>", W/ prefix tolerated).
func parseETag(v string) (storage.Hash, bool) {
	v = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), "W/"))
	v = strings.ToLower(strings.Trim(v, `"`))
	h, ok := storage.ParseHash(v)
	// No value has the zero id; taking it would turn the check off.
	return h, ok && !h.IsZero()
}

// preconditionsOf turns If-Match / If-None-Match into storage preconditions.
func preconditionsOf(r *http.Request, key string) ([]storage.Precondition, error) {
	var out []storage.Precondition
	if im := r.Header.Get("If-Match"); im != "" {
		if strings.Contains(im, ",") {
			return nil, badRequest("If-Match with several entity tags is not supported")
		}
		if strings.TrimSpace(im) == "*" {
			out = append(out, storage.Precondition{Key: key, Exists: true})
		} else if h, ok := parseETag(im); ok {
			out = append(out, storage.Precondition{Key: key, ETag: h})
		} else {
			// No value can have a malformed entity tag: the precondition
			// cannot hold. The tag is quoted once, as the header quotes
			// it, whether or not the client did.
			tag := strings.Trim(strings.TrimPrefix(strings.TrimSpace(im), "W/"), `"`)
			why := "an entity tag is a value's etag, 40 hex digits"
			if _, ok := storage.ParseHash(strings.ToLower(tag)); ok {
				why = "no value has the zero id as its etag" // well formed, and all zeros
			}
			return nil, gitstate.Errorf(gitstate.KindPrecondition, "precondition_failed",
				"If-Match %q matches no value: %s", tag, why).WithKeys(key)
		}
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if strings.TrimSpace(inm) != "*" {
			return nil, badRequest("If-None-Match on a write must be *")
		}
		out = append(out, storage.Precondition{Key: key, Absent: true})
	}
	return out, nil
}

// author returns the commit author for the request's principal.
func (s *Server) author(r *http.Request) storage.Signature {
	name := "anonymous"
	if p := PrincipalOf(r); p != nil && p.Name != "" {
		name = p.Name
	}
	email := s.opts.CommitEmail(name)
	if p := PrincipalOf(r); p != nil && p.Email != "" {
		email = p.Email
	}
	return storage.Signature{Name: name, Email: email}
}

// batchFor returns a batch with the request's author, message and trailers.
func (s *Server) batchFor(r *http.Request, message string) storage.Batch {
	return storage.Batch{
		Author:   s.author(r),
		Message:  message,
		Trailers: []storage.Trailer{{Key: storage.TrailerRequestID, Value: requestID(r)}},
	}
}

func (s *Server) getKey(w http.ResponseWriter, r *http.Request) {
	key, err := keyOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.targetOf(r, false, key)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rev, err := t.revParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := t.get(r.Context(), key, rev)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeValue(w, r, v)
}

// writeValue answers a read of a value, with its headers and 304 when the
// client has it.
func writeValue(w http.ResponseWriter, r *http.Request, v *storage.Value) {
	// Headers are set in their canonical form directly: Header.Set would
	// canonicalize each name again on this, the hottest, path.
	h := w.Header()
	tag := etag(v.Blob)
	h["Etag"] = []string{tag}
	if v.Revision > 0 || !v.Commit.IsZero() {
		h[wire.HeaderRevision] = []string{strconv.FormatInt(v.Revision, 10)}
		h[wire.HeaderCommit] = []string{v.Commit.String()}
	}
	if v.ModRevision > 0 {
		h[wire.HeaderModRevision] = []string{strconv.FormatInt(v.ModRevision, 10)}
	}
	if v.Mode != storage.ModeFile {
		h["X-Gitstate-Mode"] = []string{strconv.FormatUint(uint64(v.Mode), 8)}
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, v.Blob) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Type"] = []string{"application/octet-stream"}
	h["Content-Length"] = []string{strconv.Itoa(len(v.Data))}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(v.Data)
	}
}

func etagMatches(header string, h storage.Hash) bool {
	for _, part := range strings.Split(header, ",") {
		if strings.TrimSpace(part) == "*" {
			return true
		}
		if t, ok := parseETag(part); ok && t == h {
			return true
		}
	}
	return false
}

func (s *Server) putKey(w http.ResponseWriter, r *http.Request) {
	key, err := keyOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.targetOf(r, true, key)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pre, err := preconditionsOf(r, key)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := readBody(r, s.opts.MaxValueSize)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b := s.batchFor(r, r.URL.Query().Get("message"))
	b.Ops = []storage.Op{{Kind: storage.OpPut, Key: key, Value: body}}
	b.Preconditions = pre
	s.noteWrite(r, t, &b)
	a := s.answerWrite(w, r, t, &b, putAnswer(storage.HashObject(storage.BlobObject, body).String()))
	res, err := t.write(r.Context(), &b)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a.finish(res)
}

func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request) {
	key, err := keyOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	prefix := false
	if v := r.URL.Query().Get("prefix"); v != "" {
		if prefix, err = strconv.ParseBool(v); err != nil {
			s.writeError(w, r, badRequest("prefix must be true or false"))
			return
		}
	}
	t, err := s.targetOf(r, true, key)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if prefix && !PrincipalOf(r).CoversPrefix(key+"/") {
		s.writeError(w, r, forbidden("prefix:"+key+"/", "token may not delete every key under %q", key+"/"))
		return
	}
	pre, err := preconditionsOf(r, key)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b := s.batchFor(r, r.URL.Query().Get("message"))
	b.Preconditions = pre
	if prefix {
		b.Ops = []storage.Op{{Kind: storage.OpDeletePrefix, Key: key, MustExist: true}}
	} else {
		b.Ops = []storage.Op{{Kind: storage.OpDelete, Key: key, MustExist: true}}
	}
	s.noteWrite(r, t, &b)
	a := s.answerWrite(w, r, t, &b, deleteAnswer)
	res, err := t.write(r.Context(), &b)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a.finish(res)
}

// intParam parses an optional integer query parameter within [lo, hi].
func intParam(r *http.Request, name string, def, lo, hi int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("%s must be an integer from %d to %d", name, lo, hi)
	}
	return n, nil
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("%s must be true or false", name)
	}
	return b, nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	t, err := s.targetOf(r, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	prefix, after := q.Get("prefix"), q.Get("after")
	if err := storage.ValidatePrefix(prefix); err != nil {
		s.writeError(w, r, err)
		return
	}
	limit, err := intParam(r, "limit", storage.DefaultListLimit, 1, maxListLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	values, err := boolParam(r, "values")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rev, err := t.revParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := PrincipalOf(r)
	opts := storage.ListOptions{Prefix: prefix, After: after, Limit: int(limit), Values: values, Revision: rev}
	// A token limited to one prefix asking for a wider one lists its own.
	if len(p.Prefixes) == 1 && strings.HasPrefix(p.Prefixes[0], prefix) {
		opts.Prefix = p.Prefixes[0]
	}
	res, err := t.list(r.Context(), opts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body := appendList(make([]byte, 0, listSize(res, values)), res, values, p.CanKey)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
