package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/txn"
)

// A push goes through the same write path as the API:
//
//   - main moves only forward along the pushed head's first-parent line
//     (a compare-and-swap with what the client saw: a push racing another
//     write loses with non-fast-forward, and nothing is lost);
//   - every pushed commit is checked by storage.PrepareAdvance (valid keys,
//     value sizes, regular files only, every object present);
//   - what each first-parent commit changes passes the checks of an API
//     write (checkPushed: scope secrets:write and encrypted documents for
//     secrets' files; checkDirect: reserved keys, protected prefixes,
//     schemas);
//   - each first-parent commit becomes a revision, indexed, watchers woken.
//
// A push to txn/<id> writes into that open transaction through
// txn.Manager.Advance, with the transaction's checks. Each ref is applied
// or refused on its own; a refused ref changes nothing, and the client
// shows the reason ("! [remote rejected] main -> main (reason)") and the
// details on its "remote:" lines.

// pushOutcome is what a push did, for the client and the audit log.
type pushOutcome struct {
	unpack   string // "ok", or why the pack was unreadable
	cmds     []*pushCommand
	messages []string
	keys     []string
	revision int64
	status   int // the audit status: 200, or the first refusal's
}

// maxAuditKeys bounds the keys a push names in the audit log.
const maxAuditKeys = 1000

// push reads the pack that follows the commands and applies each command.
func (s *Server) push(r *http.Request, repo *storage.Repo, br *bufio.Reader, cmds []*pushCommand) *pushOutcome {
	out := &pushOutcome{unpack: "ok", cmds: cmds, status: http.StatusOK}
	ctx := r.Context()
	var objs []*storage.Object
	needPack := false
	for _, c := range cmds {
		if !c.new.IsZero() {
			needPack = true
		}
	}
	if needPack {
		var err error
		if _, perr := br.Peek(1); perr == io.EOF {
			// No pack: the client has nothing to send (a push of commits
			// the server holds).
		} else if objs, err = storage.ReadPack(br, repo.Backend(), s.opts.MaxPushBytes); err != nil {
			reason := oneLine(err.Error())
			var ge *gitstate.Error
			if errors.As(err, &ge) {
				reason = ge.Message
			}
			out.unpack = reason
			out.status = http.StatusBadRequest
			if errors.Is(err, errBodyTooLarge) || strings.Contains(err.Error(), "over the limit") {
				out.status = http.StatusRequestEntityTooLarge
			}
			for _, c := range cmds {
				c.err = "unpacker error"
			}
			out.messages = append(out.messages, "gitstate: cannot read the pack: "+reason)
			s.log.Warn("git push refused: bad pack", "repo", repo.Name(), "err", err, "request_id", requestID(r))
			return out
		}
	}
	seen := map[string]bool{}
	for _, c := range cmds {
		res, adv, err := s.pushRef(ctx, r, repo, c, objs)
		if err != nil {
			s.refuse(r, repo, out, c, err)
			continue
		}
		if adv != nil {
			for _, k := range adv.Keys() {
				if !seen[k] && len(out.keys) < maxAuditKeys {
					seen[k] = true
					out.keys = append(out.keys, k)
				}
			}
		}
		if res != nil && res.Revision > 0 {
			out.revision = res.Revision
			out.messages = append(out.messages, fmt.Sprintf("gitstate: %s is at revision %d", strings.TrimPrefix(c.ref, "refs/heads/"), res.Revision))
		}
		s.log.Info("git push", "repo", repo.Name(), "ref", c.ref, "old", c.old.String(), "new", c.new.String(),
			"revision", out.revision, "commits", len(adv.Line)+len(adv.Others), "principal", principalName(r), "request_id", requestID(r))
	}
	return out
}

