package wire

import "time"

// ImportStatus is an import's progress and, once it ends, its outcome: the
// body of the 202 that starts one (POST /v1/repos with import_from) and of
// GET /v1/repos/{repo}/import.
type ImportStatus struct {
	Repo   string `json:"repo"`
	Source string `json:"source"`
	Branch string `json:"branch,omitempty"`
	// State is "running", "done" or "failed".
	State string `json:"state"`
	// Phase is what the import does now ("connecting", "receiving
	// objects", "resolving deltas", "indexing revisions", "checking
	// entries", "done"); Done and Total count its progress (Total 0:
	// unknown).
	Phase    string        `json:"phase"`
	Done     int64         `json:"done"`
	Total    int64         `json:"total"`
	Started  time.Time     `json:"started"`
	Finished *time.Time    `json:"finished,omitempty"`
	Error    string        `json:"error,omitempty"`
	Report   *ImportReport `json:"report,omitempty"`
}

// ImportReport describes what an import brought in, at main's head: the
// entries that are not plain files, imported untouched. Each list holds at
// most 100 paths; the counts are complete.
type ImportReport struct {
	Revisions        int64    `json:"revisions"`
	Commit           string   `json:"commit"`
	Keys             int64    `json:"keys"`
	Objects          int64    `json:"objects"`
	Seconds          float64  `json:"seconds"`
	Executables      []string `json:"executables"`
	ExecutableCount  int      `json:"executable_count"`
	Symlinks         []string `json:"symlinks"`
	SymlinkCount     int      `json:"symlink_count"`
	Submodules       []string `json:"submodules"`
	SubmoduleCount   int      `json:"submodule_count"`
	EmptyTrees       []string `json:"empty_trees"`
	EmptyTreeCount   int      `json:"empty_tree_count"`
	InvalidKeys      []string `json:"invalid_keys"`
	InvalidKeyCount  int      `json:"invalid_key_count"`
	InvalidKeyErrors []string `json:"invalid_key_errors"`
	// Warnings are what will not work as it is (a secret's file that is
	// not encrypted: code not_encrypted); at most 100, WarningCount all.
	Warnings     []ImportWarning `json:"warnings"`
	WarningCount int             `json:"warning_count"`
}

// ImportWarning is one warning of an ImportReport.
type ImportWarning struct {
	Code    string `json:"code"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Upstream modes.
const (
	// UpstreamMirror pushes main to the upstream after each commit.
	UpstreamMirror = "mirror"
	// UpstreamFollow fetches the upstream and fast-forwards main to it.
	UpstreamFollow = "follow"
)

// UpstreamConfig is the body of PUT /v1/repos/{repo}/upstream. Password,
// Token and WebhookSecret are write-only: kept encrypted, never shown.
type UpstreamConfig struct {
	// URL is the upstream's Git URL (http, https, ssh, git or file). A
	// password in it is taken out and kept as Password.
	URL string `json:"url"`
	// Mode is "mirror" or "follow".
	Mode string `json:"mode"`
	// Branch is the upstream's branch (default main).
	Branch string `json:"branch,omitempty"`
	// Username and Password are HTTP basic credentials; Token is sent as
	// a bearer token instead.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Token    string `json:"token,omitempty"`
	// PushTxns (mirror) also pushes the open transactions' branches.
	PushTxns bool `json:"push_txns,omitempty"`
	// Interval (follow) is how often to fetch (default 1m).
	Interval Duration `json:"interval,omitempty"`
	// WebhookSecret (follow) is the key that signs the upstream's
	// webhooks (HMAC-SHA256), which start a fetch at once.
	WebhookSecret string `json:"webhook_secret,omitempty"`
}

// Upstream is a repo's upstream and its state: the body of GET, PUT and
// POST .../sync on /v1/repos/{repo}/upstream.
type Upstream struct {
	Repo     string   `json:"repo"`
	URL      string   `json:"url"`
	Mode     string   `json:"mode"`
	Branch   string   `json:"branch"`
	Username string   `json:"username,omitempty"`
	PushTxns bool     `json:"push_txns"`
	Interval Duration `json:"interval"`
	// Credentials says whether a password or token is kept; Webhook
	// whether a webhook secret is.
	Credentials bool           `json:"credentials"`
	Webhook     bool           `json:"webhook"`
	Status      UpstreamStatus `json:"status"`
}

// UpstreamStatus is where a repo stands against its upstream.
type UpstreamStatus struct {
	// State is "pending" (not synced yet), "in_sync", "behind" (mirror:
	// revisions wait to be pushed), "retrying" (the last attempt failed),
	// "refused" (follow: the upstream's commits break the repo's checks),
	// "ahead" (follow: main has revisions the upstream lacks) or
	// "diverged" (both moved: resolve by hand).
	State    string `json:"state"`
	Diverged bool   `json:"diverged"`
	// Message says why, for every state but in_sync.
	Message string `json:"message,omitempty"`
	// Ours is main's head; Theirs the upstream branch's, as last seen.
	Ours   string `json:"ours,omitempty"`
	Theirs string `json:"theirs,omitempty"`
	// Revision is the last revision the upstream was known to hold.
	Revision int64 `json:"revision"`
	// LagRevisions counts main's revisions the upstream lacks (mirror);
	// LagSeconds is how long it has lacked them.
	LagRevisions int64   `json:"lag_revisions"`
	LagSeconds   float64 `json:"lag_seconds"`
	// Failures counts the attempts failed in a row.
	Failures    int        `json:"failures"`
	LastSync    *time.Time `json:"last_sync,omitempty"`
	LastAttempt *time.Time `json:"last_attempt,omitempty"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
}

// UpstreamWebhookResult is the body of the 202 of POST .../upstream/webhook.
type UpstreamWebhookResult struct {
	Queued bool `json:"queued"`
}
