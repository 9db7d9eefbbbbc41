#!/usr/bin/env bash
# `make bench`: clawbridge's benchmark harness. Runs every figure of
# BENCHMARKS.md in one go against the in-repo fake gateway (and, for figure 4,
# the real OpenClaw gateway from ../shared/openclaw-real), writes raw JSON to
# bench/out/, then prints one table per figure and a PASS/FAIL line per target.
#
#   bench/run.sh                 all figures (needs `make release` first; `make bench` does it)
#   bench/run.sh latency memory  only some: latency throughput passthrough real memory scaling bigbody
#                                responses (figure 8: /v1/responses vs chat, ~30 s)
#   BENCH_SKIP_REAL=1            skip figure 4 (the real gateway), with the reason printed
#   BENCH_PROFILE=1              also `perf record` clawbridge under a streaming load
#                                (bench/out/profile.txt)
#   BENCH_QUICK=1                shorter runs (smoke test of the harness; numbers are noisier)
#   BENCH_THREADS=n              clawbridge proxy threads (default 1, its own default)
#   BENCH_BIN=dir                measure the binaries in dir instead of target/release (A/B)
#   BENCH_CLAWBRIDGE_LOG=filter  clawbridge's log filter (default "info": access lines on,
#                                written to /dev/null, as a deployment would format them)
#
# Exit status: 0 when every target passed, 1 when one failed, 2 on harness errors.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=$REPO/bench/out
mkdir -p "$OUT"
BIN=${BENCH_BIN:-$REPO/target/release}   # BENCH_BIN: another build to measure (A/B)
BENCH=$REPO/target/bench/release/clawbridge-bench
TOKEN=bench-token
HOST=127.0.0.1
GW_A=$HOST:23101      # fake gateway driven directly by the native client
GW_B=$HOST:23102      # fake gateway behind clawbridge (and the passthrough upstream)
CB=$HOST:23110; CB_ADMIN=$HOST:23111
NGINX=$HOST:23120
CBR=$HOST:23130; CBR_ADMIN=$HOST:23131   # clawbridge in front of the real gateway
QUICK=${BENCH_QUICK:-0}
FIGS=("$@"); [ ${#FIGS[@]} -eq 0 ] && FIGS=(latency throughput responses scaling passthrough memory bigbody real)
want() { local f; for f in "${FIGS[@]}"; do [ "$f" = "$1" ] && return 0; done; return 1; }
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }   # q FULL QUICK
log() { printf '\n== %s\n' "$*" >&2; }

# ---------------------------------------------------------------- setup
[ -x "$BIN/clawbridge" ] && [ -x "$BIN/clawbridge-demo-gateway" ] || {
  echo "bench: build first (make release)" >&2; exit 2; }
want passthrough && scripts/ensure-deps.sh nginx
command -v curl >/dev/null || scripts/ensure-deps.sh curl
# 10,000 streams need 10,000+ sockets in clawbridge and in the client.
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 30000 ]; then ulimit -Hn 30000 2>/dev/null || true; fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "building the load client (bench/, target/bench)"
cargo build --release --quiet --manifest-path bench/Cargo.toml --target-dir target/bench

for a in $GW_A $GW_B $CB $CB_ADMIN $NGINX $CBR $CBR_ADMIN; do
  if (exec 3<>"/dev/tcp/${a%:*}/${a#*:}") 2>/dev/null; then
    echo "bench: $a is already in use (another bench running?)" >&2; exit 2
  fi
done

PIDS=()
REAL_STARTED=0
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$REAL_STARTED" = 1 ]; then
    env "${REAL_ENV[@]}" "$REAL_DIR/stop.sh" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 2' INT TERM

wait_http() { # url [tries]
  for _ in $(seq "${2:-200}"); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "bench: $1 did not answer" >&2; return 1
}

start_gw() { # addr -> pid in GW_PID
  "$BIN/clawbridge-demo-gateway" --listen "$1" --token "$TOKEN" --delay-ms 0 --reply "a ,b ,c ,d ,e" \
    >"$OUT/gw-${1##*:}.log" 2>&1 &
  GW_PID=$!; PIDS+=("$GW_PID")
  wait_http "http://$1/healthz"
}

gw_config() { # addr json
  curl -fsS -XPOST "http://$1/__demo/config" -H 'content-type: application/json' -d "$2" >/dev/null
}

cat >"$OUT/openclaw-fake.json" <<JSON
{ gateway: { auth: { mode: "token", token: "$TOKEN" },
             http: { endpoints: { chatCompletions: { enabled: true } } } } }
JSON

