#!/usr/bin/env bash
# Builds the HashiCorp Vault server used by integration tests, once per machine,
# and prints the binary's path on stdout (progress goes to stderr):
#   VAULT_BIN=$(.ci/install-vault.sh)
# The version is pinned by .ci/vault/go.mod. The binary is cached in
# ${GITSTATE_TOOLS_CACHE:-$HOME/.cache/gitstate-tools}/vault-<version>/vault.
# A cold build takes 10-20 minutes on 2 cores (~22 CPU-minutes) and ~9 GB of
# Go module and build caches; a rebuild with warm Go caches takes ~1 minute.
set -euo pipefail

MOD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/vault" && pwd)
VERSION=$(awk '$1 == "github.com/hashicorp/vault" { sub(/^v/, "", $2); print $2 }' "$MOD_DIR/go.mod")
CACHE=${GITSTATE_TOOLS_CACHE:-$HOME/.cache/gitstate-tools}
BIN=$CACHE/vault-$VERSION/vault

if [[ $("$BIN" version 2>/dev/null) == "Vault v$VERSION,"* ]]; then
  echo "$BIN"
  exit 0
fi

echo "install-vault: building vault v$VERSION into $BIN (slow when cold)" >&2
mkdir -p "$(dirname "$BIN")"
# Build under a temporary name and move it in place only once it works.
TMP=$(mktemp -d "$(dirname "$BIN")/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
(cd "$MOD_DIR" && GOWORK=off CGO_ENABLED=0 \
  go build -trimpath -ldflags='-s -w' -o "$TMP/vault" github.com/hashicorp/vault) >&2
"$TMP/vault" version >&2
mv -f "$TMP/vault" "$BIN"
echo "$BIN"
