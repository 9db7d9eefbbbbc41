#!/usr/bin/env bash
# clawbridge end-to-end fidelity suite against the REAL OpenClaw gateway.
# Single entry point (make e2e, CI). Exit code 0 only if every suite passed.
#
# Phase 1: gateway with its built-in /v1/chat/completions ON, clawbridge in front:
#          differential (built-in vs clawbridge), sessions, abort, passthrough, SDKs.
#          The built-in /v1/responses is ON too (and with it /v1/models), clawbridge
#          CLAWBRIDGE_RESPONSES=on: differential-api (api_cases.json), real clients.
# Phase 2: gateway with the built-in endpoint OFF (OCREF_BUILTIN_CHAT=0):
#          clawbridge CLAWBRIDGE_CHAT_COMPLETIONS=on serves completions on the native
#          protocol alone (differential subset vs the phase-1 reference, SDKs), then
#          CLAWBRIDGE_CHAT_COMPLETIONS=inherit passes the route through (gateway's 404).
#          The same for /v1/models + /v1/responses (built-in responses off too; clawbridge
#          CLAWBRIDGE_RESPONSES follows the chat switch unless BRIDGE_RESPONSES is set).
# Phase 3: a remote client (from a network namespace of the phase's own, over a veth
#          pair) stays remote through clawbridge: gateway with the built-in OFF and
#          OCREF_TRUSTED_PROXIES=127.0.0.1, clawbridge `on` listening on 0.0.0.0; then the
#          gateway restarted without trustedProxies (remote passthrough refused, 403).
#          Needs root and iproute2 (ip netns); skipped (SKIP line) without them.
# Phase 4: device pairing (e2e/pairing.py). The gateway on every interface
#          (OCREF_BIND=lan), clawbridge INSIDE a network namespace (a remote peer):
#          pairing required, approve, restart, revoke (needs root + ip netns, else SKIP).
#          Then 2026.3.31 on loopback (E2E_LEGACY_PREFIX; SKIP if not installed): ready
#          with its silently paired device, one chat turn.
# Phase tls: the gateway's own TLS on (gateway.tls, e2e/templates/tls.json5, a certificate of
#          a test CA made here with openssl), clawbridge with an https:// upstream, the test
#          CA as its bundle and the server name overridden: e2e/tls.py.
# Phase 5: the legacy matrix: each release of E2E_LEGACY_RELEASES in turn (installed by the
#          kit's install.sh into its own cached prefix if missing), its own endpoint off, with
#          the project's config template for it (e2e/templates), clawbridge `on` in front:
#          legacy.py measures stream, non-stream, abort, passthrough per release, then prints
#          the release x cell table and fails on any cell other than the expected one.
#
# Env knobs:
#   E2E_SKIP_BUILD=1     don't run `cargo build --release -p clawbridge` (use the existing binary)
#   CLAWBRIDGE_BIN=path  binary to test (default $REPO/target/release/clawbridge)
#   E2E_SELFTEST=1       no clawbridge: point the "clawbridge" side at the built-in endpoint
#                        (checks the harness itself; phase 2 is skipped)
#   E2E_SLOW=1           also run the upstream-5xx cases (~80 s each side: gateway retries)
#   E2E_ONLY=regex       only these differential cases (phase-1 reference not rewritten)
#   E2E_PHASES="1 2 3 4 5 tls" which phases to run
#   E2E_NETNS_HOST_ADDR (10.231.7.1), E2E_NETNS_ADDR (10.231.7.2): the phase-3/4 veth pair (/30)
#   E2E_NETNS_PREFIX (cbe2e): namespace and veth name prefix
#   E2E_LEGACY_PREFIX (~/.cache/openclaw-legacy-2026.3.31), E2E_LEGACY_RUN ($E2E_LEGACY_PREFIX/run-e2e): phase 4's 2026.3.31
#   E2E_LEGACY_RELEASES  phase 5's releases ("2026.3.31 2026.5.7 2026.9.6")
#   E2E_LEGACY_RUN_NAME  phase 5's run dir inside each release's prefix (run)
#   E2E_LEGACY_331       paired|unpaired (paired): what 2026.3.31 is expected to do (see legacy.py)
#   E2E_BRIDGE_PORT (18800), E2E_ADMIN_PORT (18801); OCREF_* as in the kit's env.sh
set -uo pipefail

