package client_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// TestTokens creates a limited token, uses it within and beyond its
// limits, lists and revokes it, and reads the audit log of it all.
func TestTokens(t *testing.T) {
	ctx := context.Background()
	admin := newClient(t)
	tok, err := admin.CreateToken(ctx, &wire.CreateTokenRequest{Name: "ci", Scopes: []string{"read", "write"},
		Prefixes: []string{"apps/"}, ExpiresIn: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if tok.ID == "" || tok.Secret == "" || tok.Name != "ci" || !slices.Equal(tok.Repos, []string{"*"}) || tok.ExpiresAt == nil {
		t.Errorf("CreateToken = %+v", tok)
	}
	if _, err := admin.CreateToken(ctx, &wire.CreateTokenRequest{Name: "x", Scopes: []string{"root"}}); !errors.Is(err, gitstate.ErrInvalidRequest) {
		t.Errorf("unknown scope: %v", err)
	}

	ci, _ := client.New(admin.BaseURL(), client.WithToken(tok.Secret))
	if _, err := ci.Repo("default").Put(ctx, "apps/web", []byte("1"), nil); err != nil {
		t.Errorf("write within the token's prefix: %v", err)
	}
	_, err = ci.Repo("default").Put(ctx, "infra/net", []byte("1"), nil)
	if gitstate.KindOf(err) != gitstate.KindForbidden || client.MissingOf(err) == "" {
		t.Errorf("write outside the token's prefix: %v (missing %q)", err, client.MissingOf(err))
	}
	if _, err := ci.ListTokens(ctx); gitstate.KindOf(err) != gitstate.KindForbidden || client.MissingOf(err) != "scope:admin" {
		t.Errorf("ListTokens without admin: %v", err)
	}

	list, err := admin.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list.Tokens, func(x wire.Token) bool { return x.ID == tok.ID })
	if i < 0 || list.Tokens[i].RevokedAt != nil || !slices.Equal(list.Tokens[i].Prefixes, []string{"apps/"}) {
		t.Fatalf("ListTokens = %+v", list)
	}
	rv, err := admin.RevokeToken(ctx, tok.ID)
	if err != nil || rv.RevokedAt == nil {
		t.Fatalf("RevokeToken = %+v, %v", rv, err)
	}
	if _, err := ci.Repo("default").Get(ctx, "apps/web", nil); gitstate.KindOf(err) != gitstate.KindUnauthorized {
		t.Errorf("revoked token: %v", err)
	}
	if _, err := admin.RevokeToken(ctx, ""); !errors.Is(err, gitstate.ErrInvalidRequest) {
		t.Errorf("RevokeToken(\"\"): %v", err)
	}

	// The audit log: the denied write and the revocation, newest first.
	al, err := admin.Audit(ctx, &client.AuditOptions{Identity: "ci", Last: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var denied bool
	for _, e := range al.Entries {
		if e.Identity != "ci" {
			t.Errorf("entry of %q in ci's audit: %+v", e.Identity, e)
		}
		denied = denied || (e.Status == 403 && slices.Contains(e.Keys, "infra/net"))
	}
	if !denied {
		t.Errorf("ci's audit %+v lacks the denied write", al.Entries)
	}
	recent, err := admin.Audit(ctx, &client.AuditOptions{Since: time.Now().Add(-time.Minute), Limit: 1})
	if err != nil || len(recent.Entries) != 1 || !recent.Truncated {
		t.Errorf("Audit(limit 1) = %+v, %v", recent, err)
	}
	if _, err := admin.Audit(ctx, &client.AuditOptions{Limit: 1 << 20}); !errors.Is(err, gitstate.ErrInvalidRequest) {
		t.Errorf("Audit with a huge limit: %v", err)
	}
}
