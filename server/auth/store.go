package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api"
	"github.com/gitstate/gitstate/api/wire"
)

// TokensFile is the name of the token store's file in its directory.
const TokensFile = "tokens.json"

// Store keeps the tokens in one JSON file (mode 0600) that holds their
// hashes, never the tokens. Every change rewrites the file atomically
// (temporary file, fsync, rename, fsync of the directory) before it takes
// effect. It implements api.TokenService and is safe for concurrent use:
// lookups read an immutable snapshot without locking.
type Store struct {
	path string
	now  func() time.Time

	mu   sync.Mutex // serializes changes, held across the file's rewrite
	snap atomic.Pointer[snapshot]
	// envAdmin says that the server also accepts GITSTATE_ADMIN_TOKEN, as
	// the token EnvAdminID (see SetEnvAdmin).
	envAdmin atomic.Bool
}

var _ api.TokenService = (*Store)(nil)

// snapshot is the store's content at one moment; it is never modified
// once published.
type snapshot struct {
	// exists says that tokens.json exists: tokens have been configured.
	exists bool
	byID   map[string]*entry
	order  []*entry // creation order
}

// entry is a token, its decoded hash and the principal it grants, built
// once.
type entry struct {
	rec record
	sum [sha256.Size]byte
	p   *api.Principal
}

func newEntry(rec record) (*entry, error) {
	e := &entry{rec: rec, p: rec.principal()}
	if n, err := hex.Decode(e.sum[:], []byte(rec.Hash)); err != nil || n != sha256.Size {
		return nil, fmt.Errorf("token %s: malformed hash", rec.ID)
	}
	return e, nil
}

type tokensFile struct {
	Version int      `json:"version"`
	Tokens  []record `json:"tokens"`
}

// OpenStore opens the token store in dir (created, mode 0700, if absent),
// reading dir/tokens.json when it exists.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("token store: %w", err)
	}
	s := &Store{path: filepath.Join(dir, TokensFile), now: time.Now}
	snap := &snapshot{byID: map[string]*entry{}}
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("token store: %w", err)
	default:
		var f tokensFile
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("token store %s: %w", s.path, err)
		}
		snap.exists = true
		for _, rec := range f.Tokens {
			if rec.ID == "" || rec.Hash == "" {
				return nil, fmt.Errorf("token store %s: a token without id or hash", s.path)
			}
			e, err := newEntry(rec)
			if err != nil {
				return nil, fmt.Errorf("token store %s: %w", s.path, err)
			}
			snap.byID[rec.ID] = e
			snap.order = append(snap.order, e)
		}
	}
	s.snap.Store(snap)
	return s, nil
}

// Configured reports whether tokens have ever been configured (the file
// exists), even if every one is revoked since.
func (s *Store) Configured() bool { return s.snap.Load().exists }

// lookup returns the token with the given id, or nil.
func (s *Store) lookup(id string) *entry { return s.snap.Load().byID[id] }

// CreateToken makes a token. It implements api.TokenService.
func (s *Store) CreateToken(ctx context.Context, spec api.TokenSpec) (wire.CreatedToken, error) {
	return s.create(spec, nil)
}

