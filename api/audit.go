package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
)

// AuditQuery selects audit entries. Zero fields select everything.
type AuditQuery struct {
	// Since keeps entries at or after this time.
	Since time.Time
	// Identity keeps entries of this principal name.
	Identity string
	// Repo keeps entries about this repo.
	Repo string
	// Limit bounds the number of entries returned (the newest are kept).
	Limit int
}

// AuditReader reads the audit log back. Implementations are safe for
// concurrent use with Auditor.Record.
type AuditReader interface {
	// QueryAudit returns the matching entries, newest first, and whether
	// older ones matched beyond q.Limit.
	QueryAudit(ctx context.Context, q AuditQuery) (entries []wire.AuditEntry, truncated bool, err error)
}

// Audit query limits.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 10000
)

// auditQueryOf parses GET /v1/audit's parameters. since is an RFC 3339 time
// or a Go duration counted back from now ("24h").
func auditQueryOf(r *http.Request, now time.Time) (AuditQuery, error) {
	q := r.URL.Query()
	aq := AuditQuery{Identity: q.Get("identity"), Repo: q.Get("repo")}
	if v := strings.TrimSpace(q.Get("since")); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			aq.Since = t
		} else if d, err := time.ParseDuration(v); err == nil && d > 0 {
			aq.Since = now.Add(-d)
		} else {
			return aq, badRequest("since must be an RFC 3339 time (2006-01-02T15:04:05Z) or a duration back from now (24h): %q", v)
		}
	}
	limit, err := intParam(r, "limit", defaultAuditLimit, 1, maxAuditLimit)
	if err != nil {
		return aq, err
	}
	aq.Limit = int(limit)
	return aq, nil
}

func (s *Server) queryAudit(w http.ResponseWriter, r *http.Request) {
	if err := authorizeGlobal(r, ScopeAdmin); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.opts.AuditLog == nil {
		s.writeError(w, r, gitstate.Errorf(gitstate.KindNotFound, "not_supported", "this server keeps no audit log"))
		return
	}
	q, err := auditQueryOf(r, time.Now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	entries, truncated, err := s.opts.AuditLog.QueryAudit(r.Context(), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if entries == nil {
		entries = []wire.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, wire.AuditList{Entries: entries, Truncated: truncated})
}