start_cb() { # listen admin upstream config [extra env...] -> pid in CB_PID
  # Logs at the default level (access lines formatted as in a deployment);
  # CB_LOG=/dev/null for the load figures, where they would be hundreds of MB.
  # The load client keeps its connections between rounds, idle for longer
  # than Node's 5 s keep-alive (clawbridge's default): 75 s, nginx's default,
  # as the nginx it is compared with uses.
  local listen=$1 admin=$2 up=$3 conf=$4; shift 4
  env NO_COLOR=1 CLAWBRIDGE_KEEPALIVE_TIMEOUT_MS=75000 CLAWBRIDGE_LISTEN="$listen" CLAWBRIDGE_ADMIN_LISTEN="$admin" CLAWBRIDGE_UPSTREAM="$up" \
    OPENCLAW_CONFIG_PATH="$conf" CLAWBRIDGE_THREADS="${BENCH_THREADS:-1}" CLAWBRIDGE_LOG="${BENCH_CLAWBRIDGE_LOG:-info}" \
    "$@" "$BIN/clawbridge" >/dev/null 2>"${CB_LOG:-$OUT/clawbridge-${listen##*:}.stderr}" &
  CB_PID=$!; PIDS+=("$CB_PID")
  wait_http "http://$admin/readyz" 400
}
# clawbridge's stderr carries the access log; keep only warnings and errors of it.
trim_cb_log() { [ -f "$OUT/clawbridge-${1##*:}.stderr" ] || return 0
                grep -v ' INFO ' "$OUT/clawbridge-${1##*:}.stderr" >"$OUT/clawbridge-${1##*:}.log" 2>/dev/null || true
                rm -f "$OUT/clawbridge-${1##*:}.stderr"; }

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

machine() {
  jq -n --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
    --arg nproc "$(nproc)" --arg kernel "$(uname -r)" --arg os "$(. /etc/os-release; echo "$PRETTY_NAME")" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --arg mem "$(awk '/MemTotal/{print $2}' /proc/meminfo)" \
    --arg rustc "$(rustc --version)" --arg nginx "$(nginx -v 2>&1 | cut -d/ -f2)" \
    --arg commit "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src demo-gateway || echo +dirty)" \
    --arg date "$(date -u +%FT%TZ)" \
    '{date:$date,cpu:$cpu,nproc:$nproc,kernel:$kernel,os:$os,mem_kib:$mem,load_before:$load,rustc:$rustc,nginx:$nginx,commit:$commit}'
}
machine >"$OUT/machine.json"
log "machine: $(jq -c . "$OUT/machine.json")"

