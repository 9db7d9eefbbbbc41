#!/usr/bin/env bash
# `make image-test`: proves the OCI archive `make image` writes (target/image/clawbridge.oci.tar)
# is a complete, non-root image. It unpacks the archive with umoci, checks the image config
# (user 65532, entrypoint, ports, labels) and that the root filesystem holds nothing but the
# binary, its libraries and /etc files, then bind-mounts that root filesystem READ-ONLY in a
# private mount namespace and, chrooted into it as uid/gid 65532 (no /proc, /dev or host files):
#   1. runs `clawbridge --config /etc/clawbridge/clawbridge.yaml --check`, and
#   2. runs clawbridge in front of the demo gateway (outside, on loopback) and sends one chat
#      completion through it, expecting 200 and the demo gateway's echo.
# Needs root (mount, chroot), umoci, skopeo and jq, and target/release/clawbridge-demo-gateway.
# Exit status: 0 all checks passed, 1 a check failed, 2 setup failed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARCHIVE="${IMAGE_ARCHIVE:-$ROOT/target/image/clawbridge.oci.tar}"
DEMO="${DEMO_GATEWAY_BIN:-$ROOT/target/release/clawbridge-demo-gateway}"
export TOKEN=image-test-token
passed=0

setup_fail() { echo "FAIL  setup: $*" >&2; exit 2; }
pass() { echo "PASS  $*"; passed=$((passed + 1)); }
fail() { echo "FAIL  $*" >&2; echo "image-test: $passed passed, 1 failed"; exit 1; }

[[ "$(id -u)" -eq 0 ]] || setup_fail "needs root (mount --bind, chroot)"
[[ -f "$ARCHIVE" ]] || setup_fail "$ARCHIVE is missing: run \`make image\`"
[[ -x "$DEMO" ]] || setup_fail "$DEMO is missing: run \`make release\`"
for tool in umoci skopeo jq curl unshare chroot; do command -v "$tool" >/dev/null || setup_fail "$tool is missing"; done

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# --- unpack ---------------------------------------------------------------------------------
mkdir "$work/layout"
tar -xf "$ARCHIVE" -C "$work/layout"
tag="$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' "$work/layout/index.json")"
umoci unpack --image "$work/layout:$tag" "$work/bundle" >/dev/null || fail "umoci unpack $ARCHIVE"
rootfs="$work/bundle/rootfs"
skopeo inspect --raw "oci-archive:$ARCHIVE" >/dev/null || fail "skopeo cannot read $ARCHIVE (the push path)"
pass "umoci unpacks the archive (tag $tag); skopeo reads it"

# --- image config ---------------------------------------------------------------------------
blob() { cat "$work/layout/blobs/${1/://}"; }
manifest="$(jq -r '.manifests[0].digest' "$work/layout/index.json")"
config="$(blob "$manifest" | jq -r '.config.digest')"
cfg="$(blob "$config")"
want() { # jq filter, expected value, description
  local got; got="$(jq -c "$1" <<<"$cfg")"
  [[ "$got" == "$2" ]] || fail "image config $3: $1 is $got, want $2"
}
want '.config.User' '"65532:65532"' "runs as the non-root user"
want '.config.Entrypoint' '["/usr/local/bin/clawbridge"]' "entrypoint"
want 'any(.config.Env[]; . == "CLAWBRIDGE_STATE_DIR=/var/lib/clawbridge")' 'true' "state dir env"
want '.config.ExposedPorts | keys' '["8080/tcp","9464/tcp"]' "exposed ports"
want '.config.Labels["org.opencontainers.image.title"]' '"clawbridge"' "title label"
want '.os + "/" + .architecture' '"linux/amd64"' "platform"
pass "image config: user 65532:65532, entrypoint clawbridge, ports 8080+9464, OCI labels"

# --- contents: the binary, the libraries it links, /etc; no shell, nothing else ----------------
extra="$(cd "$rootfs" && find . \( -type f -o -type l \) | sort | { grep -Ev \
  '^\./(usr/local/bin/clawbridge|etc/(passwd|group|nsswitch\.conf)|lib(64)?/([^/]+/)?(ld-linux[^/]*|lib[^/]+\.so[.0-9]*))$' || true; })"
[[ -z "$extra" ]] || fail "unexpected files in the image: $extra"
[[ ! -e "$rootfs/bin/sh" ]] || fail "the image has a shell"
grep -q '^nonroot:x:65532:65532:' "$rootfs/etc/passwd" || fail "/etc/passwd has no nonroot user"
[[ "$(stat -c %u "$rootfs/home/nonroot")" == 65532 ]] || fail "/home/nonroot is not owned by 65532"
[[ "$(stat -c %u:%a "$rootfs/var/lib/clawbridge")" == 65532:700 ]] || fail "/var/lib/clawbridge is not 65532, 0700"
[[ "$(stat -c %a "$rootfs/tmp")" == 1777 ]] || fail "/tmp is not 1777"
pass "root filesystem: the binary, $(find "$rootfs/lib"* -type f | wc -l) libraries, /etc/{passwd,group,nsswitch.conf}, /home/nonroot, /tmp; no shell"

