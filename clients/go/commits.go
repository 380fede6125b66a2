package client

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
)

// PutOp returns the op of a batch that sets key to value. A value that is
// valid UTF-8 is sent as "value", any other as "value_base64".
func PutOp(key string, value []byte) wire.Op {
	op := wire.Op{Op: "put", Key: key}
	if utf8.Valid(value) {
		s := string(value)
		op.Value = &s
	} else {
		s := base64.StdEncoding.EncodeToString(value)
		op.ValueBase64 = &s
	}
	return op
}

// DeleteOp returns the op of a batch that deletes key.
func DeleteOp(key string) wire.Op { return wire.Op{Op: "delete", Key: key} }

// MoveOp returns the op of a batch that moves the value at from to to. The
// history records it as a move, not as a delete and a put.
func MoveOp(from, to string) wire.Op { return wire.Op{Op: "move", From: from, To: to} }

// IfETag returns the precondition that key has the value with this etag.
func IfETag(key, etag string) wire.Precondition {
	return wire.Precondition{Key: key, ETag: unquoteETag(etag)}
}

// IfAbsent returns the precondition that key does not exist.
func IfAbsent(key string) wire.Precondition { return wire.Precondition{Key: key, Absent: true} }

// Commit applies a batch of ops in one atomic commit
// (POST /v1/repos/{repo}/commits), or changes nothing: a failed
// precondition gives gitstate.ErrPreconditionFailed naming the keys (in
// the error's Keys), and with BaseRevision set a key changed since then
// gives gitstate.ErrChangedSinceBase.
func (r *Repo) Commit(ctx context.Context, req *wire.CommitRequest) (*wire.CommitResult, error) {
	return r.kv.commit(ctx, req)
}

// LogOptions select the commits of Log.
type LogOptions struct {
	// After continues a listing: the Next of the previous page. Commits
	// older than this revision are listed.
	After int64
	// Limit is the page size (0: the server's default, 100; at most 1,000).
	Limit int
	// Key keeps the commits that changed this key.
	Key string
	// Prefix keeps the commits that changed a key under it, and their
	// changes under it.
	Prefix string
}

// Log lists commits of main, newest first (GET /v1/repos/{repo}/commits).
// The list's Next, when not 0, is the After of the following page. opts may
// be nil.
func (r *Repo) Log(ctx context.Context, opts *LogOptions) (*wire.CommitList, error) {
	if opts == nil {
		opts = &LogOptions{}
	}
	q := url.Values{}
	if opts.After > 0 {
		q.Set("after", strconv.FormatInt(opts.After, 10))
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Key != "" {
		q.Set("key", opts.Key)
	}
	if opts.Prefix != "" {
		q.Set("prefix", opts.Prefix)
	}
	var out wire.CommitList
	if err := r.c.do(ctx, &request{method: http.MethodGet, path: repoPath(r.name, "/commits"), query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CommitInfo describes one revision: a number or a commit id
// (GET /v1/repos/{repo}/commits/{rev}).
func (r *Repo) CommitInfo(ctx context.Context, rev wire.Rev) (*wire.CommitInfo, error) {
	if rev == "" {
		return nil, &gitstate.Error{Kind: gitstate.KindInvalid, Code: gitstate.ErrInvalidRevision.Code, Message: "revision must not be empty"}
	}
	var out wire.CommitInfo
	path := repoPath(r.name, "/commits/"+url.PathEscape(string(rev)))
	if err := r.c.do(ctx, &request{method: http.MethodGet, path: path}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevertOptions are the options of Revert.
type RevertOptions struct {
	// Force reverts even when keys the revision changed have changed since.
	Force bool
	// Message is the commit message.
	Message string
}

// Revert makes a new commit undoing revision rev
// (POST /v1/repos/{repo}/revert). When keys rev changed have changed since,
// it fails with a conflict naming them, unless opts.Force. opts may be nil.
func (r *Repo) Revert(ctx context.Context, rev wire.Rev, opts *RevertOptions) (*wire.CommitResult, error) {
	if opts == nil {
		opts = &RevertOptions{}
	}
	req := wire.RevertRequest{Revision: rev, Force: opts.Force, Message: opts.Message}
	var out wire.CommitResult
	if err := r.c.doJSON(ctx, http.MethodPost, repoPath(r.name, "/revert"), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RollbackOptions are the options of Rollback.
type RollbackOptions struct {
	// Prefix limits the rollback to the keys under it.
	Prefix string
	// Message is the commit message.
	Message string
}

// Rollback makes a new commit that sets the state (under opts.Prefix)
// back to what it was at revision to (POST /v1/repos/{repo}/rollback).
// opts may be nil.
func (r *Repo) Rollback(ctx context.Context, to wire.Rev, opts *RollbackOptions) (*wire.CommitResult, error) {
	if opts == nil {
		opts = &RollbackOptions{}
	}
	req := wire.RollbackRequest{To: to, Prefix: opts.Prefix, Message: opts.Message}
	var out wire.CommitResult
	if err := r.c.doJSON(ctx, http.MethodPost, repoPath(r.name, "/rollback"), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
