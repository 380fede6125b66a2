package client

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
)

// Value is a key's value as read by Get or Stat, with the metadata the
// server sends in headers.
type Value struct {
	Key string
	// Data is the value's bytes (nil for Stat and when NotModified). It
	// belongs to the caller.
	Data []byte
	// ETag is the value's blob id, without quotes: what PutOptions.IfMatch
	// and GetOptions.IfNoneMatch take.
	ETag string
	// Size is the value's length in bytes.
	Size int64
	// Revision and Commit say which revision of main was read. In a
	// transaction Revision is 0 (a branch has no revision numbers) and
	// Commit is the head of the transaction's branch that was read.
	Revision int64
	Commit   string
	// ModRevision is the revision that last changed the key (0 in a
	// transaction).
	ModRevision int64
	// NotModified is set when GetOptions.IfNoneMatch matched: the server
	// answered 304 and Data is nil.
	NotModified bool
}

// GetOptions are the options of Get and Stat. The zero value reads at head.
type GetOptions struct {
	// Rev reads at a past revision: a number or a commit id. A
	// transaction is read at its head only: there the server refuses Rev
	// (gitstate.ErrInvalidRequest).
	Rev wire.Rev
	// IfNoneMatch is an etag (or "*"): when the value's etag matches, Get
	// returns a Value with NotModified set and no Data.
	IfNoneMatch string
}

// PutOptions are the options of Put. The zero value writes unconditionally
// with a generated commit message.
type PutOptions struct {
	// IfMatch is the etag the key must have (or "*": the key must exist),
	// else the write fails with gitstate.ErrPreconditionFailed.
	IfMatch string
	// Create writes only if the key is absent (If-None-Match: *), else the
	// write fails with gitstate.ErrPreconditionFailed.
	Create bool
	// Message is the commit message.
	Message string
}

// DeleteOptions are the options of Delete.
type DeleteOptions struct {
	// IfMatch is the etag the key must have, else the delete fails with
	// gitstate.ErrPreconditionFailed.
	IfMatch string
	// Prefix deletes every key under key + "/" in one commit.
	Prefix bool
	// Message is the commit message.
	Message string
}

// ListOptions select the keys of List, Pages, Items and ListAll.
type ListOptions struct {
	// Prefix keeps the keys that start with it ("apps/web/").
	Prefix string
	// After keeps the keys that sort after it: the Next of a previous page.
	After string
	// Limit is the page size (0: the server's default, 1,000; at most
	// 10,000).
	Limit int
	// Values asks for each key's value (ListItem.Value, or ValueBase64 for
	// bytes that are not UTF-8).
	Values bool
	// Rev lists a past revision: a number or a commit id (empty: head).
	// A transaction is listed at its head only: there the server refuses
	// Rev (gitstate.ErrInvalidRequest).
	Rev wire.Rev
}

// Get reads key (GET /v1/repos/{repo}/kv/{key}). A missing key gives
// gitstate.ErrKeyNotFound. opts may be nil.
func (r *Repo) Get(ctx context.Context, key string, opts *GetOptions) (*Value, error) {
	return r.kv.read(ctx, http.MethodGet, key, opts)
}

// Stat is Get without the value (HEAD /v1/repos/{repo}/kv/{key}): the
// etag, size and revisions. A HEAD response has no body, so a failed Stat's
// error has the code of its status's kind ("not_found" for a missing key or
// repo alike) and no message from the server.
func (r *Repo) Stat(ctx context.Context, key string, opts *GetOptions) (*Value, error) {
	return r.kv.read(ctx, http.MethodHead, key, opts)
}

// Put sets key to value in one commit (PUT /v1/repos/{repo}/kv/{key}).
// Writing the value the key already has makes no commit (Changed false).
// opts may be nil.
func (r *Repo) Put(ctx context.Context, key string, value []byte, opts *PutOptions) (*wire.WriteResult, error) {
	return r.kv.put(ctx, key, value, opts)
}

