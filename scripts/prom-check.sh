#!/usr/bin/env bash
# Real scrape: a real Prometheus server (Debian package) scrapes clawbridge's
# admin port while traffic runs through clawbridge and the demo gateway; the
# check asserts through Prometheus's HTTP API that the target is up and that
# the chat counter and the time-to-first-token histogram hold the expected
# values, and runs `promtool check metrics` on the exposition.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh prometheus
cargo build -q --workspace --bins
BIN=target/debug
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GW=127.0.0.1:$(port); LISTEN=127.0.0.1:$(port); ADMIN=127.0.0.1:$(port); PROM=127.0.0.1:$(port)
TOKEN=prom-check-token
fail() { echo "prom-check: FAIL: $*" >&2; exit 1; }
wait_http() { for _ in $(seq 200); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; fail "$1 not up"; }

"$BIN/clawbridge-demo-gateway" --listen "$GW" --token "$TOKEN" --reply "Hel,lo" >"$work/gw.log" 2>&1 & pids+=($!)
wait_http "http://$GW/healthz"
printf '{gateway:{auth:{mode:"token",token:"%s"},http:{endpoints:{chatCompletions:{enabled:true}}}}}' "$TOKEN" >"$work/openclaw.json"
OPENCLAW_CONFIG_PATH="$work/openclaw.json" CLAWBRIDGE_UPSTREAM="$GW" CLAWBRIDGE_LISTEN="$LISTEN" CLAWBRIDGE_ADMIN_LISTEN="$ADMIN" \
  "$BIN/clawbridge" >"$work/cb.log" 2>&1 & pids+=($!)
wait_http "http://$ADMIN/readyz"

cat >"$work/prometheus.yml" <<YAML
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: clawbridge
    static_configs: [ { targets: ["$ADMIN"] } ]
YAML
promtool check config "$work/prometheus.yml" >/dev/null
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="$PROM" >"$work/prom.log" 2>&1 & pids+=($!)
wait_http "http://$PROM/-/ready"

chat() { curl -fsS -N "http://$LISTEN/v1/chat/completions" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d "{\"model\":\"openclaw\",\"stream\":$1,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" >/dev/null; }
for _ in 1 2 3 4 5; do chat true; done
for _ in 1 2; do chat false; done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$LISTEN/v1/chat/completions" -H 'Authorization: Bearer wrong' -d '{}')
[ "$code" = 401 ] || fail "wrong token gave $code"

query() {  # prints the single value of an instant query, or "none"
  curl -fsS "http://$PROM/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")'
}
expect() {  # expect <promql> <value>: polls until the scraped value matches
  local got
  for _ in $(seq 100); do got=$(query "$1"); [ "$got" = "$2" ] && { echo "prom-check: PASS  $1 = $2"; return 0; }; sleep 0.2; done
  fail "$1 = $got, expected $2"
}
expect 'up{job="clawbridge"}' 1
expect 'sum(clawbridge_chat_requests_total{outcome="ok",status_class="2xx"})' 7
expect 'sum(clawbridge_chat_requests_total{stream="true",outcome="ok"})' 5
expect 'sum(clawbridge_chat_requests_total{outcome="unauthorized",status_class="4xx"})' 1
expect 'sum(clawbridge_chat_time_to_first_token_seconds_count{stream="true"})' 5
expect 'sum(clawbridge_chat_time_to_first_token_seconds_bucket{stream="true",le="+Inf"})' 5
expect 'clawbridge_gateway_connected' 1
expect 'sum(clawbridge_auth_failures_total{reason="mismatch"})' 1

curl -fsS "http://$ADMIN/metrics" >"$work/metrics.txt"
promtool check metrics <"$work/metrics.txt" || fail "promtool check metrics"
echo "prom-check: PASS  promtool check metrics"
! grep -q "$TOKEN" "$work/metrics.txt" "$work/cb.log" || fail "the token appears in metrics or logs"
echo "prom-check: PASS  all checks"
