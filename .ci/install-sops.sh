#!/usr/bin/env bash
# Installs the sops CLI used by integration tests, once per machine, and prints
# the binary's path on stdout (progress goes to stderr):
#   SOPS_BIN=$(.ci/install-sops.sh)
# Cached in ${GITSTATE_TOOLS_CACHE:-$HOME/.cache/gitstate-tools}/sops-<version>/sops.
set -euo pipefail

VERSION=3.13.3
CACHE=${GITSTATE_TOOLS_CACHE:-$HOME/.cache/gitstate-tools}
BIN=$CACHE/sops-$VERSION/sops

if [[ $("$BIN" --version --disable-version-check 2>/dev/null) == "sops $VERSION" ]]; then
  echo "$BIN"
  exit 0
fi

echo "install-sops: installing sops v$VERSION into $BIN" >&2
mkdir -p "$(dirname "$BIN")"
# Install under a temporary directory and move it in place only once it works.
TMP=$(mktemp -d "$(dirname "$BIN")/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
GOWORK=off GOBIN=$TMP go install "github.com/getsops/sops/v3/cmd/sops@v$VERSION" >&2
"$TMP/sops" --version --disable-version-check >&2
mv -f "$TMP/sops" "$BIN"
echo "$BIN"
