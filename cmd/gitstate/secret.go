package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/gitstate/gitstate/api/wire"
	client "github.com/gitstate/gitstate/clients/go"
)

// secretOptions are the flags every secret command shares: the client
// commands' global flags (--txn among them).
type secretOptions struct {
	g *globalOptions
}

func newSecretCmd(g *globalOptions) *cobra.Command {
	o := &secretOptions{g: g}
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Write, read, list, delete and rotate secrets (SOPS-encrypted values)",
		Long: `Secrets are values kept encrypted in the repo, as SOPS documents
(<key>.sops.json in the tree), versioned in the same commits as the rest of
the state ("gitstate log --key NAME" lists a secret's commits by its name).
The server encrypts them to the recipients of the repo's
.gitstate/sops.yaml (its own age key by default).

A secret's value is read from stdin or from a file, never from the command
line, where it would land in the shell's history and in ps.

The server is $GITSTATE_SERVER (--server), the token $GITSTATE_TOKEN, and
$GITSTATE_TXN (--txn) works inside a transaction.`,
	}
	cmd.AddCommand(newSecretPutCmd(o), newSecretGetCmd(o), newSecretLsCmd(o), newSecretRmCmd(o), newSecretRotateCmd(o))
	return cmd
}

type secretPutOptions struct {
	*secretOptions
	fromFile string
	message  string
	ifMatch  string
	create   bool
}

func newSecretPutCmd(so *secretOptions) *cobra.Command {
	o := &secretPutOptions{secretOptions: so}
	cmd := &cobra.Command{
		Use:   "put KEY [--from-file FILE]",
		Short: "Write a secret, reading its value from stdin or a file",
		Long: `Write a secret. The value is read, byte for byte, from --from-file or
from stdin (printf '%s' "$PASSWORD" | gitstate secret put apps/web/db, or
gitstate secret put apps/web/db < file); mind the trailing newline that echo
adds. Writing the value it already has makes no commit.`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: so.g.runE(func(cmd *cobra.Command, args []string) error {
			value, err := o.value(cmd, args)
			if err != nil {
				return err
			}
			defer clear(value)
			sec, err := o.secrets()
			if err != nil {
				return err
			}
			res, err := sec.PutSecret(cmd.Context(), args[0], value, &client.PutOptions{IfMatch: o.ifMatch, Create: o.create, Message: o.message})
			if err != nil {
				return err
			}
			return o.print(cmd, res, func(w io.Writer) {
				if res.Changed {
					fmt.Fprintf(w, "wrote %s: %s, etag %s\n", args[0], o.landed(res.Revision, res.Commit), res.ETag)
				} else {
					fmt.Fprintf(w, "%s already has this value: no commit (%s)\n", args[0], o.at(res.Revision))
				}
			})
		}),
	}
	f := cmd.Flags()
	f.StringVarP(&o.fromFile, "from-file", "f", "", "read the value from this file (- for stdin)")
	f.StringVarP(&o.message, "message", "m", "", "commit message")
	f.StringVar(&o.ifMatch, "if-match", "", `write only if the secret's etag is this one ("*": only if it exists)`)
	f.BoolVar(&o.create, "create", false, "write only if the secret does not exist")
	return cmd
}

// value reads the secret's value: from --from-file, else from stdin. A
// value given as an argument is taken, with a warning.
func (o *secretPutOptions) value(cmd *cobra.Command, args []string) ([]byte, error) {
	stderr := cmd.ErrOrStderr()
	switch {
	case len(args) == 2 && o.fromFile != "":
		return nil, errors.New("give the value with --from-file or on stdin, not as an argument too")
	case len(args) == 2:
		fmt.Fprintln(stderr, "gitstate: warning: a secret given on the command line lands in your shell's history and in ps; pipe it on stdin or use --from-file")
		return []byte(args[1]), nil
	case o.fromFile != "" && o.fromFile != "-":
		return os.ReadFile(o.fromFile)
	}
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(stderr, "gitstate: reading the secret from the terminal; end it with Ctrl-D")
		}
	}
	v, err := io.ReadAll(in)
	if err != nil {
		return nil, fmt.Errorf("read the value: %w", err)
	}
	if len(v) == 0 {
		return nil, errors.New("empty value: pipe the secret on stdin or use --from-file")
	}
	return v, nil
}

