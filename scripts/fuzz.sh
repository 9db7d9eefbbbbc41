#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time each.
#   scripts/fuzz.sh [seconds-per-target] [target...]     (default 60 s, all targets)
# Only stable Rust is installed: RUSTC_BOOTSTRAP=1 lets it accept the
# nightly-only flags cargo-fuzz passes (-Zsanitizer, -Cpasses=sancov...).
# Seeds live in fuzz/seeds/<target> (committed); the growing corpus in
# fuzz/corpus/<target> and crashes in fuzz/artifacts/<target> (ignored).
# A crash: add its input as a regression case in tests/it/fuzz_regressions.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi
# ASan is the default; FUZZ_SANITIZER=none builds faster.
sanitizer="${FUZZ_SANITIZER:-address}"
cd fuzz
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "fuzz: $t for ${secs}s"
    if ! cargo fuzz run --sanitizer "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 | tail -n 25; then
        status=1
    fi
    if compgen -G "artifacts/$t/crash-*" >/dev/null || compgen -G "artifacts/$t/oom-*" >/dev/null ||
        compgen -G "artifacts/$t/timeout-*" >/dev/null; then
        echo "fuzz: $t FOUND FAILURES:"
        ls -l "artifacts/$t/"
        status=1
    fi
done
exit $status
