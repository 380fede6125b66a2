// Package gitstate holds the few types every layer of gitstate shares: the
// error type with its stable kinds and wire codes.
//
// gitstate is a Git-native desired-state store. The layers live in their own
// packages:
//
//   - storage: Git repositories on disk (objects, refs, a write-ahead journal),
//     revisions and the key index.
//   - txn: branch transactions (open, write, preview, approve, commit).
//   - secrets: SOPS-encrypted values.
//   - watch: revision streams and webhooks.
//   - api: the HTTP API; server: the process around it.
//   - clients/go: the Go client; cmd/gitstate: the server and CLI binary.
//
// See docs/ARCHITECTURE.md for how they fit together.
package gitstate