# ---------------------------------------------------------------- fake-gateway figures
if want latency || want throughput || want responses || want scaling || want passthrough || want profile; then
  start_gw "$GW_A"; GWA_PID=$GW_PID
  start_gw "$GW_B"; GWB_PID=$GW_PID
  # Both OpenAI routes on (figure 8 drives /v1/responses; chat is served the same either way).
  CB_LOG=/dev/null start_cb "$CB" "$CB_ADMIN" "$GW_B" "$OUT/openclaw-fake.json" CLAWBRIDGE_MAX_CONCURRENT_RUNS=4096 \
    CLAWBRIDGE_RESPONSES=on
  MAIN_CB_PID=$CB_PID

  if want latency; then
    log "figure 1a: added latency, 1 stream (native WS turn vs the same turn through clawbridge)"
    "$BENCH" ab --native "$GW_A" --chat "$CB" --token "$TOKEN" --conc 1 \
      --count "$(q 250 60)" --rounds 8 --warmup 300 >"$OUT/fig1-c1.json"
    log "figure 1b: added latency, 256 concurrent streams, deltas paced 20 ms apart by the fake"
    gw_config "$GW_A" '{"delta_delay_ms":20}'; gw_config "$GW_B" '{"delta_delay_ms":20}'
    "$BENCH" ab --native "$GW_A" --chat "$CB" --token "$TOKEN" --conc 256 --threads 2 --stagger-ms 100 \
      --secs "$(q 2.5 1)" --rounds 4 --warmup 512 >"$OUT/fig1-c256.json"
    gw_config "$GW_A" '{"delta_delay_ms":0}'; gw_config "$GW_B" '{"delta_delay_ms":0}'
    log "figure 1c: 256 concurrent streams, unpaced (both sides saturate the 2 cores; informational)"
    "$BENCH" ab --native "$GW_A" --chat "$CB" --token "$TOKEN" --conc 256 --threads 2 \
      --secs "$(q 2 1)" --rounds 4 --warmup 512 >"$OUT/fig1-c256-sat.json"
  fi

  if want throughput; then
    log "figure 2: throughput of 5-delta streamed completions, clawbridge vs the fake's own capacity"
    "$BENCH" ab --native "$GW_A" --chat "$CB" --token "$TOKEN" --conc 128 --threads 2 \
      --secs "$(q 3 1)" --rounds 4 --warmup 1000 >"$OUT/fig2.json"
  fi

  if want responses; then
    log "figure 8a: added latency, 1 stream: chat vs responses through the same clawbridge, each against native"
    "$BENCH" ab --native "$GW_A" --chat "$CB" --api chat,responses --token "$TOKEN" --conc 1 \
      --count "$(q 250 60)" --rounds "$(q 12 4)" --warmup 300 >"$OUT/fig8-c1.json"
    log "figure 8b: throughput at 128 connections, chat vs responses rounds interleaved"
    "$BENCH" ab --chat "$CB" --api chat,responses --token "$TOKEN" --conc 128 --threads 2 \
      --secs "$(q 2 1)" --rounds "$(q 6 2)" --warmup 1000 >"$OUT/fig8-c128.json"
  fi

  if want scaling; then
    log "figure 6: clawbridge CPU time per completed stream at concurrency 1, 16, 256, 1024"
    "$BENCH" cpu --chat "$CB" --token "$TOKEN" --pid "$MAIN_CB_PID" --gw-pid "$GWB_PID" \
      --clk-tck "$(getconf CLK_TCK)" --levels 1,16,256,1024 --threads 2 \
      --secs "$(q 3 1)" --rounds 3 >"$OUT/fig6.json"
  fi

  if [ "${BENCH_PROFILE:-0}" = 1 ] || want profile; then
    log "profile: perf record of clawbridge under 128 concurrent streams"
    if perf stat -e instructions true >/dev/null 2>&1; then
      "$BENCH" ab --chat "$CB" --token "$TOKEN" --conc 128 --threads 2 --secs 12 --rounds 1 --warmup 100 \
        >"$OUT/profile-load.json" &
      lp=$!
      sleep 2
      perf record -F 2000 -g --call-graph dwarf,16384 -p "$MAIN_CB_PID" -o "$OUT/perf.data" -- sleep 6 \
        >/dev/null 2>&1 || true
      wait $lp || true
      perf report -i "$OUT/perf.data" --no-children --percent-limit 0.7 --stdio --sort symbol -g none \
        2>/dev/null >"$OUT/profile.txt" || true
      perf report -i "$OUT/perf.data" --children --percent-limit 3 --stdio --sort symbol -g none \
        2>/dev/null >"$OUT/profile-children.txt" || true
    else
      echo "perf unavailable (perf stat -e instructions failed); no profile" >"$OUT/profile.txt"
    fi
  fi

  if want passthrough; then
    log "figure 3: passthrough GET /healthz, direct vs clawbridge vs nginx (keep-alive upstream)"
    mkdir -p "$OUT/nginx/tmp"
    cat >"$OUT/nginx/nginx.conf" <<NGINX
