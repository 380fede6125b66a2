package server

import (
	"context"
	"errors"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/secrets"
	"github.com/gitstate/gitstate/storage"
	"github.com/gitstate/gitstate/txn"
)

// checkImport is the store's storage.ImportCheck: what a repository brings
// in must not break the repo it becomes, and what will fail later is said
// now, in the import's report, rather than at the first write or read.
//
//   - A policy (.gitstate/policy.yaml) that does not parse refuses the
//     import. Imported, it would fail every direct write on main with 422
//     invalid_policy, and a git push or an upstream's commit bringing the
//     same file is refused too: the source is where to fix it.
//   - A secret's file (*.sops.json) that is not a SOPS-encrypted document
//     is imported, with a warning: reading it as a secret fails with 422
//     not_encrypted until it is written again through the secrets API. It
//     is one key among others, and its plaintext is in the source's
//     history already.
func checkImport(ctx context.Context, head *storage.ImportHead) ([]storage.ImportWarning, error) {
	policy, err := head.Read(txn.PolicyKey)
	switch {
	case err == nil:
		if _, perr := txn.ParsePolicy(policy, head.Read); perr != nil {
			return nil, gitstate.Errorf(gitstate.KindUnprocessable, "invalid_policy",
				"the source's policy does not parse, and would refuse every direct write (422 invalid_policy): %s; fix it in the source and import again",
				messageOf(perr))
		}
	case !errors.Is(err, gitstate.ErrKeyNotFound):
		return nil, err
	}
	var warnings []storage.ImportWarning
	for _, p := range head.Paths() {
		if !secrets.IsSecretPath(p) {
			continue
		}
		doc, err := head.Read(p)
		if err != nil {
			return nil, err
		}
		if cerr := secrets.CheckDocument(p, doc); cerr != nil {
			warnings = append(warnings, storage.ImportWarning{Code: "not_encrypted", Path: p,
				Message: messageOf(cerr) + "; reading it as a secret fails (422 not_encrypted) until it is written again through the secrets API"})
		}
	}
	return warnings, nil
}

// messageOf returns the message of err's *gitstate.Error, or its text.
func messageOf(err error) string {
	var ge *gitstate.Error
	if errors.As(err, &ge) {
		return ge.Message
	}
	return err.Error()
}
