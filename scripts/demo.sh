#!/usr/bin/env bash
# `make demo`: clawbridge in front of the in-repo demo gateway, no OpenClaw
# needed. Prints a curl to try, then runs until Ctrl-C; stops both on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
GW_ADDR=${DEMO_GATEWAY_LISTEN:-127.0.0.1:18789}
LISTEN=${CLAWBRIDGE_LISTEN:-127.0.0.1:8080}
ADMIN=${CLAWBRIDGE_ADMIN_LISTEN:-127.0.0.1:9464}
TOKEN=${DEMO_TOKEN:-demo-token}
work=$(mktemp -d)
cat > "$work/openclaw.json" <<JSON
// The demo gateway's config, as an OpenClaw gateway would have it.
{ gateway: { auth: { mode: "token", token: "$TOKEN" },
             http: { endpoints: { chatCompletions: { enabled: true } } } } }
JSON
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
./target/release/clawbridge-demo-gateway --listen "$GW_ADDR" --token "$TOKEN" --delay-ms "${DEMO_DELAY_MS:-80}" &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://$GW_ADDR/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
OPENCLAW_CONFIG_PATH="$work/openclaw.json" CLAWBRIDGE_UPSTREAM="$GW_ADDR" CLAWBRIDGE_LISTEN="$LISTEN" \
  CLAWBRIDGE_ADMIN_LISTEN="$ADMIN" ./target/release/clawbridge &
pids+=($!)
for _ in $(seq 200); do curl -fsS "http://$ADMIN/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
curl -fsS "http://$ADMIN/readyz" >/dev/null || { echo "clawbridge did not become ready" >&2; exit 1; }
cat <<MSG

clawbridge is serving http://$LISTEN in front of the demo gateway (ws://$GW_ADDR).
Try a streamed completion:

  curl -N http://$LISTEN/v1/chat/completions -H 'Authorization: Bearer $TOKEN' \\
    -H 'Content-Type: application/json' \\
    -d '{"model":"openclaw","stream":true,"messages":[{"role":"user","content":"hello from the demo"}]}'

Metrics: curl http://$ADMIN/metrics     Ctrl-C stops both.
MSG
if [ -n "${DEMO_SMOKE:-}" ]; then
  # Non-interactive check (used by tests): one streamed completion, then exit.
  out=$(curl -fsSN "http://$LISTEN/v1/chat/completions" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' \
    -d '{"model":"openclaw","stream":true,"messages":[{"role":"user","content":"hello from the demo"}]}')
  echo "$out"
  grep -q '"content":"You ' <<<"$out" && grep -q 'data: \[DONE\]' <<<"$out"
  exit
fi
wait