E2E="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$E2E/.." && pwd)"
KIT="${OCREF_KIT:-$REPO/../shared/openclaw-real}"
OUT="$E2E/out"
mkdir -p "$OUT"
T_START=$(date +%s)
touch "$OUT/.run-start"

log() { printf '[e2e %4ss] %s\n' "$(( $(date +%s) - T_START ))" "$*"; }
fail() { log "FATAL: $*" >&2; exit 2; }

[ -f "$KIT/env.sh" ] || fail "OpenClaw kit not found at $KIT (expected \$REPO/../shared/openclaw-real)"
# shellcheck source=/dev/null
. "$KIT/env.sh"

BRIDGE_PORT="${E2E_BRIDGE_PORT:-18800}"
ADMIN_PORT="${E2E_ADMIN_PORT:-18801}"
GATEWAY_URL="http://127.0.0.1:$OCREF_GATEWAY_PORT"
BIN="${CLAWBRIDGE_BIN:-$REPO/target/release/clawbridge}"
BRIDGE_GRACE="${E2E_BRIDGE_GRACE_SECS:-3}"   # CLAWBRIDGE_GRACE_PERIOD_SECS for the test (default there: 20)
PY="$E2E/.venv/bin/python"
SELFTEST="${E2E_SELFTEST:-0}"
PHASES="${E2E_PHASES:-1 2 3 4 5 tls}"

export E2E_GATEWAY_URL="$GATEWAY_URL"
export E2E_FAKE_URL="http://127.0.0.1:$OCREF_FAKE_LLM_PORT"
export E2E_TOKEN="$OCREF_TOKEN"
export E2E_FAKE_LOG="$OCREF_RUN/fake_llm.requests.jsonl"
export E2E_OUT="$OUT"
export E2E_ADMIN_URL="http://127.0.0.1:$ADMIN_PORT"
export E2E_GATEWAY_CONFIG="$OCREF_STATE/openclaw.json"
export E2E_RUN_ID="${E2E_RUN_ID:-$(date +%s)-$$}"
if [ "$SELFTEST" = "1" ]; then export E2E_BRIDGE_URL="$GATEWAY_URL"; else export E2E_BRIDGE_URL="http://127.0.0.1:$BRIDGE_PORT"; fi

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
alive_pid() { [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != "Z" ]; }

