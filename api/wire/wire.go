// Package wire holds the JSON types of gitstate's HTTP API, shared by the
// server's handlers and the Go client. It imports nothing of the server, so
// that clients stay small.
//
// openapi.yaml at the root of the repository is the API's source of truth;
// these types follow it.
package wire

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Error is the body of every error response: {"error": {...}}.
type Error struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Keys    []string `json:"keys,omitempty"`
	// Missing names what a token lacks (a scope, a repo, a prefix) on 403.
	Missing string `json:"missing,omitempty"`
	// Details locates the problem inside a value (a schema violation's
	// paths), when there is one.
	Details []Detail `json:"details,omitempty"`
}

// Detail is one located problem of an Error: Path is a JSON pointer into
// the value of Key.
type Detail struct {
	Key     string `json:"key,omitempty"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

// ErrorResponse wraps an Error.
type ErrorResponse struct {
	Error Error `json:"error"`
}

// Headers of the key-value API.
const (
	HeaderRevision    = "X-Gitstate-Revision"
	HeaderCommit      = "X-Gitstate-Commit"
	HeaderModRevision = "X-Gitstate-Mod-Revision"
	HeaderRequestID   = "X-Request-Id"
	// HeaderWatchFrom, on a watch of main, is the revision its events
	// follow: the one asked for, or the head when the watch started from
	// now. A client that loses the stream before its first event resumes
	// from it.
	HeaderWatchFrom = "X-Gitstate-Watch-From"
)

// Rev is a revision as the API accepts it in JSON: a number, or a commit id
// as a string. Its String form is what the query parameters take.
type Rev string

// UnmarshalJSON accepts a number or a string.
func (r *Rev) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*r = Rev(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("revision must be a number or a commit id")
	}
	*r = Rev(s)
	return nil
}

// MarshalJSON writes a number when the revision is one.
func (r Rev) MarshalJSON() ([]byte, error) {
	if _, err := strconv.ParseInt(string(r), 10, 64); err == nil && len(r) < 7 {
		return []byte(r), nil
	}
	return json.Marshal(string(r))
}

// RevNumber returns the Rev of a revision number.
func RevNumber(n int64) Rev { return Rev(strconv.FormatInt(n, 10)) }

// Repo describes a repo.
type Repo struct {
	Name     string `json:"name"`
	Revision int64  `json:"revision"`
	Commit   string `json:"commit,omitempty"`
}

// RepoList is the body of GET /v1/repos.
type RepoList struct {
	Repos []Repo `json:"repos"`
}

// CreateRepoRequest is the body of POST /v1/repos.
type CreateRepoRequest struct {
	Name string `json:"name"`
	// ImportFrom, when set, is a Git URL or local path to import.
	ImportFrom string `json:"import_from,omitempty"`
	// Branch is the branch to import as main (default: the remote HEAD).
	Branch string `json:"branch,omitempty"`
}

// WriteResult is the body of a successful PUT of a key.
type WriteResult struct {
	Revision int64  `json:"revision"`
	Commit   string `json:"commit"`
	ETag     string `json:"etag,omitempty"`
	Changed  bool   `json:"changed"`
}

// DeleteResult is the body of a successful DELETE of a key.
type DeleteResult struct {
	Revision int64  `json:"revision"`
	Commit   string `json:"commit"`
	Changed  bool   `json:"changed"`
}

// ListItem is one key of a list.
type ListItem struct {
	Key         string  `json:"key"`
	ETag        string  `json:"etag"`
	Size        int64   `json:"size"`
	ModRevision int64   `json:"mod_revision"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
}

// ListResponse is the body of GET .../kv.
type ListResponse struct {
	Revision int64      `json:"revision"`
	Items    []ListItem `json:"items"`
	// Next is the "after" of the following page; empty on the last page.
	Next string `json:"next"`
}

