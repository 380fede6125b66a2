package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	"github.com/gitstate/gitstate/secrets"
	"github.com/gitstate/gitstate/storage"
)

// Secrets encrypts and decrypts secret values as SOPS documents.
// *secrets.Engine implements it; every method is safe for concurrent use.
//
// A secret "k" is stored in the tree as the file "k.sops.json"
// (secrets.PathOf): the path arguments are tree paths. Errors never carry
// plaintext.
type Secrets interface {
	// Encrypt returns a new document holding plaintext, encrypted to the
	// recipients cfg gives path (cfg nil: the server's key only).
	Encrypt(ctx context.Context, path string, plaintext []byte, cfg *secrets.Config) ([]byte, error)
	// Decrypt returns a document's plaintext.
	Decrypt(ctx context.Context, path string, doc []byte) ([]byte, error)
	// Equal reports whether doc decrypts to plaintext.
	Equal(ctx context.Context, path string, doc, plaintext []byte) (bool, error)
	// Reencrypt re-encrypts a document to the recipients cfg gives path,
	// under a new data key or (newDataKey false) the same one.
	Reencrypt(ctx context.Context, path string, doc []byte, cfg *secrets.Config, newDataKey bool) ([]byte, bool, error)
	// ParseConfig parses a repo's .gitstate/sops.yaml.
	ParseConfig(data []byte) (*secrets.Config, error)
	// Forget drops any cached plaintext.
	Forget()
}

var _ Secrets = (*secrets.Engine)(nil)

// maxSealAttempts bounds the retries of a secret write whose no-op check
// raced with another write of the same key.
const maxSealAttempts = 5

func secretsDisabled() error {
	return gitstate.Errorf(gitstate.KindNotFound, "not_found", "secrets are not enabled on this server")
}

// secretPathOf returns the tree path of the secret key in the request's
// path.
func secretPathOf(r *http.Request) (string, error) {
	raw := pathVar(r, "key")
	key, err := url.PathUnescape(raw)
	if err != nil {
		return "", gitstate.Errorf(gitstate.KindInvalid, "invalid_key", "key is not a valid escaped path: %q", raw)
	}
	if err := secrets.ValidateKey(key); err != nil {
		return "", err
	}
	path := secrets.PathOf(key)
	if err := storage.ValidateKey(path); err != nil {
		return "", secretError(err, path)
	}
	if info := infoOf(r); info != nil {
		info.keys = []string{path}
	}
	return path, nil
}

// secretError returns err as the secrets routes say it: naming each secret
// whose file is in paths by its key, as the caller does, where it names the
// file (a secret "svc/pw" is the file "svc/pw.sops.json", which storage and
// the policy speak of), in its message and its keys. Internal errors, whose
// details are logged and not sent, are returned as they are.
func secretError(err error, paths ...string) error {
	var ge *gitstate.Error
	if len(paths) == 0 || !errors.As(err, &ge) || ge.Kind == gitstate.KindInternal {
		return err
	}
	keyOf := make(map[string]string, len(paths))
	pairs := make([]string, 0, 4*len(paths))
	for _, p := range paths {
		k := strings.TrimSuffix(p, secrets.Suffix)
		keyOf[p] = k
		pairs = append(pairs, "key "+strconv.Quote(p), "secret "+strconv.Quote(k), p, k)
	}
	c := *ge
	// The replacer takes the leftmost match: a quoted path before the path
	// in it, a path before a shorter one it ends with.
	c.Message = strings.NewReplacer(pairs...).Replace(ge.Message)
	if slices.ContainsFunc(ge.Keys, func(k string) bool { _, ok := keyOf[k]; return ok }) {
		c.Keys = slices.Clone(ge.Keys)
		for i, k := range c.Keys {
			if key, ok := keyOf[k]; ok {
				c.Keys[i] = key
			}
		}
	}
	return &c
}

// secretPathsOf returns the secrets' files err names in its keys.
func secretPathsOf(err error) []string {
	var ge *gitstate.Error
	if !errors.As(err, &ge) {
		return nil
	}
	var out []string
	for _, k := range ge.Keys {
		if secrets.IsSecretPath(k) {
			out = append(out, k)
		}
	}
	return out
}

// secretTarget returns the target of a secrets request: scope
// secrets:read to read, secrets:write to write (and txn too, inside a
// transaction).
func (s *Server) secretTarget(r *http.Request, write bool, keys ...string) (*target, error) {
	if s.opts.Secrets == nil {
		return nil, secretsDisabled()
	}
	scopes := []Scope{ScopeSecretsRead}
	if write {
		scopes = []Scope{ScopeSecretsWrite}
		if pathVar(r, "id") != "" {
			scopes = append(scopes, ScopeTxn)
		}
	}
	return s.targetWith(r, scopes, keys...)
}

