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
# shellcheck source=../../quota-local.sh
source ../quota-local.sh

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

start_quota_local quota-ts-client

step "node --test"
# Bounded: a hung test fails the run instead of holding CI.
timeout 900 node --test "$@" test/*.test.js
