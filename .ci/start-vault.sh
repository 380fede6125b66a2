#!/usr/bin/env bash
# Starts a throwaway in-memory Vault dev server on 127.0.0.1:${VAULT_PORT:-8201}
# in the background, enables the transit engine with a key "gitstate-test",
# and prints export lines for VAULT_ADDR, VAULT_TOKEN, VAULT_PID and VAULT_LOG:
#   VAULT_ENV=$(.ci/start-vault.sh "$VAULT_BIN")
#   eval "$VAULT_ENV"; ...; kill "$VAULT_PID"
# (Assign on a line of its own: under set -e, a bare eval "$(...)" or
# "x=$(...) && eval" would carry on after the script failed.)
# The server logs to a temp file; on failure it is printed to stderr.
set -euo pipefail

VAULT=${1:-${VAULT_BIN:-vault}}
export VAULT_ADDR=http://127.0.0.1:${VAULT_PORT:-8201}
VAULT_TOKEN=gitstate-test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
export VAULT_TOKEN
LOG=$(mktemp "${TMPDIR:-/tmp}/gitstate-vault.XXXXXX")

if "$VAULT" status >/dev/null 2>&1; then
  echo "start-vault: something already answers on $VAULT_ADDR" >&2
  exit 1
fi

"$VAULT" server -dev -dev-no-store-token -dev-root-token-id="$VAULT_TOKEN" \
  -dev-listen-address="${VAULT_ADDR#http://}" </dev/null >"$LOG" 2>&1 &
PID=$!

fail() {
  echo "start-vault: $1; server log ($LOG):" >&2
  cat "$LOG" >&2
  kill "$PID" 2>/dev/null || true
  exit 1
}

for i in $(seq 60); do # 60 x 0.5 s = 30 s
  "$VAULT" status >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || fail "vault server exited"
  ((i < 60)) || fail "vault not ready after 30 s"
  sleep 0.5
done

"$VAULT" secrets enable transit >>"$LOG" 2>&1 || fail "enabling transit failed"
"$VAULT" write -f transit/keys/gitstate-test >>"$LOG" 2>&1 || fail "creating transit key failed"
echo "export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=$VAULT_TOKEN VAULT_PID=$PID VAULT_LOG=$LOG"
