#!/usr/bin/env bash
# Checks and tests the web components and the operator console: type-check,
# lint, that the committed dist/console/ is what the build makes, build, then
# the browser tests (`node --test`, playwright-core driving the system
# Chromium) against a quota-local of their own (own port, own table), which
# it starts and stops, and the size and time budgets (scripts/budget.mjs).
#
# Expects the local stack's variables exported (AWS_ENDPOINT_URL_DYNAMODB,
# AWS_ENDPOINT_URL_SESV2, AWS_ENDPOINT_URL_EVENTBRIDGE, AWS_REGION and the
# dummy credentials: scripts/lib.sh's start_stack), and QUOTA_LOCAL_BIN, the
# path of a built quota-local (it serves the console from the dist/console/
# it was built with). Chromium: /usr/bin/chromium (Debian's `chromium`;
# installed with apt-get when missing and running as root), or CHROMIUM_PATH.
# QUOTA_WEB_SCREENSHOTS: where the tests save their screenshots (default: a
# scratch directory; docs/screenshots to refresh the committed ones).
# Extra arguments go to `node --test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${QUOTA_LOCAL_BIN:?QUOTA_LOCAL_BIN must name a built quota-local binary}"
: "${AWS_ENDPOINT_URL_DYNAMODB:?start the local stack first (scripts/lib.sh start_stack)}"
[ -x "$QUOTA_LOCAL_BIN" ] || { echo "error: $QUOTA_LOCAL_BIN is not an executable" >&2; exit 1; }

step() { printf '== clients/web: %s\n' "$*"; }
# shellcheck source=../../quota-local.sh
source ../quota-local.sh

export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM_PATH" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "installing chromium (apt)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  [ -x "$CHROMIUM_PATH" ] || { echo "error: no Chromium at $CHROMIUM_PATH: apt-get install -y chromium" >&2; exit 1; }
fi

if [ ! -d node_modules ]; then
  step "npm ci"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi
step "type-check"
npm run -s typecheck
step "lint"
npm run -s lint
step "dist/console/ is what the build makes"
npm run -s check:dist
step "build"
npm run -s build

start_quota_local quota-web
export QUOTA_WEB_SCREENSHOTS="${QUOTA_WEB_SCREENSHOTS:-$logs/screenshots}"

# quota-local compiles the console in: it must have been built from this dist/console/.
node -e '
  const { readFileSync } = require("node:fs");
  fetch(process.env.QUOTA_BASE_URL + "/console/console.js").then(async (res) => {
    const served = Buffer.from(await res.arrayBuffer());
    if (!served.equals(readFileSync("dist/console/console.js"))) {
      console.error("error: the console quota-local serves is not dist/console/: rebuild quota-local (cargo build -p quota-local)");
      process.exit(1);
    }
  });
'

step "node --test (Chromium: $CHROMIUM_PATH)"
# One file at a time (each drives its own Chromium); bounded, so that a hung
# test fails the run instead of holding CI.
timeout 1200 node --test --test-concurrency=1 "$@" test/*.test.js

step "budgets"
timeout 600 node scripts/budget.mjs
