#!/usr/bin/env bash
# Offline checks of the Helm chart in helm/clawbridge: helm lint, helm template (defaults and
# helm/clawbridge/ci/*-values.yaml), Kubernetes JSON-schema validation, structural assertions,
# and deliberately broken values that must be rejected. No helm binary and no cluster needed:
# Helm's own Go code comes from PyPI wheels (helm-sdkpy, helm-python-sdk).
#
# Needs python3 (>= 3.10) with venv + pip, and PyPI on first run only. The venv lives in
# target/helm-venv (/target is gitignored); override with HELM_CHECK_VENV. Re-runs reuse it
# and skip pip entirely while the pinned requirements are unchanged.
#
# Usage: scripts/check-helm.sh [--out DIR]   (--out writes the rendered manifests to DIR)
# Exit status: 0 all checks passed, 1 a check failed, 2 setup failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HELM_CHECK_VENV:-$ROOT/target/helm-venv}"
PYTHON="${PYTHON:-python3}"

# Pinned: the check relies on these packages' APIs (helm-python-sdk's native render options).
# helm-sdkpy declares a newer Requires-Python than it needs; its Lint action works on 3.11.
REQS_SDKPY="helm-sdkpy==0.1.32"
REQS_OTHER="helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 PyYAML==6.0.4"
STAMP="$VENV/.clawbridge-helm-check-reqs"
WANT="$REQS_SDKPY $REQS_OTHER"

setup_fail() { echo "FAIL  setup: $*" >&2; echo "helm-check: 0 passed, 1 failed"; exit 2; }

if [[ ! -x "$VENV/bin/python" ]] || [[ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]]; then
  echo "setting up $VENV (one-time) ..."
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || setup_fail "$PYTHON is older than 3.10"
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV" || setup_fail "python3 -m venv failed (apt-get install python3-venv?)"
  PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
  # shellcheck disable=SC2086
  "${PIP[@]}" --ignore-requires-python $REQS_SDKPY || setup_fail "pip install $REQS_SDKPY"
  # shellcheck disable=SC2086
  "${PIP[@]}" $REQS_OTHER || setup_fail "pip install $REQS_OTHER"
  echo "$WANT" > "$STAMP"
fi

"$VENV/bin/python" "$ROOT/helm/checks/check_chart.py" --chart "$ROOT/helm/clawbridge" "$@"

# The clawbridge.yaml each mode renders must pass the real binary's --check
# (deny_unknown_fields: a chart key the binary does not know fails here).
BIN="${CLAWBRIDGE_BIN:-$ROOT/target/debug/clawbridge}"
if [[ -x "$BIN" ]]; then
  out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
  "$VENV/bin/python" "$ROOT/helm/checks/check_chart.py" --chart "$ROOT/helm/clawbridge" --out "$out" >/dev/null
  "$VENV/bin/python" - "$out" <<'PY'
import glob, os, sys, yaml
for f in glob.glob(os.path.join(sys.argv[1], "*.yaml")):
    for doc in yaml.safe_load_all(open(f)):
        if doc and doc.get("kind") == "ConfigMap" and "clawbridge.yaml" in (doc.get("data") or {}):
            text = doc["data"]["clawbridge.yaml"]
            cfg = yaml.safe_load(text)
            # upstream_tls.ca_file names the pod's Secret mount; --check loads the bundle, so it
            # gets this machine's CA bundle at that key instead (the key names are what is checked).
            if (cfg.get("upstream_tls") or {}).get("ca_file") and os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
                cfg["upstream_tls"]["ca_file"] = "/etc/ssl/certs/ca-certificates.crt"
                text = yaml.safe_dump(cfg)
            open(f[:-5] + ".clawbridge-config", "w").write(text)
PY
  for cfg in "$out"/*.clawbridge-config; do
    if OPENCLAW_GATEWAY_TOKEN=helm-check "$BIN" --config "$cfg" --check >/dev/null; then
      echo "PASS  clawbridge --check accepts the rendered config ($(basename "$cfg" .clawbridge-config))"
    else
      echo "FAIL  clawbridge --check rejects the rendered config ($(basename "$cfg" .clawbridge-config))"; exit 1
    fi
  done
else
  echo "NOTE  $BIN not built: rendered configs not checked against the binary"
fi
