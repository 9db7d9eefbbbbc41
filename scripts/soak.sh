#!/usr/bin/env bash
# Soak: several thousand streams through the demo gateway for SOAK_SECS
# (default 150), random client disconnects, one gateway restart halfway.
# Prints (and writes to target/soak-report.txt) errors, RSS at start and end,
# and the run tables at the end.
#   SOAK_SECS=150 SOAK_CLIENTS=32 scripts/soak.sh [--release]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=()
[ "${1:-}" = "--release" ] && profile=(--release)
mkdir -p target
export SOAK_REPORT="${SOAK_REPORT:-$PWD/target/soak-report.txt}"
cargo test "${profile[@]}" -p clawbridge --test it -- --ignored --nocapture soak::
cat "$SOAK_REPORT"
