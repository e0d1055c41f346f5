#!/usr/bin/env bash
# Checks and tests the TypeScript client: type-check, lint, generated-type
# drift, build, then `node --test` against a quota-local of its own (own port,
# own table), which it starts and stops.
#
# Expects the local stack's variables exported (AWS_ENDPOINT_URL_DYNAMODB,
# AWS_ENDPOINT_URL_SESV2, AWS_ENDPOINT_URL_EVENTBRIDGE, AWS_REGION and the
# dummy credentials: scripts/lib.sh's start_stack), and QUOTA_LOCAL_BIN, the
# path of a built quota-local. Extra arguments go to `node --test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${QUOTA_LOCAL_BIN:?QUOTA_LOCAL_BIN must name a built quota-local binary}"
: "${AWS_ENDPOINT_URL_DYNAMODB:?start the local stack first (scripts/lib.sh start_stack)}"
[ -x "$QUOTA_LOCAL_BIN" ] || { echo "error: $QUOTA_LOCAL_BIN is not an executable" >&2; exit 1; }

step() { printf '== clients/typescript: %s\n' "$*"; }

if [ ! -d node_modules ]; then
  step "npm ci"
  npm ci --no-audit --no-fund
fi
step "type-check"
npm run -s typecheck
step "lint"
npm run -s lint
step "generated types match infra/openapi.yaml"
npm run -s check:generated
step "build"
npm run -s build

logs="$(mktemp -d "${TMPDIR:-/tmp}/quota-ts-client.XXXXXX")"
port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
export TABLE_NAME="quota-ts-client-$$"
export EVENT_BUS_NAME="quota-ts-client-$$"
export LOCAL_JWT_SECRET="ts-client-tests-$$-$RANDOM"
export QUOTA_LOCAL_BIN
export QUOTA_BASE_URL="http://127.0.0.1:$port"
# Channels to a receiver of the tests' own, and never anywhere but loopback.
export QUOTA_ALLOW_PRIVATE_WEBHOOKS=1 QUOTA_WEBHOOKS_LOOPBACK_ONLY=1
step "quota-local on $QUOTA_BASE_URL (table $TABLE_NAME, log $logs/quota-local.log)"
PORT="$port" "$QUOTA_LOCAL_BIN" >"$logs/quota-local.log" 2>&1 &
server=$!
stop() {
  local status=$?
  kill -INT "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  # The server's log is kept when something failed.
  if [ "$status" -eq 0 ]; then rm -rf "$logs"; else echo "quota-local's log: $logs/quota-local.log" >&2; fi
}
trap stop EXIT
for ((i = 0; i < 600; i++)); do
  if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then
    cat "$logs/quota-local.log" >&2
    echo "error: quota-local exited before listening" >&2
    exit 1
  fi
  sleep 0.1
done
(echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { tail -n 20 "$logs/quota-local.log" >&2; echo "error: quota-local did not listen within 60 s" >&2; exit 1; }

step "node --test"
# Bounded: a hung test fails the run instead of holding CI.
timeout 900 node --test "$@" test/*.test.js
