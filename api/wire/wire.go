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

// Duration is a length of time in JSON: a Go duration string ("24h",
// "90m") or a number of seconds.
type Duration time.Duration

// UnmarshalJSON accepts "24h" or 86400.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		f, err := n.Float64()
		if err != nil {
			return err
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
	Message string   `json:"message,omitempty"`
	TTL     Duration `json:"ttl,omitempty"`
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
	Reporter string          `json:"reporter"`
	Status   string          `json:"status"`
	Summary  string          `json:"summary,omitempty"`
	Details  json.RawMessage `json:"details,omitempty"`
	Commit   string          `json:"commit"`
	Time     time.Time       `json:"time"`
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
	Revision     int64            `json:"revision,omitempty"`
	Commit       string           `json:"commit,omitempty"`
	Keys         []string         `json:"keys,omitempty"`
	Conflicts    []string         `json:"conflicts,omitempty"`
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
// head the reporter dry-ran (default: the current head).
type ReportRequest struct {
	Reporter string          `json:"reporter"`
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