// Op is one operation of an atomic batch: "put" (key, value or
// value_base64), "delete" (key), "move" (from, to), and, with secrets,
// "put_secret" (key, value or value_base64).
type Op struct {
	Op          string  `json:"op"`
	Key         string  `json:"key,omitempty"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
	From        string  `json:"from,omitempty"`
	To          string  `json:"to,omitempty"`
}

// Precondition must hold for a batch to apply: the key has this etag, or
// is absent.
type Precondition struct {
	Key    string `json:"key"`
	ETag   string `json:"etag,omitempty"`
	Absent bool   `json:"absent,omitempty"`
}

// CommitRequest is the body of POST .../commits.
type CommitRequest struct {
	Message       string         `json:"message,omitempty"`
	Ops           []Op           `json:"ops"`
	Preconditions []Precondition `json:"preconditions,omitempty"`
	BaseRevision  Rev            `json:"base_revision,omitempty"`
}

// CommitResult is the body of a successful POST .../commits, revert or
// rollback.
type CommitResult struct {
	Revision int64  `json:"revision"`
	Commit   string `json:"commit"`
	Changed  bool   `json:"changed"`
}

// Change is one key changed by a commit. Op is "put", "delete" or "move";
// From is set for a move. ETag is the key's new blob id (not for deletes).
type Change struct {
	Key  string `json:"key"`
	Op   string `json:"op"`
	From string `json:"from,omitempty"`
	ETag string `json:"etag,omitempty"`
}

// CommitInfo describes a revision of main.
type CommitInfo struct {
	Revision    int64     `json:"revision"`
	Commit      string    `json:"commit"`
	Parents     []string  `json:"parents"`
	Author      string    `json:"author"`
	AuthorEmail string    `json:"author_email,omitempty"`
	Time        time.Time `json:"time"`
	Message     string    `json:"message"`
	Changes     []Change  `json:"changes"`
}

// CommitList is the body of GET .../commits. Next is the "after" of the
// following page (0 on the last page).
type CommitList struct {
	Commits []CommitInfo `json:"commits"`
	Next    int64        `json:"next"`
	// Revision is the head when the list was read.
	Revision int64 `json:"revision"`
}

// DiffChange is one key that differs between two revisions. Op is
// "added", "modified" or "deleted".
type DiffChange struct {
	Key      string `json:"key"`
	Op       string `json:"op"`
	FromETag string `json:"from_etag,omitempty"`
	ToETag   string `json:"to_etag,omitempty"`
	// Patch is a unified diff, with patch=true, for text values.
	Patch string `json:"patch,omitempty"`
}

// DiffResponse is the body of GET .../diff.
type DiffResponse struct {
	From    int64        `json:"from"`
	To      int64        `json:"to"`
	Changes []DiffChange `json:"changes"`
}

// RevertRequest is the body of POST .../revert.
type RevertRequest struct {
	Revision Rev    `json:"revision"`
	Force    bool   `json:"force,omitempty"`
	Message  string `json:"message,omitempty"`
}

// RollbackRequest is the body of POST .../rollback.
type RollbackRequest struct {
	To      Rev    `json:"to"`
	Prefix  string `json:"prefix,omitempty"`
	Message string `json:"message,omitempty"`
}

// Health is the body of /healthz and /readyz.
type Health struct {
	Status string `json:"status"`
}

// CreateTokenRequest is the body of POST /v1/tokens. Scopes is required;
// Repos defaults to ["*"] (every repo) and Prefixes to none (every key).
// ExpiresIn is a Go duration ("720h"); empty means the token never expires.
type CreateTokenRequest struct {
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	Repos     []string `json:"repos,omitempty"`
	Prefixes  []string `json:"prefixes,omitempty"`
	ExpiresIn string   `json:"expires_in,omitempty"`
}

// Token describes an access token. It never holds the token itself.
type Token struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	Repos  []string `json:"repos"`
	// Prefixes the token's keys must start with; empty means every key.
	Prefixes  []string   `json:"prefixes"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// CreatedToken is the body of a successful POST /v1/tokens: the token's
// description and, this once, the token itself.
type CreatedToken struct {
	Token
	// Secret is the bearer token, "gst_<id>_<secret>". The server keeps
	// only its hash: it cannot be shown again.
	Secret string `json:"token"`
}

// TokenList is the body of GET /v1/tokens.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// AuditEntry is one line of the audit log (the file holds exactly these
// JSON objects, one a line) and one entry of GET /v1/audit. It names who
// did what to which keys, never a value.
type AuditEntry struct {
	Time     time.Time `json:"time"`
	Identity string    `json:"identity,omitempty"`
	TokenID  string    `json:"token_id,omitempty"`
	Remote   string    `json:"remote,omitempty"`
	Action   string    `json:"action"`
	Method   string    `json:"method"`
	Route    string    `json:"route"`
	Repo     string    `json:"repo,omitempty"`
	Keys     []string  `json:"keys,omitempty"`
	// KeysOmitted counts the keys left out of a very large request's Keys.
	KeysOmitted int    `json:"keys_omitted,omitempty"`
	Target      string `json:"target,omitempty"`
	Status      int    `json:"status"`
	RequestID   string `json:"request_id"`
	// Revision is the revision the request made, if it made one.
	Revision int64 `json:"revision,omitempty"`
}

// AuditList is the body of GET /v1/audit: entries newest first.
// Truncated says that older entries matched beyond the limit.
type AuditList struct {
	Entries   []AuditEntry `json:"entries"`
	Truncated bool         `json:"truncated"`
}

// Duration is a length of time in JSON: a Go duration string ("24h",
// "90m") or a number of seconds.
type Duration time.Duration

// UnmarshalJSON accepts "24h" or 86400.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		// Past about 292 years a time.Duration overflows: such a number
		// (or one ParseFloat cannot hold) is out of range, not wrapped.
		f, err := n.Float64()
		// float64(MaxInt64) rounds up to 2^63, which int64 cannot hold:
		// the bound is exclusive.
		if err != nil || math.Abs(f*float64(time.Second)) >= float64(math.MaxInt64) {
			return fmt.Errorf("duration %s seconds is out of range", n)
		}
		*d = Duration(f * float64(time.Second))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"24h\" or a number of seconds")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration must be a string such as \"24h\" or a number of seconds")
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// BeginTxnRequest is the body of POST .../txns.
type BeginTxnRequest struct {
	Message string `json:"message,omitempty"`
	// TTL is how long the transaction stays open. Absent, it is the
	// server's default (24h); given, it must be from 1s to the server's
	// maximum ("0s" is refused, not taken for the default).
	TTL *Duration `json:"ttl,omitempty"`
	// Base is the revision of main the transaction starts from (default:
	// head).
	Base Rev `json:"base,omitempty"`
}

