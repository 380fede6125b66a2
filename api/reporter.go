package api

import (
	"strings"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/watch"
)

// reportAs returns the name under which the caller p reports (a
// transaction's dry-run report, a reconciler's status): name itself when it
// is p's identity or a sub-name of it ("<identity>/<sub>", so that one
// reconciler token can report for several clusters, as "flux/prod"), p's
// identity when name is empty. Any other name is refused with 403
// reporter_not_caller naming both: a policy's required reporter, or a
// rollout's convergence, would otherwise be forged by whoever holds a token.
//
// An administrator may report under any name: it can rewrite the policy and
// mint a token of any name anyway, and what it reports is recorded as its
// own (a report's "by", the audit log).
func reportAs(p *Principal, name string) (string, error) {
	if p == nil {
		return "", gitstate.Errorf(gitstate.KindUnauthorized, "unauthorized", "authentication required")
	}
	if name == "" {
		return p.Name, nil
	}
	// A reporter is named as a reconciler is (a token's name, or
	// "/"-separated segments under it): "flux/../argo" or "flux/ argo"
	// would read as someone else's in a list.
	if !watch.ValidReconcilerName(name) {
		return "", gitstate.Errorf(gitstate.KindInvalid, "invalid_request",
			"reporter %q must be 1 to 128 bytes of \"/\"-separated segments of [A-Za-z0-9._-], each starting with a letter or digit", name)
	}
	own := p.Name != "" && (name == p.Name || strings.HasPrefix(name, p.Name+"/") && len(name) > len(p.Name)+1)
	if own || p.HasScope(ScopeAdmin) {
		return name, nil
	}
	return "", gitstate.Errorf(gitstate.KindForbidden, "reporter_not_caller",
		"%s may report only as %q or %q, not as %q (a token reports under its own name; an administrator may report for others)",
		p.Name, p.Name, p.Name+"/<name>", name)
}
