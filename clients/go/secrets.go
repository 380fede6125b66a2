package client

import (
	"context"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gitstate/gitstate/api/wire"
)

// ListSecretsOptions select the secrets of ListSecrets, SecretItems and
// ListAllSecrets.
type ListSecretsOptions struct {
	// Prefix keeps the secrets whose key starts with it ("apps/web/").
	Prefix string
	// After keeps the secrets listed after this key: the Next of a
	// previous page.
	After string
	// Limit is the page size (0: the server's default, 1,000; at most
	// 10,000).
	Limit int
	// Rev lists a past revision: a number or a commit id (empty: head).
	// A transaction is listed at its head only: there the server refuses
	// Rev (gitstate.ErrInvalidRequest).
	Rev wire.Rev
}

// DeleteSecretOptions are the options of DeleteSecret.
type DeleteSecretOptions struct {
	// IfMatch is the etag the secret's encrypted document must have (or
	// "*": the secret must exist), else the delete fails with
	// gitstate.ErrPreconditionFailed.
	IfMatch string
	// Message is the commit message.
	Message string
}

// RotateSecretsOptions are the options of RotateSecrets. The zero value
// gives every secret of the repo a new data key.
type RotateSecretsOptions struct {
	// Prefix limits the rotation to the secrets whose key starts with it.
	Prefix string
	// KeepDataKey keeps each secret's data key and only encrypts it to the
	// current recipients (SOPS's updatekeys); secrets whose recipients are
	// already the rules' are left as they are. By default every secret
	// gets a new data key, so that a recipient removed from the rules
	// cannot decrypt the new versions.
	KeepDataKey bool
	// Message is the commit message.
	Message string
}

// GetSecret reads the plaintext of secret key
// (GET /v1/repos/{repo}/secrets/{key}; scope secrets:read). The Value's
// Data is the plaintext, byte for byte as it was written (for a document
// the sops CLI made from a JSON file, the decrypted JSON document); its
// ETag is the encrypted document's blob id, the one PutOptions.IfMatch and
// DeleteSecretOptions.IfMatch take. Every read is audited. A missing
// secret gives gitstate.ErrKeyNotFound. opts may be nil.
//
// Data belongs to the caller, who may clear it once done with it.
func (r *Repo) GetSecret(ctx context.Context, key string, opts *GetOptions) (*Value, error) {
	return r.kv.getSecret(ctx, key, opts)
}

// PutSecret encrypts value (1 byte up to the server's value limit) and
// writes it as secret key in one commit
// (PUT /v1/repos/{repo}/secrets/{key}; scope secrets:write). Encryption is
// randomized, so the server decrypts the current value to recognize a
// re-put: writing the plaintext the secret already has makes no commit
// (Changed false). The result's ETag is the encrypted document's. Keys
// under a protected prefix cannot be written on main (code
// "protected_prefix"): write them in a transaction. opts may be nil.
func (r *Repo) PutSecret(ctx context.Context, key string, value []byte, opts *PutOptions) (*wire.WriteResult, error) {
	return r.kv.putSecret(ctx, key, value, opts)
}

// DeleteSecret removes secret key in one commit
// (DELETE /v1/repos/{repo}/secrets/{key}; scope secrets:write). A missing
// secret gives gitstate.ErrKeyNotFound. opts may be nil.
func (r *Repo) DeleteSecret(ctx context.Context, key string, opts *DeleteSecretOptions) (*wire.DeleteResult, error) {
	return r.kv.deleteSecret(ctx, key, opts)
}

// ListSecrets reads one page of secrets (GET /v1/repos/{repo}/secrets;
// scope secrets:read or read): their keys, the etags of their encrypted
// documents and the revisions that last changed them, never their values.
// The page's Next, when not empty, is the After of the following page;
// read it at the page's Revision to stay on one snapshot (SecretItems and
// ListAllSecrets do both). A page without secrets has Revision 0. opts may
// be nil.
func (r *Repo) ListSecrets(ctx context.Context, opts *ListSecretsOptions) (*wire.SecretList, error) {
	return r.kv.listSecrets(ctx, opts)
}

// SecretItems returns an iterator over every secret of a listing. The
// first page is read at opts.Rev (head when empty) and every following one
// at the revision the first was read at: one consistent snapshot even
// while others write. Iteration stops after the first error, which is
// yielded with a zero item. opts may be nil.
func (r *Repo) SecretItems(ctx context.Context, opts *ListSecretsOptions) iter.Seq2[wire.SecretItem, error] {
	return r.kv.secretItems(ctx, opts)
}