// Approval is an approval of a transaction, bound to the head it approved.
type Approval struct {
	Approver string    `json:"approver"`
	Comment  string    `json:"comment,omitempty"`
	Commit   string    `json:"commit"`
	Time     time.Time `json:"time"`
	// Valid is false once a later write moved the head (the approval is
	// voided).
	Valid bool `json:"valid"`
}

// Report is a reconciler's dry-run report on a transaction.
type Report struct {
	Reporter string `json:"reporter"`
	// By is the identity (token name) that posted the report: the
	// reporter itself, the name a sub-name ("flux/prod") is under, or an
	// administrator's. Empty on reports made before it was recorded.
	By      string          `json:"by,omitempty"`
	Status  string          `json:"status"`
	Summary string          `json:"summary,omitempty"`
	Details json.RawMessage `json:"details,omitempty"`
	Commit  string          `json:"commit"`
	Time    time.Time       `json:"time"`
	// Current is true when the report is for the current head.
	Current bool `json:"current"`
}

// TxnRequirements is what the repo's policy asks before a transaction may
// commit, and whether it is met.
type TxnRequirements struct {
	Approvals      int      `json:"approvals"`
	ValidApprovals int      `json:"valid_approvals"`
	Reports        []string `json:"reports"`
	MissingReports []string `json:"missing_reports"`
	ProtectedKeys  []string `json:"protected_keys"`
	Met            bool     `json:"met"`
}