// create makes a token. When before is set, it is given the token ahead
// of the store's file write, and an error from it cancels the creation.
func (s *Store) create(spec api.TokenSpec, before func(token string) error) (wire.CreatedToken, error) {
	if !namePattern.MatchString(spec.Name) {
		return wire.CreatedToken{}, gitstate.Errorf(gitstate.KindInvalid, "invalid_request",
			"token name must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} (it becomes a commit author): %q", spec.Name)
	}
	if len(spec.Scopes) == 0 {
		return wire.CreatedToken{}, gitstate.Errorf(gitstate.KindInvalid, "invalid_request", "a token needs at least one scope")
	}
	for _, sc := range spec.Scopes {
		if !slices.Contains(api.AllScopes, sc) {
			return wire.CreatedToken{}, gitstate.Errorf(gitstate.KindInvalid, "invalid_request", "unknown scope %q", sc)
		}
	}
	id, tok := newToken()
	_, secret, _ := parseToken(tok)
	rec := record{
		ID:        id,
		Hash:      hashSecret(secret),
		Name:      spec.Name,
		Repos:     append([]string{}, spec.Repos...),
		Prefixes:  append([]string(nil), spec.Prefixes...),
		CreatedAt: s.now().UTC().Truncate(time.Second),
		CreatedBy: spec.CreatedBy,
	}
	if len(rec.Repos) == 0 {
		rec.Repos = []string{"*"}
	}
	for _, sc := range spec.Scopes {
		rec.Scopes = append(rec.Scopes, string(sc))
	}
	if !spec.ExpiresAt.IsZero() {
		e := spec.ExpiresAt.UTC()
		rec.ExpiresAt = &e
	}
	err := s.update(func(recs []record) ([]record, error) {
		if before != nil {
			if err := before(tok); err != nil {
				return nil, err
			}
		}
		return append(recs, rec), nil
	})
	if err != nil {
		return wire.CreatedToken{}, err
	}
	return wire.CreatedToken{Token: rec.wire(), Secret: tok}, nil
}

// ListTokens describes every token in creation order. It implements
// api.TokenService.
func (s *Store) ListTokens(ctx context.Context) ([]wire.Token, error) {
	snap := s.snap.Load()
	out := make([]wire.Token, 0, len(snap.order))
	for _, e := range snap.order {
		out = append(out, e.rec.wire())
	}
	return out, nil
}

// SetEnvAdmin records whether the server authenticates GITSTATE_ADMIN_TOKEN
// as the token EnvAdminID (NewAuthenticator with an envToken): revoking
// that id is then refused with token_from_environment, where otherwise it
// is an unknown token. Call it before the store serves requests.
func (s *Store) SetEnvAdmin(on bool) { s.envAdmin.Store(on) }

// RevokeToken revokes a token; the next request with it is refused.
// Revoking a revoked token changes nothing. It implements api.TokenService.
func (s *Store) RevokeToken(ctx context.Context, id string) (wire.Token, error) {
	if id == EnvAdminID && s.envAdmin.Load() && s.lookup(id) == nil {
		return wire.Token{}, gitstate.Errorf(gitstate.KindConflict, "token_from_environment",
			"the %s token comes from GITSTATE_ADMIN_TOKEN: unset the variable and restart the server to revoke it", EnvAdminID)
	}
	var out record
	err := s.update(func(recs []record) ([]record, error) {
		for i := range recs {
			if recs[i].ID != id {
				continue
			}
			if recs[i].RevokedAt == nil {
				now := s.now().UTC()
				recs[i].RevokedAt = &now
			}
			out = recs[i]
			return recs, nil
		}
		return nil, gitstate.Errorf(gitstate.KindNotFound, "token_not_found", "no token with id %q", id)
	})
	if err != nil {
		return wire.Token{}, err
	}
	return out.wire(), nil
}

// update applies fn to a copy of the records, writes them to the file and
// then publishes them. When fn or the write fails nothing changes.
func (s *Store) update(fn func([]record) ([]record, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snap.Load()
	recs := make([]record, len(old.order))
	for i, e := range old.order {
		recs[i] = e.rec
	}
	recs, err := fn(recs)
	if err != nil {
		return err
	}
	snap := &snapshot{exists: true, byID: make(map[string]*entry, len(recs))}
	for _, rec := range recs {
		e, err := newEntry(rec)
		if err != nil {
			return err
		}
		snap.byID[rec.ID] = e
		snap.order = append(snap.order, e)
	}
	b, err := json.MarshalIndent(tokensFile{Version: 1, Tokens: recs}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write token store: %w", err)
	}
	s.snap.Store(snap)
	return nil
}

// writeFileAtomic replaces path with data: a reader sees the old content or
// the new, and after a crash the new content is there once it returns.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
