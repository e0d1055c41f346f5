# Shared by clients/*/scripts/test.sh (source, don't run): starts a
# quota-local of the caller's own (own free loopback port, own table, bus and
# token secret) for its tests, and stops it when the caller exits, keeping
# its log (and whatever else is in $logs) when something failed.
#
#   start_quota_local NAME   NAME names the table, the bus and the log folder
#
# Sets and exports QUOTA_BASE_URL; sets `logs`, the caller's scratch folder.
# Expects QUOTA_LOCAL_BIN and the local stack's variables.

start_quota_local() {
  local name="$1"
  logs="$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")"
  port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
  export TABLE_NAME="$name-$$"
  export EVENT_BUS_NAME="$name-$$"
  export LOCAL_JWT_SECRET="$name-$$-$RANDOM"
  export QUOTA_LOCAL_BIN
  export QUOTA_BASE_URL="http://127.0.0.1:$port"
  # Channels to a receiver of the tests' own, and never anywhere but loopback.
  export QUOTA_ALLOW_PRIVATE_WEBHOOKS=1 QUOTA_WEBHOOKS_LOOPBACK_ONLY=1
  step "quota-local on $QUOTA_BASE_URL (table $TABLE_NAME, log $logs/quota-local.log)"
  PORT="$port" "$QUOTA_LOCAL_BIN" >"$logs/quota-local.log" 2>&1 &
  server=$!
  trap stop_quota_local EXIT
  for ((i = 0; i < 600; i++)); do
    if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$server" 2>/dev/null; then
      cat "$logs/quota-local.log" >&2
      echo "error: quota-local exited before listening" >&2
      exit 1
    fi
    sleep 0.1
  done
  tail -n 20 "$logs/quota-local.log" >&2
  echo "error: quota-local did not listen within 60 s" >&2
  exit 1
}

stop_quota_local() {
  local status=$?
  kill -INT "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  # The server's log (and the caller's other scratch files) are kept when something failed.
  if [ "$status" -eq 0 ]; then rm -rf "$logs"; else echo "quota-local's log and the tests' files: $logs" >&2; fi
}