// Txn describes a transaction.
type Txn struct {
	ID           string     `json:"id"`
	Branch       string     `json:"branch"`
	Status       string     `json:"status"`
	Author       string     `json:"author"`
	Message      string     `json:"message,omitempty"`
	BaseRevision int64      `json:"base_revision"`
	BaseCommit   string     `json:"base_commit"`
	HeadCommit   string     `json:"head_commit,omitempty"`
	MainRevision int64      `json:"main_revision,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	ClosedAt     *time.Time `json:"closed_at,omitempty"`
	ClosedBy     string     `json:"closed_by,omitempty"`
	// Revision and Commit are main's once the transaction is committed.
	Revision int64  `json:"revision,omitempty"`
	Commit   string `json:"commit,omitempty"`
	// Keys and Conflicts are set, as arrays even when empty, in full
	// descriptions only (nil, and left out, in bare records).
	Keys         []string         `json:"keys,omitzero"`
	Conflicts    []string         `json:"conflicts,omitzero"`
	Approvals    []Approval       `json:"approvals"`
	Reports      []Report         `json:"reports"`
	Requirements *TxnRequirements `json:"requirements,omitempty"`
}

// TxnList is the body of GET .../txns.
type TxnList struct {
	Txns []Txn `json:"txns"`
}

// ApproveRequest is the body of POST .../txns/{id}/approvals.
type ApproveRequest struct {
	Comment string `json:"comment,omitempty"`
}

// ReportRequest is the body of POST .../txns/{id}/reports. Commit is the
// head the reporter dry-ran (default: the current head). Reporter must be
// the caller's token name or "<name>/<sub>" (default: the caller's name);
// only an administrator may report under another name.
type ReportRequest struct {
	Reporter string          `json:"reporter,omitempty"`
	Status   string          `json:"status"`
	Summary  string          `json:"summary,omitempty"`
	Details  json.RawMessage `json:"details,omitempty"`
	Commit   string          `json:"commit,omitempty"`
}

// TxnDiff is the body of GET .../txns/{id}/diff: the transaction's changes
// against its base, or (Against "head") against main now.
type TxnDiff struct {
	Against string       `json:"against"`
	Changes []DiffChange `json:"changes"`
}

// SecretItem is one secret of a list: its key (without the .sops.json of
// its file), the etag of its encrypted document and the revision that last
// changed it. Never its value.
type SecretItem struct {
	Key         string `json:"key"`
	ETag        string `json:"etag"`
	ModRevision int64  `json:"mod_revision"`
}

// SecretList is the body of GET .../secrets.
type SecretList struct {
	Revision int64        `json:"revision"`
	Items    []SecretItem `json:"items"`
	// Next is the "after" of the following page; empty on the last page.
	Next string `json:"next"`
}

// RotateRequest is the body of POST .../secrets/rotate: re-encrypt every
// secret under Prefix to the recipients .gitstate/sops.yaml gives it now,
// under new data keys, or (KeepDataKey) only re-wrapping the current ones.
type RotateRequest struct {
	Prefix      string `json:"prefix,omitempty"`
	KeepDataKey bool   `json:"keep_data_key,omitempty"`
	Message     string `json:"message,omitempty"`
}

// RotateResult is the body of a successful POST .../secrets/rotate. Keys
// lists the secrets re-encrypted.
type RotateResult struct {
	Revision int64    `json:"revision"`
	Commit   string   `json:"commit"`
	Changed  bool     `json:"changed"`
	Keys     []string `json:"keys"`
}

// WatchEvent is the data of an SSE "revision" event (and the body of a
// webhook delivery): one revision of main, or one commit of a transaction's
// branch (then Revision is 0), with its changes under the watched prefix.
type WatchEvent struct {
	Revision int64     `json:"revision,omitempty"`
	Commit   string    `json:"commit"`
	Author   string    `json:"author"`
	Time     time.Time `json:"time"`
	Message  string    `json:"message"`
	Changes  []Change  `json:"changes"`
}

// WatchProgress is the data of an SSE "progress" event: the head revision,
// sent periodically and after revisions the watch filtered out, so that a
// client resuming from it does not replay them.
type WatchProgress struct {
	Revision int64 `json:"revision"`
}

// WatchClose is the data of an SSE "close" event: why the server ends the
// stream, and the id to resume from.
type WatchClose struct {
	Reason string `json:"reason"`
	Resume string `json:"resume,omitempty"`
	// Retry is set when the server ended the stream for its own reasons
	// (shutting down, an error): reconnecting from Resume carries on.
	// Other closes (a revoked token, a transaction's end) would end a
	// new stream the same way.
	Retry bool `json:"retry,omitempty"`
}

// Headers of a webhook delivery.
const (
	// HeaderSignature is "sha256=<hex>": the HMAC-SHA256 of the body, keyed
	// with the webhook's secret.
	HeaderSignature = "X-Gitstate-Signature"
	// HeaderDelivery identifies one event of one webhook; it is the same
	// on every retry (and across server restarts), for de-duplication.
	HeaderDelivery = "X-Gitstate-Delivery"
	// HeaderEvent names the event: "revision".
	HeaderEvent = "X-Gitstate-Event"
	// HeaderWebhook is the id of the webhook delivering.
	HeaderWebhook = "X-Gitstate-Webhook"
)

// CreateWebhookRequest is the body of POST .../webhooks.
type CreateWebhookRequest struct {
	// URL receives the deliveries (http or https).
	URL string `json:"url"`
	// Prefix keeps the changes under it; revisions that change nothing
	// under it are not delivered.
	Prefix string `json:"prefix,omitempty"`
	// Secret keys the signature of each delivery. It is never sent back.
	Secret string `json:"secret"`
	// Events the webhook receives (default and only: ["revision"]).
	Events []string `json:"events,omitempty"`
	// From is the revision after which deliveries start (default the
	// head: the next revision is the first delivered).
	From Rev `json:"from,omitempty"`
}

// Webhook describes a webhook (never its secret).
type Webhook struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Prefix    string    `json:"prefix"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"created_at"`
	// Position is the last revision delivered or passed over (it changed
	// nothing under the prefix); the next delivery is of a later one.
	Position int64 `json:"position"`
	// Pending is how many revisions of main are after Position.
	Pending int64 `json:"pending"`
	// Failures counts the failed attempts since the last success.
	Failures     int              `json:"failures"`
	LastDelivery *WebhookDelivery `json:"last_delivery,omitempty"`
}

// WebhookList is the body of GET .../webhooks.
type WebhookList struct {
	Webhooks []Webhook `json:"webhooks"`
}

// WebhookDelivery is one attempt to deliver a revision.
type WebhookDelivery struct {
	// ID is the delivery id (X-Gitstate-Delivery), the same for every
	// attempt of one revision.
	ID       string    `json:"id"`
	Revision int64     `json:"revision"`
	Attempt  int       `json:"attempt"`
	Time     time.Time `json:"time"`
	// StatusCode is the receiver's HTTP status (absent when there was no
	// response).
	StatusCode int      `json:"status_code,omitempty"`
	Error      string   `json:"error,omitempty"`
	Duration   Duration `json:"duration"`
	// OK is true when the receiver answered 2xx.
	OK bool `json:"ok"`
}

// WebhookDeliveryList is the body of GET .../webhooks/{id}/deliveries.
type WebhookDeliveryList struct {
	Deliveries []WebhookDelivery `json:"deliveries"`
}

// ReconcilerStatusRequest is the body of POST .../reconcilers/{name}/status.
type ReconcilerStatusRequest struct {
	// Revision is the revision the report is about.
	Revision Rev `json:"revision"`
	// State is "applied", "progressing", "failed" or "drifted".
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
	// Interval is how often the reconciler reports; silent for twice as
	// long, it is stale.
	Interval Duration `json:"interval,omitempty"`
}

// Reconciler is what is known of a reconciler's convergence.
type Reconciler struct {
	Name string `json:"name"`
	// State and Revision are those of the last report (an "applied" report
	// older than the applied revision changes neither).
	State    string `json:"state"`
	Revision int64  `json:"revision"`
	Message  string `json:"message,omitempty"`
	// AppliedRevision is the newest revision reported applied (0: none).
	AppliedRevision int64     `json:"applied_revision"`
	LastReport      time.Time `json:"last_report"`
	Interval        Duration  `json:"interval,omitempty"`
	// LagRevisions is how many revisions of main are after the applied
	// one; LagSeconds how long ago the first of them was committed (0 at
	// the head).
	LagRevisions int64   `json:"lag_revisions"`
	LagSeconds   float64 `json:"lag_seconds"`
	// Stale is true when the reconciler has been silent for more than twice
	// its interval.
	Stale bool `json:"stale"`
}

// ReconcilerList is the body of GET .../reconcilers.
type ReconcilerList struct {
	// Revision is the head the lags are measured from.
	Revision    int64        `json:"revision"`
	Reconcilers []Reconciler `json:"reconcilers"`
}

// Rollout is the body of GET .../commits/{rev}/rollout: which reconcilers
// have applied a revision (or a later one), and which not.
type Rollout struct {
	Revision int64 `json:"revision"`
	// Commit is the revision's commit (absent for revision 0).
	Commit string `json:"commit,omitempty"`
	// Head is main's head when the rollout was read.
	Head    int64        `json:"head"`
	Applied []Reconciler `json:"applied"`
	Pending []Reconciler `json:"pending"`
	// Converged is true when no reconciler is pending.
	Converged bool `json:"converged"`
}