worker_processes 2;
daemon off;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
worker_rlimit_nofile 30000;
events { worker_connections 8192; }
http {
  access_log /dev/null;
  keepalive_requests 1000000;
  client_body_temp_path $OUT/nginx/tmp/body;
  proxy_temp_path $OUT/nginx/tmp/proxy;
  fastcgi_temp_path $OUT/nginx/tmp/fastcgi;
  uwsgi_temp_path $OUT/nginx/tmp/uwsgi;
  scgi_temp_path $OUT/nginx/tmp/scgi;
  upstream gateway { server $GW_B; keepalive 128; }
  server {
    listen $NGINX;
    location / {
      proxy_pass http://gateway;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
    nginx -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" &
    NGINX_PID=$!; PIDS+=("$NGINX_PID")
    wait_http "http://$NGINX/healthz"
    "$BENCH" get --target "direct=$GW_B" --target "clawbridge=$CB" --target "nginx=$NGINX" \
      --path /healthz --conc 64 --threads 2 --secs "$(q 2 1)" --rounds 4 --lat-count "$(q 3000 400)" \
      >"$OUT/fig3.json"
    stop_pid "$NGINX_PID"
  fi
  stop_pid "$MAIN_CB_PID"; trim_cb_log "$CB"
fi

# ---------------------------------------------------------------- memory
if want memory; then
  log "figure 5: RSS idle and with 1,000 / 10,000 open streams (the fake holds them: mode hang)"
  [ -n "${GWB_PID:-}" ] || { start_gw "$GW_B"; GWB_PID=$GW_PID; }
  gw_config "$GW_B" '{"mode":"hang"}'
  start_cb "$CB" "$CB_ADMIN" "$GW_B" "$OUT/openclaw-fake.json" CLAWBRIDGE_MAX_CONCURRENT_RUNS=12000 \
    CLAWBRIDGE_SSE_KEEPALIVE_SECS=15
  MEM_CB_PID=$CB_PID
  sleep 1
  "$BENCH" hold --chat "$CB" --token "$TOKEN" --pid "$MEM_CB_PID" --gw-pid "$GWB_PID" \
    --levels "$(q 1000,10000 1000,3000)" --threads 2 --settle 2 >"$OUT/fig5.json"
  stop_pid "$MEM_CB_PID"; trim_cb_log "$CB"
  gw_config "$GW_B" '{"mode":"normal"}'
fi

# ---------------------------------------------------------------- big bodies
if want bigbody; then
  log "figure 7: small streamed turns alone and while 8 maximum-size bodies are parsed; peak RSS"
  [ -n "${GWB_PID:-}" ] || { start_gw "$GW_B"; GWB_PID=$GW_PID; }
  # A fresh process, so VmHWM is this figure's peak.
  CB_LOG=/dev/null start_cb "$CB" "$CB_ADMIN" "$GW_B" "$OUT/openclaw-fake.json"
  BIG_CB_PID=$CB_PID
  "$BENCH" big --chat "$CB" --token "$TOKEN" --pid "$BIG_CB_PID" --big 8 --big-bytes $((20 * 1024 * 1024 - 1024)) \
    --secs "$(q 4 2)" --rounds "$(q 3 2)" >"$OUT/fig7.json"
  stop_pid "$BIG_CB_PID"
fi

# ---------------------------------------------------------------- real gateway
if want real; then
  REAL_DIR=$REPO/../shared/openclaw-real
  if [ "${BENCH_SKIP_REAL:-0}" = 1 ]; then
    echo '{"skipped":"BENCH_SKIP_REAL=1"}' >"$OUT/fig4.json"
  elif [ ! -x "$REAL_DIR/start.sh" ]; then
    jq -n --arg d "$REAL_DIR" '{skipped:("no real gateway kit at " + $d)}' >"$OUT/fig4.json"
  else
    log "figure 4: real gateway, warm sequential turns, clawbridge vs the built-in endpoint (A/B)"
    # Always a private instance (own prefix and ports), so an e2e run on the
    # shared default instance (18789/18790) is never disturbed, and vice versa.
    REAL_ENV=(OCREF_PREFIX="$HOME/.cache/oc-bench" OCREF_GATEWAY_PORT=28789 OCREF_FAKE_LLM_PORT=28790)
    # shellcheck disable=SC2054
    declare -A R=(); for kv in "${REAL_ENV[@]}"; do R[${kv%%=*}]=${kv#*=}; done
    RGW=127.0.0.1:${R[OCREF_GATEWAY_PORT]}; RLLM=127.0.0.1:${R[OCREF_FAKE_LLM_PORT]}
    if (exec 3<>"/dev/tcp/${RGW%:*}/${RGW#*:}") 2>/dev/null; then
      jq -n --arg a "$RGW" '{skipped:("real gateway port " + $a + " is busy (another bench running?)")}' >"$OUT/fig4.json"
    else
      env "${REAL_ENV[@]}" "$REAL_DIR/install.sh" >"$OUT/real-install.log" 2>&1
      REAL_STARTED=1
      env "${REAL_ENV[@]}" "$REAL_DIR/start.sh" >"$OUT/real-start.log" 2>&1 || {
        cat "$OUT/real-start.log" >&2; exit 2; }
      curl -fsS -XPOST "http://$RLLM/_fake/config" -d '{"delay_ms":0}' >/dev/null
      start_cb "$CBR" "$CBR_ADMIN" "$RGW" "${R[OCREF_PREFIX]}/run/state/openclaw.json"
      REAL_CB_PID=$CB_PID
      "$BENCH" ttft --target "clawbridge=$CBR/v1/chat/completions" --target "builtin=$RGW/v1/chat/completions" \
        --token test-token --n "$(q 40 20)" --warmup 3 >"$OUT/fig4.json"
      stop_pid "$REAL_CB_PID"; trim_cb_log "$CBR"
      env "${REAL_ENV[@]}" "$REAL_DIR/stop.sh" >/dev/null 2>&1 || true
      REAL_STARTED=0
    fi
  fi
fi

machine | jq '{load_after: .load_before}' >"$OUT/load-after.json"
# ---------------------------------------------------------------- report
"$BENCH" report --out "$OUT" | tee "$OUT/summary.md"
grep -q '^FAIL' "$OUT/summary.md" && exit 1
exit 0
