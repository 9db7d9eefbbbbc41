#!/usr/bin/env bash
# `make image`: builds the clawbridge OCI image offline, FROM scratch, and writes it as an OCI
# archive to target/image/clawbridge.oci.tar. No daemon and no base image: the root filesystem
# holds the release binary, exactly the shared libraries `ldd` reports (and the dynamic loader),
# /etc/passwd and /etc/group with the distroless-style non-root user (65532 "nonroot"),
# /etc/nsswitch.conf (so the /etc/hosts a runtime mounts is read before DNS), /home/nonroot and
# /tmp. No CA certificates: clawbridge speaks plain HTTP/WS to a gateway on loopback.
#
# The image config runs the binary as 65532:65532 and exposes 8080 (proxy) and 9464 (admin);
# run it with a read-only root filesystem (the chart does). Every timestamp (file mtimes, the
# config's `created`) is SOURCE_DATE_EPOCH (default: the last commit's time), so the same binary
# gives the same image digest.
#
# Usage: scripts/build-image.sh          (env: CLAWBRIDGE_BIN, IMAGE_TAG, SOURCE_DATE_EPOCH)
# Needs umoci (scripts/ensure-deps.sh umoci installs it); run as root, as ownership in the
# layer is taken from the files (root-owned, /home/nonroot owned by 65532).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CLAWBRIDGE_BIN:-$ROOT/target/release/clawbridge}"
OUT="$ROOT/target/image"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -1)"
TAG="${IMAGE_TAG:-$VERSION}"
SDE="${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}"
REVISION="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
CREATED="$(date -u -d "@$SDE" +%Y-%m-%dT%H:%M:%SZ)"

die() { echo "build-image: $*" >&2; exit 1; }
[[ -x "$BIN" ]] || die "$BIN is missing: run \`make release\` first"
[[ "$(id -u)" -eq 0 ]] || die "run as root (the layer records file ownership)"
command -v umoci >/dev/null || die "umoci is missing (scripts/ensure-deps.sh umoci)"

work="$OUT/work"
rm -rf "$work" "$OUT/clawbridge.oci.tar"
mkdir -p "$work"
rootfs="$work/rootfs"
umask 022
mkdir -p "$rootfs"/{etc,tmp,home/nonroot,usr/local/bin,var/lib/clawbridge}

install -m 0755 "$BIN" "$rootfs/usr/local/bin/clawbridge"

# Exactly what the dynamic loader maps: `ldd` lines are `name => /path (addr)` for libraries
# and `/path (addr)` for the loader itself; vdso has no file. Anything unresolved is fatal.
ldd_out="$(ldd "$BIN")" || die "ldd $BIN failed (a static binary needs no libraries: adapt this script)"
if grep -q 'not found' <<<"$ldd_out"; then die "unresolved libraries: $ldd_out"; fi
libs=()
while read -r line; do
  case "$line" in
    *'=> /'*) libs+=("$(sed 's/.*=> \(\/[^ ]*\) .*/\1/' <<<"$line")") ;;
    /*) libs+=("${line%% *}") ;;
  esac
done <<<"$ldd_out"
[[ ${#libs[@]} -gt 0 ]] || die "ldd reported no libraries: $ldd_out"
for lib in "${libs[@]}"; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"       # the file itself, under the path the binary asks for
  chmod 0755 "$rootfs$lib"
done

cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
cat >"$rootfs/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
chmod 0644 "$rootfs"/etc/{passwd,group,nsswitch.conf}
chmod 1777 "$rootfs/tmp"
chown 65532:65532 "$rootfs/home/nonroot" "$rootfs/var/lib/clawbridge"
chmod 0700 "$rootfs/home/nonroot" "$rootfs/var/lib/clawbridge"
find "$rootfs" -exec touch -h -d "@$SDE" {} +

layout="$work/layout"
umoci init --layout "$layout"
umoci new --image "$layout:$TAG"
umoci insert --image "$layout:$TAG" --history.created "$CREATED" \
  --history.created_by "scripts/build-image.sh" --history.comment "clawbridge $VERSION ($REVISION)" \
  "$rootfs" /
umoci config --image "$layout:$TAG" --no-history \
  --created "$CREATED" \
  --config.user 65532:65532 \
  --config.entrypoint /usr/local/bin/clawbridge \
  --config.workingdir /home/nonroot \
  --config.env PATH=/usr/local/bin \
  --config.env HOME=/home/nonroot \
  --config.env CLAWBRIDGE_STATE_DIR=/var/lib/clawbridge \
  --config.exposedports 8080/tcp \
  --config.exposedports 9464/tcp \
  --config.label org.opencontainers.image.title=clawbridge \
  --config.label "org.opencontainers.image.description=OpenAI /v1/chat/completions over an OpenClaw gateway's native WebSocket protocol" \
  --config.label "org.opencontainers.image.version=$VERSION" \
  --config.label "org.opencontainers.image.revision=$REVISION" \
  --config.label "org.opencontainers.image.created=$CREATED" \
  --config.label org.opencontainers.image.licenses=MIT \
  --config.label org.opencontainers.image.source=https://github.com/clawbridge/clawbridge \
  --config.label org.opencontainers.image.base.name=scratch
umoci gc --layout "$layout"

# An oci-archive (what skopeo reads and writes) is a tar of the OCI layout directory.
find "$layout" -exec touch -h -d "@$SDE" {} +
tar -C "$layout" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SDE" \
  -cf "$OUT/clawbridge.oci.tar" .
rm -rf "$work"
digest="$(tar -xOf "$OUT/clawbridge.oci.tar" ./index.json | sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p')"
echo "wrote $OUT/clawbridge.oci.tar (clawbridge:$TAG, manifest $digest, $(du -h "$OUT/clawbridge.oci.tar" | cut -f1))"