# ------------------------------------------------------------------ cleanup
GATEWAY_STARTED=0
GATEWAY_ENV=()   # the env the running gateway was started with: stop.sh gets the same
BRIDGE_PID=""
stop_bridge() {
  if alive_pid "$BRIDGE_PID"; then
    local t0 limit=$(( (BRIDGE_GRACE + 15) * 10 )) i=0
    t0=$(date +%s.%N)
    kill -TERM "$BRIDGE_PID" 2>/dev/null
    while alive_pid "$BRIDGE_PID" && [ $i -lt $limit ]; do sleep 0.1; i=$((i + 1)); done
    if alive_pid "$BRIDGE_PID"; then
      log "clawbridge pid $BRIDGE_PID did not exit within $((limit / 10))s of SIGTERM; SIGKILL"; kill -KILL "$BRIDGE_PID" 2>/dev/null
    else
      log "clawbridge pid $BRIDGE_PID exited $(python3 -c "import time,sys; print(f'{time.time()-float(sys.argv[1]):.1f}')" "$t0")s after SIGTERM"
    fi
    wait "$BRIDGE_PID" 2>/dev/null
  fi
  BRIDGE_PID=""
}
stop_gateway() {
  if [ "$GATEWAY_STARTED" = "1" ]; then
    env "${GATEWAY_ENV[@]}" "$KIT/stop.sh" >>"$OUT/gateway.log" 2>&1 || log "stop.sh reported a problem (see $OUT/gateway.log)"
    GATEWAY_STARTED=0
  fi
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_bridge
  stop_gateway
  teardown_netns
  # leave the fake LLM at its defaults is not needed: it was stopped with the gateway
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------------ setup
setup_python() {
  local stamp="$E2E/.venv/.requirements.sha"
  local want; want=$(sha256sum "$E2E/requirements.txt" | cut -d' ' -f1)
  if [ -x "$PY" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  log "creating venv e2e/.venv ($(python3 --version))"
  python3 -m venv "$E2E/.venv" || fail "python3 -m venv failed"
  "$E2E/.venv/bin/pip" install -q --disable-pip-version-check -r "$E2E/requirements.txt" || fail "pip install failed"
  echo "$want" >"$stamp"
}
setup_node() {
  command -v node >/dev/null || fail "system node not found (need Node >= 20 for sdk_node.mjs)"
  if [ -f "$E2E/node_modules/openai/package.json" ] && [ "$E2E/node_modules/.package-lock.json" -nt "$E2E/package-lock.json" ]; then return 0; fi
  log "npm ci in e2e/ (node $(node --version))"
  (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci in e2e/ failed"
}

start_gateway() { # [extra env assignments...]
  local run
  # shellcheck disable=SC2016 # expanded by the inner shell, with the gateway's env
  run=$(env "$@" bash -c '. "$1/env.sh"; echo "$OCREF_RUN"' _ "$KIT")
  if alive_pid "$(cat "$run/gateway.pid" 2>/dev/null)" || alive_pid "$(cat "$run/fake_llm.pid" 2>/dev/null)"; then
    fail "a kit gateway/fake LLM is already running (pid files in $OCREF_RUN); stop it with $KIT/stop.sh first"
  fi
  for p in "$OCREF_GATEWAY_PORT" "$OCREF_FAKE_LLM_PORT"; do
    port_busy "$p" && fail "port 127.0.0.1:$p is already in use; cannot start the real gateway"
  done
  log "starting the real gateway: $* $KIT/start.sh"
  GATEWAY_STARTED=1
  GATEWAY_ENV=("$@")
  if ! env "$@" "$KIT/start.sh" >>"$OUT/gateway.log" 2>&1; then
    tail -30 "$OUT/gateway.log" >&2
    fail "the real gateway did not start (see $OUT/gateway.log and $OCREF_RUN/gateway.out)"
  fi
  log "$(grep -E '^ready in' "$OUT/gateway.log" | tail -1)"
}

start_bridge() { # <mode inherit|on|off> <log name> [listen address, default 127.0.0.1:$BRIDGE_PORT]
  [ "$SELFTEST" = "1" ] && return 0
  local mode=$1 name=$2 listen=${3:-127.0.0.1:$BRIDGE_PORT}
  for p in "$BRIDGE_PORT" "$ADMIN_PORT"; do
    port_busy "$p" && fail "port 127.0.0.1:$p (clawbridge) is already in use"
  done
  local responses=${BRIDGE_RESPONSES:-$mode}   # CLAWBRIDGE_RESPONSES: the chat mode unless BRIDGE_RESPONSES is set
  log "starting clawbridge (CLAWBRIDGE_CHAT_COMPLETIONS=$mode CLAWBRIDGE_RESPONSES=$responses) on $listen, admin :$ADMIN_PORT"
  rm -rf "$OUT/state-$name"
  CLAWBRIDGE_STATE_DIR="$OUT/state-$name" \
  CLAWBRIDGE_LISTEN="$listen" \
  CLAWBRIDGE_UPSTREAM="${E2E_UPSTREAM:-127.0.0.1:$OCREF_GATEWAY_PORT}" \
  CLAWBRIDGE_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" \
  OPENCLAW_CONFIG_PATH="${BRIDGE_GATEWAY_CONFIG:-$OCREF_STATE/openclaw.json}" \
  CLAWBRIDGE_CHAT_COMPLETIONS="$mode" \
  CLAWBRIDGE_RESPONSES="$responses" \
  CLAWBRIDGE_GRACE_PERIOD_SECS="$BRIDGE_GRACE" \
  CLAWBRIDGE_LOG_FORMAT="${CLAWBRIDGE_LOG_FORMAT:-json}" \
    "$BIN" >"$OUT/clawbridge-$name.stdout" 2>"$OUT/clawbridge-$name.log" </dev/null &
  BRIDGE_PID=$!
  export E2E_BRIDGE_LOG="$OUT/clawbridge-$name.log"
  local deadline=$(( $(date +%s) + 30 ))
  # BRIDGE_WAIT=healthz: a gateway clawbridge is expected not to be ready with (phase 5)
  until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$ADMIN_PORT/${BRIDGE_WAIT:-readyz}" 2>/dev/null; do
    if ! alive_pid "$BRIDGE_PID"; then tail -30 "$OUT/clawbridge-$name.log" >&2; fail "clawbridge exited during start (log: $OUT/clawbridge-$name.log)"; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -30 "$OUT/clawbridge-$name.log" >&2
      curl -sS --max-time 2 "http://127.0.0.1:$ADMIN_PORT/readyz" >&2 || true
      fail "clawbridge not ready within 30 s (admin /${BRIDGE_WAIT:-readyz})"
    fi
    sleep 0.2
  done
  log "clawbridge up (pid $BRIDGE_PID, /${BRIDGE_WAIT:-readyz} 200)"
}

# Phase tls: a test CA and a server certificate for gateway.test and localhost (not the IP),
# where the TLS template expects them (__WORKSPACE__/../tls).
TLS_DIR="$OCREF_WORKSPACE/../tls"
make_test_ca() {
  mkdir -p "$OCREF_WORKSPACE" && mkdir -p "$TLS_DIR" && rm -f "$TLS_DIR"/* || fail "cannot create $TLS_DIR"
  (
    cd "$TLS_DIR" || exit 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout ca.key -out ca.crt \
      -subj "/CN=clawbridge e2e test CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
    && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
      -subj "/CN=gateway.test" \
    && printf '%s\n' "subjectAltName=DNS:gateway.test,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >server.ext \
    && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out server.crt \
      -extfile server.ext
  ) >"$OUT/tls-ca.log" 2>&1 || fail "openssl could not make the test CA (see $OUT/tls-ca.log)"
  chmod 600 "$TLS_DIR/server.key" "$TLS_DIR/ca.key"
}
# The kit's start.sh polls http://.../readyz, which a TLS-only listener never answers:
# it is given 3 s (OCREF_START_TIMEOUT) and reports "not ready" while the gateway and
# fake LLM it started keep running; readiness is then polled over HTTPS with the test CA.
start_gateway_tls() {
  if alive_pid "$(cat "$OCREF_RUN/gateway.pid" 2>/dev/null)" || alive_pid "$(cat "$OCREF_RUN/fake_llm.pid" 2>/dev/null)"; then
    fail "a kit gateway/fake LLM is already running (pid files in $OCREF_RUN); stop it with $KIT/stop.sh first"
  fi
  for p in "$OCREF_GATEWAY_PORT" "$OCREF_FAKE_LLM_PORT"; do
    port_busy "$p" && fail "port 127.0.0.1:$p is already in use; cannot start the real gateway"
  done
  log "starting the real gateway with gateway.tls on: OCREF_TEMPLATE=e2e/templates/tls.json5 $KIT/start.sh"
  GATEWAY_STARTED=1
  GATEWAY_ENV=(OCREF_TEMPLATE="$E2E/templates/tls.json5")   # the kit's default prefix and run dir: stop.sh finds it
  OCREF_TEMPLATE="$E2E/templates/tls.json5" OCREF_FRESH=1 OCREF_START_TIMEOUT=3 "$KIT/start.sh" >>"$OUT/gateway.log" 2>&1 \
    || log "start.sh: $(tail -1 "$OUT/gateway.log") (expected: it polls plain HTTP); waiting on HTTPS"
  local t0 deadline; t0=$(date +%s); deadline=$(( t0 + 120 ))
  until curl -fsS -o /dev/null --max-time 2 --cacert "$TLS_DIR/ca.crt" "https://localhost:$OCREF_GATEWAY_PORT/readyz" 2>/dev/null \
      && curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$OCREF_FAKE_LLM_PORT/health" 2>/dev/null; do
    if ! alive_pid "$(cat "$OCREF_RUN/gateway.pid" 2>/dev/null)"; then
      tail -30 "$OCREF_RUN/gateway.out" >&2; fail "the real gateway exited during its TLS start (see $OCREF_RUN/gateway.out)"
    fi
    [ "$(date +%s)" -lt "$deadline" ] || fail "the real gateway not ready over HTTPS within 120 s (see $OCREF_RUN/gateway.out)"
    sleep 0.25
  done
  log "the real gateway is ready over HTTPS ($(( $(date +%s) - t0 ))s after start.sh returned)"
}

# Phase 3's remote client: a network namespace of its own, joined to the host by a
# veth pair with addresses of its own. Only these two addresses are ever used.
NETNS=""
NS_HOST_ADDR="${E2E_NETNS_HOST_ADDR:-10.231.7.1}"
NS_ADDR="${E2E_NETNS_ADDR:-10.231.7.2}"
NS_PREFIX="${E2E_NETNS_PREFIX:-cbe2e}"
setup_netns() {
  if ip -o addr show | grep -qwF -e "inet $NS_HOST_ADDR/30" -e "inet $NS_HOST_ADDR/32"; then
    fail "$NS_HOST_ADDR is already configured here (another run?); set E2E_NETNS_HOST_ADDR/E2E_NETNS_ADDR"
  fi
  NETNS="$NS_PREFIX-$$"
  local vh="$NS_PREFIX${$}h" vn="$NS_PREFIX${$}n"
  log "network namespace $NETNS: $vh $NS_HOST_ADDR/30 <-> $vn $NS_ADDR/30"
  ip netns add "$NETNS" || { NETNS=""; fail "ip netns add failed"; }
  ip link add "$vh" type veth peer name "$vn" \
    && ip link set "$vn" netns "$NETNS" \
    && ip addr add "$NS_HOST_ADDR/30" dev "$vh" && ip link set "$vh" up \
    && ip netns exec "$NETNS" ip addr add "$NS_ADDR/30" dev "$vn" \
    && ip netns exec "$NETNS" ip link set "$vn" up \
    && ip netns exec "$NETNS" ip link set lo up \
    || fail "veth set-up failed"
  export E2E_NETNS="$NETNS"
}
teardown_netns() {
  [ -n "$NETNS" ] || return 0
  # deleting the namespace destroys the veth end inside it, and with it the pair
  ip netns del "$NETNS" 2>/dev/null || log "ip netns del $NETNS failed"
  ip link del "$NS_PREFIX${$}h" 2>/dev/null || true
  NETNS=""
}

warm_up() { # <base url> <label>
  local code
  code=$(curl -sS -o "$OUT/warmup-$2.json" -w '%{http_code}' --max-time 90 "$1/v1/chat/completions" \
    -H "Authorization: Bearer $OCREF_TOKEN" -H 'Content-Type: application/json' \
    -d '{"model":"openclaw","messages":[{"role":"user","content":"warm up"}]}') || code="curl-error"
  log "warm-up turn via $2: HTTP $code"
  [ "$code" = "200" ]
}

# ------------------------------------------------------------------ suites
declare -a RESULTS=()
FAILED=0
run_suite() { # <name> <cmd...>
  local name=$1; shift
  local t0; t0=$(date +%s)
  log "=== $name"
  "$@" 2>&1 | tee "$OUT/$name.txt"
  local rc=${PIPESTATUS[0]}
  local dt=$(( $(date +%s) - t0 ))
  if [ "$rc" = "0" ]; then RESULTS+=("PASS  $name (${dt}s)"); else RESULTS+=("FAIL  $name (exit $rc, ${dt}s, see e2e/out/$name.txt)"); FAILED=1; fi
}
skip_suite() { RESULTS+=("SKIP  $1: $2"); log "SKIP $1: $2"; }

# ------------------------------------------------------------------ main
log "repo $REPO, kit $KIT, prefix $OCREF_PREFIX"
setup_python
setup_node
log "installing the real gateway (kit install.sh, idempotent)"
"$KIT/install.sh" >"$OUT/install.log" 2>&1 || { tail -20 "$OUT/install.log" >&2; fail "the real gateway could not be installed (see $OUT/install.log)"; }

run_suite compare-selfcheck "$PY" "$E2E/test_compare.py"

if [ "$SELFTEST" = "1" ]; then
  log "SELFTEST: no clawbridge; the 'clawbridge' side is the built-in endpoint itself"
else
  if [ "${E2E_SKIP_BUILD:-0}" != "1" ] && [ -z "${CLAWBRIDGE_BIN:-}" ]; then
    log "cargo build --release -p clawbridge"
    (cd "$REPO" && cargo build --release -p clawbridge) >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log" >&2; fail "cargo build failed"; }
  fi
  [ -x "$BIN" ] || fail "clawbridge binary not found at $BIN"
fi

if [[ " $PHASES " == *" 1 "* ]]; then
  log "##### phase 1: built-in endpoints ON (chat + responses), clawbridge CLAWBRIDGE_CHAT_COMPLETIONS=inherit CLAWBRIDGE_RESPONSES=on"
  start_gateway OCREF_FRESH=1 OCREF_BUILTIN_RESPONSES=1
  BRIDGE_RESPONSES=on start_bridge inherit phase1
  warm_up "$GATEWAY_URL" gateway || fail "warm-up turn on the gateway's built-in endpoint failed"
  warm_up "$E2E_BRIDGE_URL" clawbridge || log "warm-up through clawbridge failed (suites will show it)"
  diff_args=(); [ -n "${E2E_ONLY:-}" ] && diff_args+=(--only "$E2E_ONLY")
  run_suite differential "$PY" "$E2E/differential.py" "${diff_args[@]}"
  run_suite differential-api "$PY" "$E2E/differential.py" --cases "$E2E/api_cases.json" --name differential-api "${diff_args[@]}"
  run_suite sessions "$PY" "$E2E/sessions.py"
  run_suite abort "$PY" "$E2E/abort.py"
  [ "$SELFTEST" = "1" ] || run_suite link-safety "$PY" "$E2E/link_safety.py"
  run_suite passthrough "$PY" "$E2E/passthrough.py"
  run_suite sdk-python "$PY" "$E2E/sdk_python.py"
  run_suite sdk-node node "$E2E/sdk_node.mjs"
  run_suite clients-python "$PY" "$E2E/clients_python.py"
  run_suite clients-node node "$E2E/clients_node.mjs"
  stop_bridge
  stop_gateway
fi

if [[ " $PHASES " == *" 2 "* ]]; then
  if [ "$SELFTEST" = "1" ]; then
    skip_suite phase2 "E2E_SELFTEST=1: there is no clawbridge to serve completions with the built-in endpoint off"
  else
    log "##### phase 2: built-in endpoint OFF (OCREF_BUILTIN_CHAT=0), clawbridge CLAWBRIDGE_CHAT_COMPLETIONS=on"
    start_gateway OCREF_BUILTIN_CHAT=0
    start_bridge on phase2-on
    warm_up "$E2E_BRIDGE_URL" clawbridge-phase2 || log "warm-up through clawbridge failed (suites will show it)"
    run_suite phase2-builtin-off "$PY" "$E2E/phase2.py" --mode builtin-off
    run_suite differential-phase2 "$PY" "$E2E/differential.py" --phase2
    run_suite api-builtin-off "$PY" "$E2E/api_builtin_off.py" --mode builtin-off
    run_suite differential-api-phase2 "$PY" "$E2E/differential.py" --phase2 --cases "$E2E/api_cases.json" --name differential-api
    run_suite clients-python-phase2 "$PY" "$E2E/clients_python.py"
    run_suite clients-node-phase2 node "$E2E/clients_node.mjs"
    run_suite sdk-python-phase2 "$PY" "$E2E/sdk_python.py"
    run_suite sdk-node-phase2 node "$E2E/sdk_node.mjs"
    run_suite rotation "$PY" "$E2E/rotation.py"
    stop_bridge
    log "restarting clawbridge with CLAWBRIDGE_CHAT_COMPLETIONS=inherit (gateway key false -> pass through)"
    start_bridge inherit phase2-inherit
    run_suite phase2-inherit "$PY" "$E2E/phase2.py" --mode inherit
    run_suite api-inherit "$PY" "$E2E/api_builtin_off.py" --mode inherit
    stop_bridge
    stop_gateway
  fi
fi

if [[ " $PHASES " == *" 3 "* ]]; then
  if [ "$SELFTEST" = "1" ]; then
    skip_suite phase3 "E2E_SELFTEST=1: the phase is about clawbridge's own front door"
  elif [ "$(id -u)" != "0" ] || ! command -v ip >/dev/null; then
    skip_suite phase3 "needs root and iproute2 (ip netns, veth) for the remote client"
  else
    log "##### phase 3: a remote client (network namespace) through clawbridge; built-in endpoint OFF"
    setup_netns
    export E2E_REMOTE_BRIDGE_URL="http://$NS_HOST_ADDR:$BRIDGE_PORT"
    export E2E_ADMIN_URL="http://127.0.0.1:$ADMIN_PORT"
    start_gateway OCREF_BUILTIN_CHAT=0 OCREF_TRUSTED_PROXIES=127.0.0.1
    start_bridge on phase3-trusted "0.0.0.0:$BRIDGE_PORT"
    warm_up "$E2E_BRIDGE_URL" clawbridge-phase3 || log "warm-up through clawbridge failed (suites will show it)"
    run_suite remote-trusted "$PY" "$E2E/remote.py" --mode trusted
    stop_bridge
    stop_gateway
    log "restarting the gateway without gateway.trustedProxies (it does not trust clawbridge)"
    start_gateway OCREF_BUILTIN_CHAT=0
    start_bridge on phase3-untrusted "0.0.0.0:$BRIDGE_PORT"
    warm_up "$E2E_BRIDGE_URL" clawbridge-phase3-untrusted || log "warm-up through clawbridge failed (suites will show it)"
    run_suite remote-untrusted "$PY" "$E2E/remote.py" --mode untrusted
    stop_bridge
    stop_gateway
    teardown_netns
  fi
fi

if [[ " $PHASES " == *" 4 "* ]]; then
  if [ "$SELFTEST" = "1" ]; then
    skip_suite phase4 "E2E_SELFTEST=1: the phase is about clawbridge's own device identity"
  else
    log "##### phase 4: device pairing"
    if [ "$(id -u)" != "0" ] || ! command -v ip >/dev/null; then
      skip_suite pairing-remote "needs root and iproute2 (ip netns, veth): clawbridge must run in a namespace of its own"
    else
      setup_netns
      start_gateway OCREF_FRESH=1 OCREF_BIND=lan OCREF_BUILTIN_CHAT=0
      E2E_KIT="$KIT" E2E_BIN="$BIN" E2E_NETNS_HOST_ADDR="$NS_HOST_ADDR" E2E_NETNS_ADDR="$NS_ADDR" \
        E2E_BRIDGE_PORT="$BRIDGE_PORT" E2E_ADMIN_PORT="$ADMIN_PORT" OCREF_GATEWAY_PORT="$OCREF_GATEWAY_PORT" \
        run_suite pairing-remote "$PY" "$E2E/pairing.py" --mode remote --state "$OUT/state-phase4-remote"
      stop_gateway
      teardown_netns
    fi
    LEGACY_PREFIX="${E2E_LEGACY_PREFIX:-$HOME/.cache/openclaw-legacy-2026.3.31}"
    # Installed (and cached) as phase 5 installs it; a failed install is a SKIP with its reason.
    if [ ! -f "$LEGACY_PREFIX/node_modules/openclaw/package.json" ]; then
      log "installing openclaw 2026.3.31 into $LEGACY_PREFIX (cached for later runs)"
      OCREF_PREFIX="$LEGACY_PREFIX" OCREF_OPENCLAW_VERSION=2026.3.31 "$KIT/install.sh" >"$OUT/install-phase4-2026.3.31.log" 2>&1 \
        || log "install failed (see $OUT/install-phase4-2026.3.31.log)"
    fi
    if [ ! -f "$LEGACY_PREFIX/node_modules/openclaw/package.json" ]; then
      skip_suite pairing-legacy "2026.3.31 is not installed at $LEGACY_PREFIX (OCREF_PREFIX=$LEGACY_PREFIX OCREF_OPENCLAW_VERSION=2026.3.31 $KIT/install.sh)"
    else
      LEGACY_RUN="${E2E_LEGACY_RUN:-$LEGACY_PREFIX/run-e2e}"
      start_gateway OCREF_FRESH=1 OCREF_PREFIX="$LEGACY_PREFIX" OCREF_OPENCLAW_VERSION=2026.3.31 \
        OCREF_RUN="$LEGACY_RUN" OCREF_STATE="$LEGACY_RUN/state" OCREF_WORKSPACE="$LEGACY_RUN/workspace" \
        OCREF_VENV="$LEGACY_PREFIX/venv" OCREF_TEMPLATE="$KIT/legacy-2026.3.json5" OCREF_PLUGIN_NODE_PATH=1
      BRIDGE_GATEWAY_CONFIG="$LEGACY_RUN/state/openclaw.json" start_bridge on phase4-legacy
      run_suite pairing-legacy "$PY" "$E2E/pairing.py" --mode legacy --version 2026.3.31 --protocol 3
      stop_bridge
      stop_gateway
    fi
  fi
fi

if [[ " $PHASES " == *" tls "* ]]; then
  if [ "$SELFTEST" = "1" ]; then
    skip_suite tls "E2E_SELFTEST=1: the phase is about clawbridge's upstream TLS"
  else
    log "##### phase tls: the gateway's own TLS on; clawbridge with an https:// upstream"
    make_test_ca
    start_gateway_tls
    E2E_UPSTREAM="https://127.0.0.1:$OCREF_GATEWAY_PORT" CLAWBRIDGE_UPSTREAM_CA_FILE="$TLS_DIR/ca.crt" \
      CLAWBRIDGE_UPSTREAM_SERVER_NAME=gateway.test start_bridge inherit tls
    E2E_TLS_GATEWAY_URL="https://localhost:$OCREF_GATEWAY_PORT" E2E_TLS_CA="$TLS_DIR/ca.crt" \
      E2E_TLS_UPSTREAM="https://127.0.0.1:$OCREF_GATEWAY_PORT" E2E_CLAWBRIDGE_BIN="$BIN" \
      run_suite tls "$PY" "$E2E/tls.py"
    stop_bridge
    stop_gateway
  fi
fi

if [[ " $PHASES " == *" 5 "* ]]; then
  if [ "$SELFTEST" = "1" ]; then
    skip_suite legacy "E2E_SELFTEST=1: there is no clawbridge to serve completions with the built-in endpoint off"
  else
    log "##### phase 5: legacy matrix (${E2E_LEGACY_RELEASES:-2026.3.31 2026.5.7 2026.9.6}), built-in endpoint OFF, clawbridge on"
    rm -f "$OUT"/legacy-*.json
    REF_VERSION=$OCREF_OPENCLAW_VERSION SAVED_RUN=$OCREF_RUN SAVED_STATE=$OCREF_STATE SAVED_FAKE_LOG=$E2E_FAKE_LOG
    for v in ${E2E_LEGACY_RELEASES:-2026.3.31 2026.5.7 2026.9.6}; do
      if [ "$v" = "$REF_VERSION" ]; then prefix=$OCREF_PREFIX; else prefix="${XDG_CACHE_HOME:-$HOME/.cache}/openclaw-legacy-$v"; fi
      OCREF_RUN="$prefix/${E2E_LEGACY_RUN_NAME:-run}"; OCREF_STATE="$OCREF_RUN/state"
      case "$v" in   # config keys each release refuses: see e2e/templates and legacy.py REFUSED
        2026.3.*) extra=(OCREF_TEMPLATE="$E2E/templates/legacy-2026.3.json5" OCREF_PLUGIN_NODE_PATH=1) ;;
        2026.4.*|2026.5.*) extra=(OCREF_TEMPLATE="$E2E/templates/legacy-2026.5.json5" OCREF_PLUGIN_NODE_PATH=0) ;;
        *) extra=(OCREF_TEMPLATE= OCREF_PLUGIN_NODE_PATH=0) ;;
      esac
      genv=(OCREF_PREFIX="$prefix" OCREF_OPENCLAW_VERSION="$v" OCREF_RUN="$OCREF_RUN" OCREF_STATE="$OCREF_STATE"
            OCREF_WORKSPACE="$OCREF_RUN/workspace" OCREF_VENV="$prefix/venv" OCREF_GATEWAY_PORT="$OCREF_GATEWAY_PORT"
            OCREF_FAKE_LLM_PORT="$OCREF_FAKE_LLM_PORT" OCREF_TOKEN="$OCREF_TOKEN" "${extra[@]}")
      t_inst=$(date +%s)
      env "${genv[@]}" "$KIT/install.sh" >"$OUT/install-$v.log" 2>&1 \
        || { tail -20 "$OUT/install-$v.log" >&2; fail "openclaw $v could not be installed (see $OUT/install-$v.log)"; }
      log "openclaw $v in $prefix ($(grep -c 'already in' "$OUT/install-$v.log" | sed 's/^[1-9].*/cached/; s/^0$/installed/'), $(( $(date +%s) - t_inst ))s)"
      export E2E_FAKE_LOG="$OCREF_RUN/fake_llm.requests.jsonl" E2E_GATEWAY_CONFIG="$OCREF_STATE/openclaw.json"
      start_gateway "${genv[@]}" OCREF_BUILTIN_CHAT=0 OCREF_FRESH=1
      BRIDGE_WAIT=healthz start_bridge on "legacy-$v"
      run_suite "legacy-$v" "$PY" "$E2E/legacy.py" --release "$v" --prefix "$prefix" --kit "$KIT"
      stop_bridge
      stop_gateway
    done
    OCREF_RUN=$SAVED_RUN OCREF_STATE=$SAVED_STATE E2E_FAKE_LOG=$SAVED_FAKE_LOG
    export E2E_GATEWAY_CONFIG="$OCREF_STATE/openclaw.json"
    run_suite legacy-matrix "$PY" "$E2E/legacy.py" --table
  fi
fi

echo
echo "================ e2e summary ($(( $(date +%s) - T_START ))s) ================"
for r in "${RESULTS[@]}"; do echo "$r"; done
for f in differential differential-phase2 differential-api differential-api-phase2; do   # this run's tables only
  [ "$OUT/$f.txt" -nt "$OUT/.run-start" ] && grep -h "^$f: .* cases" "$OUT/$f.txt"
done
echo "per-case table: e2e/out/differential.txt; logs: e2e/out/"
if [ "$FAILED" != "0" ]; then echo "e2e: FAIL"; exit 1; fi
echo "e2e: PASS"