// pushRef applies one command.
func (s *Server) pushRef(ctx context.Context, r *http.Request, repo *storage.Repo, c *pushCommand, objs []*storage.Object) (*storage.Result, *storage.Advance, error) {
	if c.new.IsZero() {
		return nil, nil, gitstate.Errorf(gitstate.KindForbidden, "forbidden",
			"branches are not deleted by push: delete a transaction with DELETE /v1/repos/%s/txns/{id}", repo.Name())
	}
	id, isTxn := strings.CutPrefix(c.ref, "refs/heads/"+txn.BranchPrefix)
	switch {
	case c.ref == storage.BranchRef(storage.MainBranch):
		if err := authorize(r, ScopeWrite, repo.Name()); err != nil {
			return nil, nil, err
		}
		adv, err := repo.PrepareAdvance(ctx, c.ref, c.old, c.new, objs, storage.AdvanceOptions{})
		if err != nil {
			return nil, nil, err
		}
		if err := s.checkPushed(ctx, r, repo, adv, true); err != nil {
			return nil, nil, err
		}
		res, err := repo.WriteOne(ctx, &storage.Batch{Ref: c.ref, Advance: adv})
		return res, adv, err
	case isTxn:
		if err := authorize(r, ScopeTxn, repo.Name()); err != nil {
			return nil, nil, err
		}
		if s.opts.Txns == nil {
			return nil, nil, gitstate.Errorf(gitstate.KindNotFound, "not_found", "transactions are not enabled on this server")
		}
		if c.old.IsZero() {
			return nil, nil, gitstate.Errorf(gitstate.KindForbidden, "forbidden",
				"a push does not open a transaction: open it with POST /v1/repos/%s/txns, then push to its branch", repo.Name())
		}
		if !txn.ValidID(id) {
			return nil, nil, gitstate.Errorf(gitstate.KindNotFound, "txn_not_found", "transaction %q does not exist", id)
		}
		adv, err := repo.PrepareAdvance(ctx, c.ref, c.old, c.new, objs, storage.AdvanceOptions{})
		if err != nil {
			return nil, nil, err
		}
		// The transaction's own checks run in Advance.
		if err := s.checkPushed(ctx, r, repo, adv, false); err != nil {
			return nil, nil, err
		}
		res, err := s.opts.Txns.Advance(ctx, repo.Name(), id, actorOf(r), adv)
		return res, adv, err
	default:
		return nil, nil, gitstate.Errorf(gitstate.KindForbidden, "forbidden",
			"gitstate takes pushes to %s and to open transactions' branches (%s<id>) only", storage.MainBranch, txn.BranchPrefix)
	}
}

// checkPushed applies to what each first-parent commit of a push changes
// the checks of an API write (target.write): a secret's file needs scope
// secrets:write and must hold an encrypted document; on main (direct), the
// policy of a direct write too.
func (s *Server) checkPushed(ctx context.Context, r *http.Request, repo *storage.Repo, adv *storage.Advance, direct bool) error {
	p := PrincipalOf(r)
	for _, ac := range adv.Line {
		ops, err := adv.Ops(ac)
		if err != nil {
			return err
		}
		if err := checkSecretScope(p, opKeys(ops)); err != nil {
			return storage.InCommit(ac.Hash, err)
		}
		if err := s.checkSecretWrites(ops); err != nil {
			return storage.InCommit(ac.Hash, err)
		}
		if direct {
			if err := s.checkDirect(ctx, repo, actorOf(r), ops); err != nil {
				return storage.InCommit(ac.Hash, err)
			}
		}
	}
	return nil
}

// CheckValues applies to ops the checks every write's values pass,
// whoever writes: a secret's file must hold an encrypted document, a new
// secrets configuration must be valid. Commits followed from an upstream
// pass it (with txn.Manager.CheckWrite).
func (s *Server) CheckValues(ops []storage.Op) error { return s.checkSecretWrites(ops) }

// refuse records why a command was refused: a one-line reason for the
// report, the details as messages, a log line and the audit status.
func (s *Server) refuse(r *http.Request, repo *storage.Repo, out *pushOutcome, c *pushCommand, err error) {
	var ge *gitstate.Error
	if !errors.As(err, &ge) {
		s.log.Error("git push failed", "repo", repo.Name(), "ref", c.ref, "err", err, "request_id", requestID(r))
		ge = &gitstate.Error{Kind: gitstate.KindInternal, Code: "internal", Message: "internal error (request " + requestID(r) + ")"}
	}
	reason := ge.Code + ": " + ge.Message
	switch ge.Code {
	case "non_fast_forward":
		reason = "non-fast-forward"
	case "protected_prefix":
		reason = "protected prefix: push to a transaction's branch (txn/<id>) instead"
	}
	if reason = oneLine(reason); len(reason) > 300 {
		reason = reason[:297] + "..."
	}
	c.err = reason
	branch := strings.TrimPrefix(c.ref, "refs/heads/")
	out.messages = append(out.messages, fmt.Sprintf("gitstate: %s refused: %s", branch, oneLine(ge.Message)))
	if len(ge.Keys) > 0 {
		keys := ge.Keys
		if len(keys) > 10 {
			keys = append(keys[:10:10], fmt.Sprintf("and %d more", len(ge.Keys)-10))
		}
		out.messages = append(out.messages, "gitstate:   keys: "+strings.Join(keys, ", "))
	}
	for _, d := range ge.Details {
		where := d.Path
		if where == "" {
			where = "/"
		}
		out.messages = append(out.messages, fmt.Sprintf("gitstate:   %s at %s: %s", d.Key, where, oneLine(d.Message)))
	}
	if out.status == http.StatusOK {
		out.status = statusOf(ge.Kind)
	}
	for _, k := range ge.Keys {
		if len(out.keys) < maxAuditKeys && !slices.Contains(out.keys, k) {
			out.keys = append(out.keys, k)
		}
	}
	s.log.Warn("git push refused", "repo", repo.Name(), "ref", c.ref, "code", ge.Code, "reason", ge.Message,
		"principal", principalName(r), "request_id", requestID(r))
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func principalName(r *http.Request) string {
	if p := PrincipalOf(r); p != nil {
		return p.Name
	}
	return ""
}
