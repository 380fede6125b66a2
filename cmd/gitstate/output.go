package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// printer writes the results of the client commands: one method per kind
// of result. textPrinter is for people, jsonPrinter for scripts.
type printer interface {
	value(v *client.Value) error
	write(r *wire.WriteResult) error
	deleted(r *wire.DeleteResult) error
	commit(r *wire.CommitResult) error
	list(r *wire.ListResponse) error
	log(r *wire.CommitList) error
	diff(r *wire.DiffResponse) error
	repos(r *wire.RepoList) error
	repo(r *wire.Repo) error
	event(e *client.Event) error

	// Transactions (txn.go).
	txnBegun(t *wire.Txn) error
	txn(t *wire.Txn) error
	txns(l *wire.TxnList) error
	txnDiff(d *wire.TxnDiff) error
	txnApproved(t *wire.Txn) error
	txnReported(t *wire.Txn, reporter string) error
	txnRebased(t *wire.Txn) error
	txnAborted(t *wire.Txn) error

	// Convergence (reconcilers.go, rollout.go, webhook.go).
	reconcilers(l *wire.ReconcilerList) error
	reconcilerDeleted(name string) error
	rollout(r *wire.Rollout) error
	webhookCreated(h *createdWebhook) error
	webhooks(l *wire.WebhookList) error
	webhookDeleted(h *wire.Webhook) error
	deliveries(l *wire.WebhookDeliveryList) error

	// Tokens (token.go).
	tokenCreated(t *wire.CreatedToken) error
	tokens(l *wire.TokenList) error
	tokenRevoked(t *wire.Token) error

	// The audit log (audit.go).
	audit(l *wire.AuditList) error
}

// printer returns the printer -o names, writing to w.
func (g *globalOptions) printer(w io.Writer) (printer, error) {
	switch g.output {
	case "text":
		return &textPrinter{w: w, inTxn: g.txn}, nil
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return &jsonPrinter{w: w, enc: enc}, nil
	}
	return nil, usageErrorf("-o/--output must be text or json, not %q", g.output)
}

// getOutput is the JSON of "get": a list item with its value, and the
// revision read.
type getOutput struct {
	wire.ListItem
	Revision int64  `json:"revision"`
	Commit   string `json:"commit"`
}

// jsonPrinter prints the API's JSON responses.
type jsonPrinter struct {
	w   io.Writer
	enc *json.Encoder
}

func (p *jsonPrinter) value(v *client.Value) error {
	out := getOutput{
		ListItem: wire.ListItem{Key: v.Key, ETag: v.ETag, Size: v.Size, ModRevision: v.ModRevision},
		Revision: v.Revision,
		Commit:   v.Commit,
	}
	if utf8.Valid(v.Data) {
		s := string(v.Data)
		out.Value = &s
	} else {
		s := base64.StdEncoding.EncodeToString(v.Data)
		out.ValueBase64 = &s
	}
	return p.enc.Encode(out)
}

func (p *jsonPrinter) write(r *wire.WriteResult) error    { return p.enc.Encode(r) }
func (p *jsonPrinter) deleted(r *wire.DeleteResult) error { return p.enc.Encode(r) }
func (p *jsonPrinter) commit(r *wire.CommitResult) error  { return p.enc.Encode(r) }
func (p *jsonPrinter) list(r *wire.ListResponse) error    { return p.enc.Encode(r) }
func (p *jsonPrinter) log(r *wire.CommitList) error       { return p.enc.Encode(r) }
func (p *jsonPrinter) diff(r *wire.DiffResponse) error    { return p.enc.Encode(r) }
func (p *jsonPrinter) repos(r *wire.RepoList) error       { return p.enc.Encode(r) }
func (p *jsonPrinter) repo(r *wire.Repo) error            { return p.enc.Encode(r) }