# --- configuration, placed in the rootfs as the chart mounts it (/etc/clawbridge) -------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
gw_port="$(free_port)"; http_port="$(free_port)"; admin_port="$(free_port)"
mkdir "$rootfs/etc/clawbridge"
cat >"$rootfs/etc/clawbridge/openclaw.json" <<JSON
// The gateway's config, as the chart renders it (the token comes from the environment).
{ gateway: { mode: "local", auth: { mode: "token" }, trustedProxies: ["127.0.0.1"],
             http: { endpoints: { chatCompletions: { enabled: true } } } } }
JSON
cat >"$rootfs/etc/clawbridge/clawbridge.yaml" <<YAML
listen: 127.0.0.1:$http_port
upstream: 127.0.0.1:$gw_port
admin_listen: 127.0.0.1:$admin_port
openclaw_config: /etc/clawbridge/openclaw.json
log_format: json
YAML

# The writable volume the chart mounts at the state dir (identity.stateDir): the device key.
state="$work/state"
mkdir -p "$state" && chown 65532:65532 "$state" && chmod 0700 "$state"

# Runs the image's entrypoint with the given args: rootfs bind-mounted read-only in a private
# mount namespace (gone with the process), the state volume writable over /var/lib/clawbridge,
# chrooted, as 65532:65532, with only the image's env.
# Every step execs (call it in a subshell: `$(...)` or `&`), so `$!` is clawbridge's own pid.
run_image() {
  local ro="$work/ro"
  mkdir -p "$ro"
  # shellcheck disable=SC2016 # the inner script expands its own "$@"
  exec unshare --mount --propagation private -- sh -c '
    mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && mount --bind "$4" "$2/var/lib/clawbridge" || exit 97
    ro=$2 chroot=$3; shift 4
    exec env -i PATH=/usr/local/bin HOME=/home/nonroot CLAWBRIDGE_STATE_DIR=/var/lib/clawbridge \
      OPENCLAW_GATEWAY_TOKEN="$TOKEN" "$chroot" --userspec=65532:65532 "$ro" /usr/local/bin/clawbridge "$@"' \
    sh "$rootfs" "$ro" "$(command -v chroot)" "$state" "$@"
}

# --- 1. --check ----------------------------------------------------------------------------
check_out="$(run_image --config /etc/clawbridge/clawbridge.yaml --check 2>&1)" \
  || fail "clawbridge --check in the image exited $?: $check_out"
grep -q 'config ok' <<<"$check_out" || fail "clawbridge --check said: $check_out"
pass "clawbridge --check passes in the image (read-only root, uid 65532): $(head -1 <<<"$check_out")"

# --- 2. a chat completion through the image ---------------------------------------------------
"$DEMO" --listen "127.0.0.1:$gw_port" --token "$TOKEN" >"$work/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$gw_port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done

run_image --config /etc/clawbridge/clawbridge.yaml >"$work/clawbridge.log" 2>&1 &
cb=$!
pids+=("$cb")
ready=""
for _ in $(seq 200); do
  if curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$cb" 2>/dev/null || break
  sleep 0.05
done
[[ -n "$ready" ]] || fail "clawbridge in the image did not become ready: $(tail -5 "$work/clawbridge.log")"
uid="$(awk '/^Uid:/ {print $2 "/" $3}' "/proc/$cb/status")"
[[ "$uid" == 65532/65532 ]] || fail "clawbridge runs as uid $uid, want 65532"
root_of="$(readlink "/proc/$cb/root")"
[[ "$root_of" == "$work/ro" ]] || fail "clawbridge's root is $root_of, want the read-only mount $work/ro"
# Seen from inside the chroot, the root mount is "/" and must carry the `ro` option.
[[ "$(awk '$5 == "/" {print $6}' "/proc/$cb/mountinfo")" =~ (^|,)ro(,|$) ]] \
  || fail "the image's root is not mounted read-only: $(awk '$5 == "/"' "/proc/$cb/mountinfo")"
[[ "$(stat -c %u:%a "$state/device-key.pem" 2>/dev/null)" == 65532:600 ]] \
  || fail "no device key (65532, 0600) in the state volume: $(ls -ln "$state")"
pass "clawbridge serves from the image: ready, uid 65532, root = the read-only mount, device key in the state volume"

status="$(curl -sS -o "$work/reply.json" -w '%{http_code}' "http://127.0.0.1:$http_port/v1/chat/completions" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"model":"openclaw","messages":[{"role":"user","content":"hello from the image"}]}')"
[[ "$status" == 200 ]] || fail "chat completion through the image: status $status: $(cat "$work/reply.json")"
content="$(jq -r '.choices[0].message.content' "$work/reply.json")"
[[ "$content" == *"hello from the image"* ]] || fail "chat completion through the image: content $content"
pass "chat completion through the image: 200, \"$content\""

kill -TERM "$cb"
for _ in $(seq 100); do kill -0 "$cb" 2>/dev/null || break; sleep 0.05; done
! kill -0 "$cb" 2>/dev/null || fail "clawbridge in the image did not exit on SIGTERM"
pass "clawbridge in the image exits on SIGTERM"
echo "image-test: $passed passed, 0 failed"