// Delete removes key, or with Prefix every key under it, in one commit
// (DELETE /v1/repos/{repo}/kv/{key}). A missing key gives
// gitstate.ErrKeyNotFound. opts may be nil.
func (r *Repo) Delete(ctx context.Context, key string, opts *DeleteOptions) (*wire.DeleteResult, error) {
	return r.kv.delete(ctx, key, opts)
}

// List reads one page of keys in key order (GET /v1/repos/{repo}/kv). The
// page's Next, when not empty, is the After of the following page; read it
// at the page's Revision to stay on one snapshot (Pages does both). opts may
// be nil.
func (r *Repo) List(ctx context.Context, opts *ListOptions) (*wire.ListResponse, error) {
	return r.kv.list(ctx, opts)
}

// Pages returns an iterator over every page of a listing. The first page is
// read at opts.Rev (head when empty) and every following one at the
// revision the first was read at, so the pages together are one consistent
// snapshot even while others write. Iteration stops after the first error,
// which is yielded with a nil page. opts may be nil.
func (r *Repo) Pages(ctx context.Context, opts *ListOptions) iter.Seq2[*wire.ListResponse, error] {
	return r.kv.pages(ctx, opts)
}

// Items returns an iterator over every key of a listing, one consistent
// snapshot as with Pages. Iteration stops after the first error, which is
// yielded with a zero item. opts may be nil.
func (r *Repo) Items(ctx context.Context, opts *ListOptions) iter.Seq2[wire.ListItem, error] {
	return r.kv.items(ctx, opts)
}

// ListAll reads a listing to its end, or to maxItems keys when maxItems > 0, as one
// consistent snapshot (see Pages), and returns it as one response: Revision
// is the snapshot's, Next is empty when every key was read and otherwise the
// After that continues the listing. opts may be nil.
func (r *Repo) ListAll(ctx context.Context, opts *ListOptions, maxItems int) (*wire.ListResponse, error) {
	return r.kv.listAll(ctx, opts, maxItems)
}

// keys is the key-value API under one path prefix: main's
// (/v1/repos/{repo}) or a transaction's (/v1/repos/{repo}/txns/{id}). Repo
// and Txn each hold one, so that every key-value call has one
// implementation, whichever branch it reads or writes.
type keys struct {
	c *Client
	// base is the escaped path prefix, without a trailing slash.
	base string
	// txn is set on a transaction's branch. A branch has no revision
	// numbers: reads answer revision 0, and the pages of a listing cannot
	// be pinned to the first one's revision.
	txn bool
	// err, when set, is returned by every call: the handle names nothing
	// (a transaction without an id).
	err error
}

// path returns the escaped path of a route under the prefix.
func (k *keys) path(rest string) string { return k.base + rest }

func (k *keys) read(ctx context.Context, method, key string, opts *GetOptions) (*Value, error) {
	if opts == nil {
		opts = &GetOptions{}
	}
	if err := k.check(key); err != nil {
		return nil, err
	}
	req := &request{method: method, path: k.path("/kv/" + escapeKey(key))}
	if opts.Rev != "" {
		req.query = url.Values{"rev": {string(opts.Rev)}}
	}
	if opts.IfNoneMatch != "" {
		req.header = http.Header{"If-None-Match": {quoteETag(opts.IfNoneMatch)}}
	}
	resp, err := k.c.send(ctx, req)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp)
	switch {
	case resp.StatusCode == http.StatusNotModified:
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
	default:
		return nil, errorOf(resp)
	}
	v := &Value{Key: key, ETag: unquoteETag(resp.Header.Get("ETag")), NotModified: resp.StatusCode == http.StatusNotModified}
	h := resp.Header
	v.Revision, _ = strconv.ParseInt(h.Get(wire.HeaderRevision), 10, 64)
	v.Commit = h.Get(wire.HeaderCommit)
	v.ModRevision, _ = strconv.ParseInt(h.Get(wire.HeaderModRevision), 10, 64)
	if v.NotModified {
		return v, nil
	}
	v.Size = resp.ContentLength
	if method == http.MethodHead {
		return v, nil
	}
	if v.Data, err = io.ReadAll(resp.Body); err != nil {
		return nil, fmt.Errorf("gitstate client: read value of %q: %w", key, err)
	}
	v.Size = int64(len(v.Data))
	return v, nil
}