type secretGetOptions struct {
	*secretOptions
	rev string
}

func newSecretGetCmd(so *secretOptions) *cobra.Command {
	o := &secretGetOptions{secretOptions: so}
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Print a secret's value (every read is audited)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: so.g.runE(func(cmd *cobra.Command, args []string) error {
			sec, err := o.secrets()
			if err != nil {
				return err
			}
			v, err := sec.GetSecret(cmd.Context(), args[0], &client.GetOptions{Rev: wire.Rev(o.rev)})
			if err != nil {
				return err
			}
			defer clear(v.Data)
			if o.g.output == "json" {
				// As for get: "value" when it is UTF-8, else "value_base64".
				out := map[string]string{"key": args[0]}
				if utf8.Valid(v.Data) {
					out["value"] = string(v.Data)
				} else {
					out["value_base64"] = base64.StdEncoding.EncodeToString(v.Data)
				}
				return json.NewEncoder(cmd.OutOrStdout()).Encode(out)
			}
			_, err = cmd.OutOrStdout().Write(v.Data)
			return err
		}),
	}
	cmd.Flags().StringVar(&o.rev, "rev", "", "read at this revision (number or commit id)")
	return cmd
}

type secretLsOptions struct {
	*secretOptions
	rev string
}

func newSecretLsCmd(so *secretOptions) *cobra.Command {
	o := &secretLsOptions{secretOptions: so}
	cmd := &cobra.Command{
		Use:   "ls [PREFIX]",
		Short: "List secrets (keys and revisions, never values)",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: so.g.runE(func(cmd *cobra.Command, args []string) error {
			sec, err := o.secrets()
			if err != nil {
				return err
			}
			opts := &client.ListSecretsOptions{Rev: wire.Rev(o.rev)}
			if len(args) == 1 {
				opts.Prefix = args[0]
			}
			all, err := sec.ListAllSecrets(cmd.Context(), opts, 0)
			if err != nil {
				return err
			}
			return o.print(cmd, all, func(w io.Writer) {
				for _, it := range all.Items {
					fmt.Fprintf(w, "%s\t%d\n", it.Key, it.ModRevision)
				}
			})
		}),
	}
	cmd.Flags().StringVar(&o.rev, "rev", "", "list at this revision")
	return cmd
}

type secretRotateOptions struct {
	*secretOptions
	keepDataKey bool
	message     string
}

type secretRmOptions struct {
	*secretOptions
	ifMatch string
	message string
}