// ListAllSecrets reads a listing of secrets to its end, or to maxItems
// secrets when maxItems > 0, as one consistent snapshot (see SecretItems),
// and returns it as one response: Revision is the snapshot's, Next is
// empty when every secret was read and otherwise the After that continues
// the listing. opts may be nil.
func (r *Repo) ListAllSecrets(ctx context.Context, opts *ListSecretsOptions, maxItems int) (*wire.SecretList, error) {
	return r.kv.listAllSecrets(ctx, opts, maxItems)
}

// RotateSecrets re-encrypts every secret under opts.Prefix, in one commit,
// to the recipients the repo's .gitstate/sops.yaml gives it now
// (POST /v1/repos/{repo}/secrets/rotate; scope secrets:write). The
// result's Keys lists the secrets re-encrypted; Changed is false when
// there was nothing to do. Secrets the token may not write are skipped;
// keys under a protected prefix cannot be rotated on main (code
// "protected_prefix"): rotate them in a transaction. A secret the server
// cannot decrypt fails the whole rotation with code
// "secret_not_decryptable", naming it in the error's Keys. opts may be
// nil.
func (r *Repo) RotateSecrets(ctx context.Context, opts *RotateSecretsOptions) (*wire.RotateResult, error) {
	return r.kv.rotateSecrets(ctx, opts)
}

// GetSecret reads the plaintext of secret key at the transaction's head
// (GET /v1/repos/{repo}/txns/{id}/secrets/{key}; scope secrets:read), as
// Repo.GetSecret does on main. opts.Rev is refused. opts may be nil.
func (t *Txn) GetSecret(ctx context.Context, key string, opts *GetOptions) (*Value, error) {
	return t.kv.getSecret(ctx, key, opts)
}

// PutSecret encrypts value and writes it as secret key in one commit on
// the transaction's branch (PUT /v1/repos/{repo}/txns/{id}/secrets/{key};
// scopes secrets:write and txn), as Repo.PutSecret does on main: it stays
// invisible on main until Repo.CommitTxn. Protected prefixes do not apply;
// the rules of the branch's own .gitstate/sops.yaml do. opts may be nil.
func (t *Txn) PutSecret(ctx context.Context, key string, value []byte, opts *PutOptions) (*wire.WriteResult, error) {
	return t.kv.putSecret(ctx, key, value, opts)
}

// DeleteSecret removes secret key in one commit on the transaction's
// branch (DELETE /v1/repos/{repo}/txns/{id}/secrets/{key}; scopes
// secrets:write and txn). opts may be nil.
func (t *Txn) DeleteSecret(ctx context.Context, key string, opts *DeleteSecretOptions) (*wire.DeleteResult, error) {
	return t.kv.deleteSecret(ctx, key, opts)
}

// ListSecrets reads one page of secrets at the transaction's head
// (GET /v1/repos/{repo}/txns/{id}/secrets). Its Revision is 0. opts may
// be nil.
func (t *Txn) ListSecrets(ctx context.Context, opts *ListSecretsOptions) (*wire.SecretList, error) {
	return t.kv.listSecrets(ctx, opts)
}

// SecretItems returns an iterator over every secret of a listing of the
// transaction. Each page is read at the branch's head when it is read.
// Iteration stops after the first error, which is yielded with a zero
// item. opts may be nil.
func (t *Txn) SecretItems(ctx context.Context, opts *ListSecretsOptions) iter.Seq2[wire.SecretItem, error] {
	return t.kv.secretItems(ctx, opts)
}

// ListAllSecrets reads a listing of the transaction's secrets to its end,
// or to maxItems secrets when maxItems > 0, read as with SecretItems. opts
// may be nil.
func (t *Txn) ListAllSecrets(ctx context.Context, opts *ListSecretsOptions, maxItems int) (*wire.SecretList, error) {
	return t.kv.listAllSecrets(ctx, opts, maxItems)
}

// RotateSecrets re-encrypts every secret under opts.Prefix in one commit
// on the transaction's branch
// (POST /v1/repos/{repo}/txns/{id}/secrets/rotate; scopes secrets:write
// and txn), as Repo.RotateSecrets does on main, to the recipients of the
// branch's own .gitstate/sops.yaml. Protected prefixes do not apply. opts
// may be nil.
func (t *Txn) RotateSecrets(ctx context.Context, opts *RotateSecretsOptions) (*wire.RotateResult, error) {
	return t.kv.rotateSecrets(ctx, opts)
}

// secretPath returns the escaped path of secret key's route.
func (k *keys) secretPath(key string) string { return k.path("/secrets/" + escapeKey(key)) }