func (k *keys) put(ctx context.Context, key string, value []byte, opts *PutOptions) (*wire.WriteResult, error) {
	if opts == nil {
		opts = &PutOptions{}
	}
	if err := k.check(key); err != nil {
		return nil, err
	}
	if value == nil {
		value = []byte{}
	}
	req := &request{method: http.MethodPut, path: k.path("/kv/" + escapeKey(key)), body: value, header: http.Header{}}
	if opts.IfMatch != "" {
		req.header.Set("If-Match", quoteETag(opts.IfMatch))
	}
	if opts.Create {
		req.header.Set("If-None-Match", "*")
	}
	if opts.Message != "" {
		req.query = url.Values{"message": {opts.Message}}
	}
	var out wire.WriteResult
	if err := k.c.do(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (k *keys) delete(ctx context.Context, key string, opts *DeleteOptions) (*wire.DeleteResult, error) {
	if opts == nil {
		opts = &DeleteOptions{}
	}
	if err := k.check(key); err != nil {
		return nil, err
	}
	req := &request{method: http.MethodDelete, path: k.path("/kv/" + escapeKey(key)), query: url.Values{}}
	if opts.IfMatch != "" {
		req.header = http.Header{"If-Match": {quoteETag(opts.IfMatch)}}
	}
	if opts.Prefix {
		req.query.Set("prefix", "true")
	}
	if opts.Message != "" {
		req.query.Set("message", opts.Message)
	}
	var out wire.DeleteResult
	if err := k.c.do(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (k *keys) list(ctx context.Context, opts *ListOptions) (*wire.ListResponse, error) {
	if k.err != nil {
		return nil, k.err
	}
	if opts == nil {
		opts = &ListOptions{}
	}
	q := url.Values{}
	if opts.Prefix != "" {
		q.Set("prefix", opts.Prefix)
	}
	if opts.After != "" {
		q.Set("after", opts.After)
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Values {
		q.Set("values", "true")
	}
	if opts.Rev != "" {
		q.Set("rev", string(opts.Rev))
	}
	var out wire.ListResponse
	if err := k.c.do(ctx, &request{method: http.MethodGet, path: k.path("/kv"), query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (k *keys) pages(ctx context.Context, opts *ListOptions) iter.Seq2[*wire.ListResponse, error] {
	return func(yield func(*wire.ListResponse, error) bool) {
		err := k.walk(ctx, opts, 0, func(page *wire.ListResponse) bool { return yield(page, nil) })
		if err != nil {
			yield(nil, err)
		}
	}
}

func (k *keys) items(ctx context.Context, opts *ListOptions) iter.Seq2[wire.ListItem, error] {
	return func(yield func(wire.ListItem, error) bool) {
		err := k.walk(ctx, opts, 0, func(page *wire.ListResponse) bool {
			for _, it := range page.Items {
				if !yield(it, nil) {
					return false
				}
			}
			return true
		})
		if err != nil {
			yield(wire.ListItem{}, err)
		}
	}
}

func (k *keys) listAll(ctx context.Context, opts *ListOptions, maxItems int) (*wire.ListResponse, error) {
	out := &wire.ListResponse{Items: []wire.ListItem{}}
	err := k.walk(ctx, opts, maxItems, func(page *wire.ListResponse) bool {
		out.Revision = page.Revision
		out.Items = append(out.Items, page.Items...)
		out.Next = page.Next
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// walk reads the pages of a listing of keys (see walkPages).
func (k *keys) walk(ctx context.Context, opts *ListOptions, maxItems int, fn func(*wire.ListResponse) bool) error {
	o := ListOptions{}
	if opts != nil {
		o = *opts
	}
	return walkPages(pageCursor{Limit: o.Limit, After: o.After, Rev: o.Rev}, maxItems, !k.txn,
		func(c pageCursor) (*wire.ListResponse, error) {
			o.Limit, o.After, o.Rev = c.Limit, c.After, c.Rev
			return k.list(ctx, &o)
		},
		func(p *wire.ListResponse) (int, string, int64) { return len(p.Items), p.Next, p.Revision }, fn)
}

// pageCursor is where a listing's next page starts.
type pageCursor struct {
	Limit int
	After string
	Rev   wire.Rev
}

// walkPages reads the pages of a listing from c on, with fetch, until the
// last page, maxItems items (when maxItems > 0) or fn returning false; meta
// gives a page's item count, Next and revision. With pin (on main), every
// page after the first is read at the first one's revision, so that the
// listing is one snapshot; a transaction's branch has no revisions, so
// there each page is read at the branch's head.
func walkPages[P any](c pageCursor, maxItems int, pin bool, fetch func(pageCursor) (P, error),
	meta func(P) (n int, next string, rev int64), fn func(P) bool) error {
	pageSize := c.Limit
	if pageSize <= 0 {
		pageSize = defaultPageSize
	}
	read := 0
	for {
		if maxItems > 0 {
			c.Limit = min(pageSize, maxItems-read)
		}
		page, err := fetch(c)
		if err != nil {
			return err
		}
		n, next, rev := meta(page)
		read += n
		if !fn(page) || next == "" || (maxItems > 0 && read >= maxItems) {
			return nil
		}
		c.After = next
		// Revision 0 is the empty repo, which has no next page.
		if pin && rev > 0 {
			c.Rev = wire.RevNumber(rev)
		}
	}
}

// commit applies a batch in one commit (POST .../commits).
func (k *keys) commit(ctx context.Context, req *wire.CommitRequest) (*wire.CommitResult, error) {
	if k.err != nil {
		return nil, k.err
	}
	var out wire.CommitResult
	if err := k.c.doJSON(ctx, http.MethodPost, k.path("/commits"), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// check refuses a call on a handle that names nothing, and the empty key.
func (k *keys) check(key string) error {
	if k.err != nil {
		return k.err
	}
	return checkKey(key)
}

// defaultPageSize is the server's default page size.
const defaultPageSize = 1000

// checkKey refuses the empty key here: its URL would name the list route.
// Every other check is the server's.
func checkKey(key string) error {
	if key == "" {
		return &gitstate.Error{Kind: gitstate.KindInvalid, Code: gitstate.ErrInvalidKey.Code, Message: "key must not be empty"}
	}
	return nil
}

// quoteETag returns an entity tag as the HTTP headers take it: "*" and
// quoted or weak tags as they are, a bare blob id in quotes.
func quoteETag(t string) string {
	t = strings.TrimSpace(t)
	if t == "*" || strings.HasPrefix(t, `"`) || strings.HasPrefix(t, "W/") {
		return t
	}
	return `"` + t + `"`
}

// unquoteETag returns the blob id of an ETag header.
func unquoteETag(t string) string {
	return strings.Trim(strings.TrimPrefix(strings.TrimSpace(t), "W/"), `"`)
}

// ItemValue returns the value of a listed item (ListOptions.Values): its
// Value, or its ValueBase64 decoded.
func ItemValue(it wire.ListItem) ([]byte, error) {
	switch {
	case it.Value != nil:
		return []byte(*it.Value), nil
	case it.ValueBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*it.ValueBase64)
		if err != nil {
			return nil, fmt.Errorf("gitstate client: value of %q: %w", it.Key, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("gitstate client: %q was listed without its value", it.Key)
}