func (p *jsonPrinter) txnBegun(t *wire.Txn) error                     { return p.enc.Encode(t) }
func (p *jsonPrinter) txn(t *wire.Txn) error                          { return p.enc.Encode(t) }
func (p *jsonPrinter) txns(l *wire.TxnList) error                     { return p.enc.Encode(l) }
func (p *jsonPrinter) txnDiff(d *wire.TxnDiff) error                  { return p.enc.Encode(d) }
func (p *jsonPrinter) txnApproved(t *wire.Txn) error                  { return p.enc.Encode(t) }
func (p *jsonPrinter) txnReported(t *wire.Txn, reporter string) error { return p.enc.Encode(t) }
func (p *jsonPrinter) txnRebased(t *wire.Txn) error                   { return p.enc.Encode(t) }
func (p *jsonPrinter) txnAborted(t *wire.Txn) error                   { return p.enc.Encode(t) }

func (p *jsonPrinter) reconcilers(l *wire.ReconcilerList) error { return p.enc.Encode(l) }
func (p *jsonPrinter) rollout(r *wire.Rollout) error            { return p.enc.Encode(r) }
func (p *jsonPrinter) webhookCreated(h *createdWebhook) error   { return p.enc.Encode(h) }
func (p *jsonPrinter) webhooks(l *wire.WebhookList) error       { return p.enc.Encode(l) }
func (p *jsonPrinter) webhookDeleted(h *wire.Webhook) error     { return p.enc.Encode(h) }
func (p *jsonPrinter) deliveries(l *wire.WebhookDeliveryList) error {
	return p.enc.Encode(l)
}

// reconcilerDeleted prints {"deleted": name}: the route answers 204.
func (p *jsonPrinter) reconcilerDeleted(name string) error {
	return p.enc.Encode(struct {
		Deleted string `json:"deleted"`
	}{name})
}

func (p *jsonPrinter) tokenCreated(t *wire.CreatedToken) error { return p.enc.Encode(t) }
func (p *jsonPrinter) tokens(l *wire.TokenList) error          { return p.enc.Encode(l) }
func (p *jsonPrinter) tokenRevoked(t *wire.Token) error        { return p.enc.Encode(t) }

// watchEventOutput is the JSON of one watch event: one line each.
type watchEventOutput struct {
	Type     string              `json:"type"`
	ID       string              `json:"id,omitempty"`
	Revision *wire.WatchEvent    `json:"revision,omitempty"`
	Progress *wire.WatchProgress `json:"progress,omitempty"`
	Close    *wire.WatchClose    `json:"close,omitempty"`
}

func (p *jsonPrinter) event(e *client.Event) error {
	// One compact line per event, so that a script can read them as they
	// come.
	b, err := json.Marshal(watchEventOutput{Type: e.Type, ID: e.ID, Revision: e.Revision, Progress: e.Progress, Close: e.Close})
	if err != nil {
		return err
	}
	_, err = p.w.Write(append(b, '\n'))
	return err
}

// textPrinter prints for people: values raw, everything else in lines.
type textPrinter struct {
	w io.Writer
	// inTxn is the transaction the key-value commands act in, named in
	// the results of their writes.
	inTxn string
}

// value prints the value's bytes as they are, so that "get" can be
// redirected to a file.
func (p *textPrinter) value(v *client.Value) error {
	_, err := p.w.Write(v.Data)
	return err
}

// write prints "revision N commit C etag E", or for a write in a
// transaction (a branch has no revisions) "txn ID commit C etag E".
func (p *textPrinter) write(r *wire.WriteResult) error {
	if !r.Changed {
		return p.unchanged(r.Revision)
	}
	return p.printf("%s commit %s etag %s\n", p.where(r.Revision), r.Commit, r.ETag)
}

func (p *textPrinter) deleted(r *wire.DeleteResult) error {
	return p.commit(&wire.CommitResult{Revision: r.Revision, Commit: r.Commit, Changed: r.Changed})
}

func (p *textPrinter) commit(r *wire.CommitResult) error {
	if !r.Changed {
		return p.unchanged(r.Revision)
	}
	return p.printf("%s commit %s\n", p.where(r.Revision), r.Commit)
}

// where names where a write landed: "revision N" on main, "txn ID" on a
// transaction's branch (whose writes answer revision 0).
func (p *textPrinter) where(rev int64) string {
	if rev == 0 && p.inTxn != "" {
		return "txn " + p.inTxn
	}
	return fmt.Sprintf("revision %d", rev)
}