func (k *keys) getSecret(ctx context.Context, key string, opts *GetOptions) (*Value, error) {
	if opts == nil {
		opts = &GetOptions{}
	}
	if err := k.check(key); err != nil {
		return nil, err
	}
	req := &request{method: http.MethodGet, path: k.secretPath(key)}
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
	h := resp.Header
	v := &Value{Key: key, ETag: unquoteETag(h.Get("ETag")), NotModified: resp.StatusCode == http.StatusNotModified}
	v.Revision, _ = strconv.ParseInt(h.Get(wire.HeaderRevision), 10, 64)
	v.Commit = h.Get(wire.HeaderCommit)
	v.ModRevision, _ = strconv.ParseInt(h.Get(wire.HeaderModRevision), 10, 64)
	if v.NotModified {
		return v, nil
	}
	if v.Data, err = io.ReadAll(resp.Body); err != nil {
		clear(v.Data)
		// The cause is the transport's; it never holds the body read.
		return nil, fmt.Errorf("gitstate client: read secret %q: %w", key, err)
	}
	v.Size = int64(len(v.Data))
	return v, nil
}

func (k *keys) putSecret(ctx context.Context, key string, value []byte, opts *PutOptions) (*wire.WriteResult, error) {
	if opts == nil {
		opts = &PutOptions{}
	}
	if err := k.check(key); err != nil {
		return nil, err
	}
	if value == nil {
		// An empty body, which the server refuses with its own error.
		value = []byte{}
	}
	req := &request{method: http.MethodPut, path: k.secretPath(key), body: value, header: http.Header{}}
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

func (k *keys) deleteSecret(ctx context.Context, key string, opts *DeleteSecretOptions) (*wire.DeleteResult, error) {
	if opts == nil {
		opts = &DeleteSecretOptions{}
	}
	if err := k.check(key); err != nil {
		return nil, err
	}
	req := &request{method: http.MethodDelete, path: k.secretPath(key)}
	if opts.IfMatch != "" {
		req.header = http.Header{"If-Match": {quoteETag(opts.IfMatch)}}
	}
	if opts.Message != "" {
		req.query = url.Values{"message": {opts.Message}}
	}
	var out wire.DeleteResult
	if err := k.c.do(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (k *keys) listSecrets(ctx context.Context, opts *ListSecretsOptions) (*wire.SecretList, error) {
	if k.err != nil {
		return nil, k.err
	}
	if opts == nil {
		opts = &ListSecretsOptions{}
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
	if opts.Rev != "" {
		q.Set("rev", string(opts.Rev))
	}
	var out wire.SecretList
	if err := k.c.do(ctx, &request{method: http.MethodGet, path: k.path("/secrets"), query: q}, &out); err != nil {
		return nil, err
	}
	if out.Items == nil {
		out.Items = []wire.SecretItem{}
	}
	return &out, nil
}

func (k *keys) secretItems(ctx context.Context, opts *ListSecretsOptions) iter.Seq2[wire.SecretItem, error] {
	return func(yield func(wire.SecretItem, error) bool) {
		err := k.walkSecrets(ctx, opts, 0, func(page *wire.SecretList) bool {
			for _, it := range page.Items {
				if !yield(it, nil) {
					return false
				}
			}
			return true
		})
		if err != nil {
			yield(wire.SecretItem{}, err)
		}
	}
}

func (k *keys) listAllSecrets(ctx context.Context, opts *ListSecretsOptions, maxItems int) (*wire.SecretList, error) {
	out := &wire.SecretList{Items: []wire.SecretItem{}}
	err := k.walkSecrets(ctx, opts, maxItems, func(page *wire.SecretList) bool {
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

// walkSecrets reads the pages of a listing of secrets (see walkPages).
func (k *keys) walkSecrets(ctx context.Context, opts *ListSecretsOptions, maxItems int, fn func(*wire.SecretList) bool) error {
	o := ListSecretsOptions{}
	if opts != nil {
		o = *opts
	}
	return walkPages(pageCursor{Limit: o.Limit, After: o.After, Rev: o.Rev}, maxItems, !k.txn,
		func(c pageCursor) (*wire.SecretList, error) {
			o.Limit, o.After, o.Rev = c.Limit, c.After, c.Rev
			return k.listSecrets(ctx, &o)
		},
		func(p *wire.SecretList) (int, string, int64) { return len(p.Items), p.Next, p.Revision }, fn)
}

func (k *keys) rotateSecrets(ctx context.Context, opts *RotateSecretsOptions) (*wire.RotateResult, error) {
	if k.err != nil {
		return nil, k.err
	}
	if opts == nil {
		opts = &RotateSecretsOptions{}
	}
	req := wire.RotateRequest{Prefix: opts.Prefix, KeepDataKey: opts.KeepDataKey, Message: opts.Message}
	var out wire.RotateResult
	if err := k.c.doJSON(ctx, http.MethodPost, k.path("/secrets/rotate"), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