// secretsConfig reads the target's .gitstate/sops.yaml (nil when there is
// none).
func (s *Server) secretsConfig(ctx context.Context, t *target) (*secrets.Config, error) {
	v, err := t.get(ctx, secrets.ConfigKey, headRev)
	if errors.Is(err, gitstate.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.opts.Secrets.ParseConfig(v.Data)
}

// checkSecretWrites refuses ops that would put plaintext where a secret is
// expected: a value at a secret's path (<key>.sops.json) must be a SOPS
// document, and a move may not turn another file into a secret's file. A
// new .gitstate/sops.yaml must be a valid configuration.
func (s *Server) checkSecretWrites(ops []storage.Op) error {
	for _, op := range ops {
		switch op.Kind {
		case storage.OpPut:
			if op.Value == nil {
				continue
			}
			if secrets.IsSecretPath(op.Key) {
				if err := secrets.CheckDocument(op.Key, op.Value); err != nil {
					return err
				}
			}
			if op.Key == secrets.ConfigKey {
				var err error
				if s.opts.Secrets != nil {
					_, err = s.opts.Secrets.ParseConfig(op.Value)
				} else {
					_, err = secrets.ParseConfig(op.Value)
				}
				if err != nil {
					return err
				}
			}
		case storage.OpMove:
			if secrets.IsSecretPath(op.Key) && !secrets.IsSecretPath(op.From) {
				return gitstate.Errorf(gitstate.KindUnprocessable, "not_encrypted",
					"cannot move %s to %s: a secret's file (%s) must hold a SOPS-encrypted document; write the value through the secrets API",
					op.From, op.Key, secrets.Suffix).WithKeys(op.Key)
			}
		}
	}
	return nil
}

// checkSecretScope refuses a change to a secret's file (keys ending in
// .sops.json: a put, a delete, either end of a move, a key a revert or a
// rollback restores) by a caller without scope secrets:write, whatever the
// route: the kv routes, batches, revert and rollback change secrets too.
func checkSecretScope(p *Principal, keys []string) error {
	if p == nil || p.HasScope(ScopeSecretsWrite) {
		return nil
	}
	for _, k := range keys {
		if secrets.IsSecretPath(k) {
			return forbidden("scope:"+string(ScopeSecretsWrite), "token lacks scope %q, needed to change the secret %s", ScopeSecretsWrite, k)
		}
	}
	return nil
}

// opKeys returns the keys ops change.
func opKeys(ops []storage.Op) []string {
	keys := make([]string, 0, len(ops))
	for _, op := range ops {
		keys = append(keys, op.Key)
		if op.From != "" {
			keys = append(keys, op.From)
		}
	}
	return keys
}

// sealOp is an op of a batch whose value is a secret to encrypt.
type sealOp struct {
	index     int
	plaintext []byte
}

// writeSecrets encrypts the batch's secret values and writes the batch.
// A secret whose current value already decrypts to the new plaintext is
// not re-encrypted (SOPS output is randomized): its op puts the current
// document back, guarded by a precondition on it, so that re-putting the
// same plaintext makes no commit. When that guard fails because the key
// changed meanwhile, the batch is prepared again; the last attempt encrypts
// every value, guard-free, so that contention never turns into a 412 the
// caller did not ask for.
func (s *Server) writeSecrets(ctx context.Context, t *target, b *storage.Batch, seal []sealOp) (*storage.Result, error) {
	userPre := b.Preconditions
	for attempt := 1; ; attempt++ {
		cfg, err := s.secretsConfig(ctx, t)
		if err != nil {
			return nil, err
		}
		b.Preconditions = slices.Clone(userPre)
		guarded := map[string]storage.Hash{}
		for _, so := range seal {
			op := &b.Ops[so.index]
			op.Value, op.Blob = nil, storage.ZeroHash
			if cur, err := t.get(ctx, op.Key, headRev); err == nil && attempt < maxSealAttempts {
				// A current value that does not decrypt is simply replaced.
				if same, err := s.opts.Secrets.Equal(ctx, op.Key, cur.Data, so.plaintext); err == nil && same {
					op.Blob, op.Mode = cur.Blob, cur.Mode
					guarded[op.Key] = cur.Blob
					b.Preconditions = append(b.Preconditions, storage.Precondition{Key: op.Key, ETag: cur.Blob})
					continue
				}
			} else if err != nil && !errors.Is(err, gitstate.ErrKeyNotFound) {
				return nil, err
			}
			doc, err := s.opts.Secrets.Encrypt(ctx, op.Key, so.plaintext, cfg)
			if err != nil {
				return nil, err
			}
			op.Value = doc
		}
		res, err := t.write(ctx, b)
		if attempt < maxSealAttempts && guardFailed(err, guarded) {
			continue
		}
		return res, err
	}
}

// guardFailed reports whether err is a failed precondition that may be a
// guard's: every key it names is guarded. (A caller's own precondition on
// the same key cannot be told apart; it fails again on the last, guard-free
// attempt.)
func guardFailed(err error, guarded map[string]storage.Hash) bool {
	var ge *gitstate.Error
	if len(guarded) == 0 || !errors.As(err, &ge) || ge.Code != "precondition_failed" {
		return false
	}
	for _, k := range ge.Keys {
		if _, ok := guarded[k]; !ok {
			return false
		}
	}
	return true
}

func (s *Server) getSecret(w http.ResponseWriter, r *http.Request) {
	// Every attempt to read a secret is audited, refused ones included.
	infoOf(r).secretRead = true
	path, err := secretPathOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	fail := func(err error) { s.writeError(w, r, secretError(err, path)) }
	t, err := s.secretTarget(r, false, path)
	if err != nil {
		fail(err)
		return
	}
	rev, err := t.revParam(r)
	if err != nil {
		fail(err)
		return
	}
	v, err := t.get(r.Context(), path, rev)
	if err != nil {
		fail(err)
		return
	}
	plain, err := s.opts.Secrets.Decrypt(r.Context(), path, v.Data)
	if err != nil {
		fail(err)
		return
	}
	out := *v
	out.Data, out.Size = plain, int64(len(plain))
	w.Header().Set("Cache-Control", "no-store")
	writeValue(w, r, &out)
	clear(plain)
}

func (s *Server) putSecret(w http.ResponseWriter, r *http.Request) {
	path, err := secretPathOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	fail := func(err error) { s.writeError(w, r, secretError(err, path)) }
	t, err := s.secretTarget(r, true, path)
	if err != nil {
		fail(err)
		return
	}
	pre, err := preconditionsOf(r, path)
	if err != nil {
		fail(err)
		return
	}
	body, err := readBody(r, s.opts.MaxValueSize)
	if err != nil {
		fail(err)
		return
	}
	defer clear(body)
	b := s.batchFor(r, r.URL.Query().Get("message"))
	b.Ops = []storage.Op{{Kind: storage.OpPut, Key: path}}
	b.Preconditions = pre
	res, err := s.writeSecrets(r.Context(), t, &b, []sealOp{{index: 0, plaintext: body}})
	if err != nil {
		fail(err)
		return
	}
	made(r, res)
	etag := b.Ops[0].Blob
	if b.Ops[0].Value != nil {
		etag = storage.HashObject(storage.BlobObject, b.Ops[0].Value)
	}
	writeResult(w, &wire.WriteResult{Revision: res.Revision, Commit: res.Commit.String(), ETag: etag.String(), Changed: res.Changed})
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) {
	path, err := secretPathOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	fail := func(err error) { s.writeError(w, r, secretError(err, path)) }
	t, err := s.secretTarget(r, true, path)
	if err != nil {
		fail(err)
		return
	}
	pre, err := preconditionsOf(r, path)
	if err != nil {
		fail(err)
		return
	}
	b := s.batchFor(r, r.URL.Query().Get("message"))
	b.Ops = []storage.Op{{Kind: storage.OpDelete, Key: path, MustExist: true}}
	b.Preconditions = pre
	res, err := t.write(r.Context(), &b)
	if err != nil {
		fail(err)
		return
	}
	made(r, res)
	writeJSON(w, http.StatusOK, wire.DeleteResult{Revision: res.Revision, Commit: res.Commit.String(), Changed: res.Changed})
}

// listSecrets lists secret keys, never values. Scope secrets:read, or read
// (the files are visible through the kv routes anyway).
func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	if s.opts.Secrets == nil {
		s.writeError(w, r, secretsDisabled())
		return
	}
	scope := ScopeSecretsRead
	if p := PrincipalOf(r); p != nil && !p.HasScope(ScopeSecretsRead) {
		scope = ScopeRead
	}
	t, err := s.targetWith(r, []Scope{scope})
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
	rev, err := t.revParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := PrincipalOf(r)
	out := wire.SecretList{Items: []wire.SecretItem{}}
	opts := storage.ListOptions{Prefix: prefix, Limit: int(limit), Revision: rev}
	if after != "" {
		opts.After = secrets.PathOf(after)
	}
	out.Revision, err = s.eachSecret(r.Context(), t, opts, func(key string, it storage.ListItem, revision int64) bool {
		if !p.CanKey(it.Key) {
			return true
		}
		if len(out.Items) == int(limit) {
			out.Next = out.Items[len(out.Items)-1].Key
			return false
		}
		out.Items = append(out.Items, wire.SecretItem{Key: key, ETag: it.Blob.String(), ModRevision: it.ModRevision})
		return true
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// eachSecret calls fn with every secret file of the target (in tree path
// order) from o.After on, with the revision it was read at, until fn
// returns false. Every page is read at the revision of the first, which it
// returns (also when there is no secret).
func (s *Server) eachSecret(ctx context.Context, t *target, o storage.ListOptions, fn func(key string, it storage.ListItem, revision int64) bool) (int64, error) {
	first := true
	var rev int64
	for {
		res, err := t.list(ctx, o)
		if err != nil {
			return rev, err
		}
		if first {
			rev = res.Revision
			if !t.inTxn() {
				// Later pages at the same revision: a consistent listing.
				o.Revision = res.Revision
			}
			first = false
		}
		for _, it := range res.Items {
			if key, ok := secrets.KeyOf(it.Key); ok && !fn(key, it, res.Revision) {
				return rev, nil
			}
		}
		if res.Next == "" {
			return rev, nil
		}
		o.After = res.Next
	}
}

// rotateSecrets re-encrypts every secret under a prefix, in one commit, to
// the recipients the repo's .gitstate/sops.yaml gives it now.
func (s *Server) rotateSecrets(w http.ResponseWriter, r *http.Request) {
	var req wire.RotateRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := storage.ValidatePrefix(req.Prefix); err != nil {
		s.writeError(w, r, err)
		return
	}
	// The errors of a rotation name secrets by their keys (a protected
	// prefix's, an undecryptable document's, a precondition's).
	fail := func(err error) { s.writeError(w, r, secretError(err, secretPathsOf(err)...)) }
	t, err := s.secretTarget(r, true)
	if err != nil {
		fail(err)
		return
	}
	if info := infoOf(r); info != nil && req.Prefix != "" {
		info.keys = []string{req.Prefix}
	}
	msg := req.Message
	if msg == "" {
		msg = "Rotate the data keys of secrets"
		if req.KeepDataKey {
			msg = "Update the recipients of secrets"
		}
		if req.Prefix != "" {
			msg += " under " + req.Prefix
		}
	}
	p := PrincipalOf(r)
	ctx := r.Context()
	var res *storage.Result
	var rotated []string
	for attempt := 1; ; attempt++ {
		cfg, err := s.secretsConfig(ctx, t)
		if err != nil {
			fail(err)
			return
		}
		b := s.batchFor(r, msg)
		rotated = []string{}
		// The values come with the listing: one consistent revision.
		o := storage.ListOptions{Prefix: req.Prefix, Values: true, Revision: headRev}
		var ferr error
		_, err = s.eachSecret(ctx, t, o, func(key string, it storage.ListItem, _ int64) bool {
			// Skipped: keys the token may not write, and the server's
			// configuration except by an administrator in a transaction
			// (the only way it changes).
			if !p.CanKey(it.Key) || (storage.IsReserved(it.Key) && (!p.HasScope(ScopeAdmin) || !t.inTxn())) {
				return true
			}
			doc, changed, err := s.opts.Secrets.Reencrypt(ctx, it.Key, it.Value, cfg, !req.KeepDataKey)
			if err != nil {
				ferr = err
				return false
			}
			if changed {
				b.Ops = append(b.Ops, storage.Op{Kind: storage.OpPut, Key: it.Key, Value: doc, Mode: it.Mode})
				b.Preconditions = append(b.Preconditions, storage.Precondition{Key: it.Key, ETag: it.Blob})
				rotated = append(rotated, key)
			}
			return true
		})
		if err == nil {
			err = ferr
		}
		if err == nil {
			res, err = t.write(ctx, &b)
			if errors.Is(err, gitstate.ErrPreconditionFailed) && attempt < maxSealAttempts {
				continue // a secret changed meanwhile: list again
			}
		}
		if err != nil {
			fail(err)
			return
		}
		break
	}
	// A rotation may have removed recipients: keep no plaintext from
	// before it.
	s.opts.Secrets.Forget()
	made(r, res)
	writeJSON(w, http.StatusOK, wire.RotateResult{Revision: res.Revision, Commit: res.Commit.String(), Changed: res.Changed, Keys: rotated})
}

// secretOpKeys returns the tree paths of a batch's secret ops, for the
// secrets:write check.
func secretOpKeys(ops []storage.Op, seal []sealOp) []string {
	keys := make([]string, 0, len(seal))
	for _, so := range seal {
		keys = append(keys, ops[so.index].Key)
	}
	return keys
}