func (p *textPrinter) unchanged(rev int64) error {
	if rev == 0 && p.inTxn != "" {
		return p.printf("unchanged in txn %s\n", p.inTxn)
	}
	return p.printf("unchanged at revision %d\n", rev)
}

// list prints a key a line, or with values "key<TAB>value", the value
// quoted when it is not one line of plain text and base64 when it is not
// UTF-8.
func (p *textPrinter) list(r *wire.ListResponse) error {
	for _, it := range r.Items {
		var err error
		switch {
		case it.Value != nil:
			err = p.printf("%s\t%s\n", it.Key, quoteIfNeeded(*it.Value))
		case it.ValueBase64 != nil:
			err = p.printf("%s\tbase64:%s\n", it.Key, *it.ValueBase64)
		default:
			err = p.printf("%s\n", it.Key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// quoteIfNeeded returns s as it is when it is one line of printable text,
// else Go-quoted.
func quoteIfNeeded(s string) string {
	q := strconv.Quote(s)
	if q[1:len(q)-1] == s {
		return s
	}
	return q
}

// event prints a revision like a log entry; progress and close events go
// to the same stream as comments.
func (p *textPrinter) event(e *client.Event) error {
	switch {
	case e.Revision != nil:
		r := e.Revision
		subject, _, _ := strings.Cut(r.Message, "\n")
		head := fmt.Sprintf("r%d", r.Revision)
		if r.Revision == 0 {
			head = "commit"
		}
		if err := p.printf("%s %s %s %s: %s\n", head, shortID(r.Commit), r.Time.UTC().Format("2006-01-02T15:04:05Z"), r.Author, subject); err != nil {
			return err
		}
		for _, ch := range r.Changes {
			var err error
			if ch.Op == "move" {
				err = p.printf("    move %s -> %s\n", ch.From, ch.Key)
			} else {
				err = p.printf("    %s %s\n", ch.Op, ch.Key)
			}
			if err != nil {
				return err
			}
		}
	case e.Close != nil:
		return p.printf("# closed: %s\n", e.Close.Reason)
	}
	return nil
}

// log prints a commit a paragraph: revision, commit, time, author and
// subject, then a line per change.
func (p *textPrinter) log(r *wire.CommitList) error {
	for _, c := range r.Commits {
		subject, _, _ := strings.Cut(c.Message, "\n")
		if err := p.printf("r%d %s %s %s: %s\n", c.Revision, shortID(c.Commit), c.Time.UTC().Format("2006-01-02T15:04:05Z"), c.Author, subject); err != nil {
			return err
		}
		for _, ch := range c.Changes {
			var err error
			if ch.Op == "move" {
				err = p.printf("    move %s -> %s\n", ch.From, ch.Key)
			} else {
				err = p.printf("    %s %s\n", ch.Op, ch.Key)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// diff prints "A|M|D<TAB>key" lines, like git diff --name-status, and the
// unified diff of each text change when there is one.
func (p *textPrinter) diff(r *wire.DiffResponse) error {
	for _, c := range r.Changes {
		if c.Patch != "" {
			if err := p.printf("%s", c.Patch); err != nil {
				return err
			}
			continue
		}
		letter := map[string]string{"added": "A", "modified": "M", "deleted": "D"}[c.Op]
		if letter == "" {
			letter = c.Op
		}
		if err := p.printf("%s\t%s\n", letter, c.Key); err != nil {
			return err
		}
	}
	return nil
}

func (p *textPrinter) repos(r *wire.RepoList) error {
	for i := range r.Repos {
		if err := p.repo(&r.Repos[i]); err != nil {
			return err
		}
	}
	return nil
}

func (p *textPrinter) repo(r *wire.Repo) error {
	return p.printf("%s\trevision %d\n", r.Name, r.Revision)
}

func (p *textPrinter) printf(format string, args ...any) error {
	_, err := fmt.Fprintf(p.w, format, args...)
	return err
}

// shortID abbreviates a commit id to 12 digits.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