func newSecretRmCmd(so *secretOptions) *cobra.Command {
	o := &secretRmOptions{secretOptions: so}
	cmd := &cobra.Command{
		Use:     "rm KEY",
		Aliases: []string{"del"},
		Short:   "Delete a secret (one commit; earlier revisions keep it)",
		Long: `Delete a secret: one commit removes its document from the tree. Like
every change it stays in history, readable at earlier revisions by a token
with secrets:read; rotate the credential itself if it leaked.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: so.g.runE(func(cmd *cobra.Command, args []string) error {
			sec, err := o.secrets()
			if err != nil {
				return err
			}
			res, err := sec.DeleteSecret(cmd.Context(), args[0], &client.DeleteSecretOptions{IfMatch: o.ifMatch, Message: o.message})
			if err != nil {
				return err
			}
			return o.print(cmd, res, func(w io.Writer) {
				if !res.Changed {
					fmt.Fprintf(w, "%s did not exist: no commit (%s)\n", args[0], o.at(res.Revision))
					return
				}
				fmt.Fprintf(w, "deleted %s: %s\n", args[0], o.landed(res.Revision, res.Commit))
			})
		}),
	}
	cmd.Flags().StringVar(&o.ifMatch, "if-match", "", "delete only if the secret's etag is this (\"*\": only if it exists)")
	cmd.Flags().StringVarP(&o.message, "message", "m", "", "commit message")
	return cmd
}

func newSecretRotateCmd(so *secretOptions) *cobra.Command {
	o := &secretRotateOptions{secretOptions: so}
	cmd := &cobra.Command{
		Use:   "rotate [PREFIX]",
		Short: "Re-encrypt secrets to the current recipients, in one commit",
		Long: `Re-encrypt every secret under PREFIX (all by default) to the recipients
.gitstate/sops.yaml gives it now, in one commit. Each secret gets a new data
key, so a recipient removed from the rules cannot decrypt the new versions;
--keep-data-key only re-wraps the current data keys (SOPS's updatekeys).`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: so.g.runE(func(cmd *cobra.Command, args []string) error {
			opts := &client.RotateSecretsOptions{KeepDataKey: o.keepDataKey, Message: o.message}
			if len(args) == 1 {
				opts.Prefix = args[0]
			}
			sec, err := o.secrets()
			if err != nil {
				return err
			}
			res, err := sec.RotateSecrets(cmd.Context(), opts)
			if err != nil {
				return err
			}
			return o.print(cmd, res, func(w io.Writer) {
				if !res.Changed {
					fmt.Fprintf(w, "nothing to re-encrypt (revision %d)\n", res.Revision)
					return
				}
				fmt.Fprintf(w, "re-encrypted %d secret(s): revision %d\n", len(res.Keys), res.Revision)
				for _, k := range res.Keys {
					fmt.Fprintf(w, "  %s\n", k)
				}
			})
		}),
	}
	cmd.Flags().BoolVar(&o.keepDataKey, "keep-data-key", false, "keep the data keys; only encrypt them to the current recipients")
	cmd.Flags().StringVarP(&o.message, "message", "m", "", "commit message")
	return cmd
}

// secretStore is what the secret commands need of main (*client.Repo) or
// of a transaction (*client.Txn).
type secretStore interface {
	GetSecret(ctx context.Context, key string, opts *client.GetOptions) (*client.Value, error)
	PutSecret(ctx context.Context, key string, value []byte, opts *client.PutOptions) (*wire.WriteResult, error)
	ListAllSecrets(ctx context.Context, opts *client.ListSecretsOptions, maxItems int) (*wire.SecretList, error)
	RotateSecrets(ctx context.Context, opts *client.RotateSecretsOptions) (*wire.RotateResult, error)
	DeleteSecret(ctx context.Context, key string, opts *client.DeleteSecretOptions) (*wire.DeleteResult, error)
}

var (
	_ secretStore = (*client.Repo)(nil)
	_ secretStore = (*client.Txn)(nil)
)

// secrets returns the secrets the flags name: the repo's on main, or the
// transaction's when --txn names one.
func (o *secretOptions) secrets() (secretStore, error) {
	repo, err := o.g.repoClient()
	if err != nil {
		return nil, err
	}
	if o.g.txn != "" {
		return repo.Txn(o.g.txn), nil
	}
	return repo, nil
}

// landed names where a secret's write landed, as put's output does:
// "revision N" on main, "txn ID commit C" in a transaction, whose writes
// answer revision 0 (a branch has no revisions).
func (o *secretOptions) landed(rev int64, commit string) string {
	where := (&textPrinter{inTxn: o.g.txn}).where(rev)
	if rev == 0 && o.g.txn != "" {
		where += " commit " + commit
	}
	return where
}

// at names the state a write that changed nothing found: "revision N" on
// main, "in txn ID" in a transaction.
func (o *secretOptions) at(rev int64) string {
	if rev == 0 && o.g.txn != "" {
		return "in txn " + o.g.txn
	}
	return fmt.Sprintf("revision %d", rev)
}

// print writes v as JSON with -o json, else with text.
func (o *secretOptions) print(cmd *cobra.Command, v any, text func(io.Writer)) error {
	if o.g.output == "json" {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(v)
	}
	text(cmd.OutOrStdout())
	return nil
}
