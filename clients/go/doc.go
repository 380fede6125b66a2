// Package client is the Go client of gitstate's HTTP API: a typed wrapper
// over net/http for every route the server serves, except /metrics (scrape
// that with Prometheus).
//
// A Client is created once with New and is safe for concurrent use by many
// goroutines; it keeps no state between calls beyond its http.Client's
// connection pool. Repo returns a handle on one repo's keys, commits and
// history:
//
//	c, err := client.New("http://127.0.0.1:7070", client.WithToken(tok))
//	kv := c.Repo("default")
//	res, err := kv.Put(ctx, "apps/web/replicas", []byte("3"), nil)
//	v, err := kv.Get(ctx, "apps/web/replicas", nil)
//
// # Transactions
//
// Repo.BeginTxn opens a transaction: a branch of main where writes wait,
// invisible on main, until Repo.CommitTxn applies them in one merge commit
// (or Repo.AbortTxn drops them). Repo.Txn returns a handle on its keys with
// the same calls as Repo's (Get, Put, Delete, List, Pages, Items, ListAll,
// Commit), on the transaction's branch:
//
//	t, err := kv.BeginTxn(ctx, &client.BeginTxnOptions{Message: "scale web"})
//	tx := kv.Txn(t.ID)
//	_, err = tx.Put(ctx, "apps/web/replicas", []byte("5"), nil)
//	d, err := kv.TxnDiff(ctx, t.ID, &client.TxnDiffOptions{Patch: true})
//	res, err := kv.CommitTxn(ctx, t.ID) // 409 merge_conflict: nothing committed
//
// # Secrets
//
// A secret is a value the server keeps encrypted in the repo as a SOPS
// document: the secret "k" is the file "k.sops.json" of the tree, encrypted
// to the recipients of the repo's .gitstate/sops.yaml (the server's own age
// key by default). PutSecret, GetSecret, DeleteSecret, ListSecrets,
// SecretItems, ListAllSecrets and RotateSecrets take and give plaintext, on
// Repo (main) and on Txn (a transaction's branch, invisible on main until
// it is committed); Get and List see the encrypted documents, as any Git
// client does. Reading needs scope secrets:read, writing secrets:write
// (and txn too, inside a transaction); listing takes secrets:read or read.
// A server run without secrets answers them with code "not_found". The
// client puts no secret's value in an error, and the server's errors hold
// none:
//
//	_, err = kv.PutSecret(ctx, "apps/web/db-password", pw, nil)
//	s, err := kv.GetSecret(ctx, "apps/web/db-password", nil) // s.Data == pw
//
// Repo also covers webhooks (CreateWebhook, ...) and reconcilers' convergence
// (ReportStatus, Reconcilers, Rollout); Client covers tokens (CreateToken,
// ...) and the audit log (Audit).
//
// Request and response bodies are the JSON types of package
// github.com/gitstate/gitstate/api/wire, returned as decoded. Every returned
// value, including byte slices, belongs to the caller.
//
// # Errors
//
// A response with a status other than 2xx (and 304 for a conditional Get)
// becomes a *gitstate.Error: its Kind comes from the HTTP status (the same
// mapping the server uses, in reverse), its Code, Message and Keys from the
// JSON error body. Match it with errors.Is against the sentinels of package
// gitstate (gitstate.ErrKeyNotFound, gitstate.ErrPreconditionFailed, ...) or
// with errors.As. On 403 the error's cause is a *MissingError naming what the
// token lacks. Transport failures are returned as net/http reports them.
//
// # Caveats
//
// The client does not retry: a write whose response is lost may or may not
// have been applied. Use preconditions (PutOptions.IfMatch, Commit
// preconditions) to make a retried write safe. Keys are sent as given; the
// server validates them.
//
// The package links nothing of the server: it imports only the standard
// library, package gitstate and api/wire (a test checks it).
package client
