#!/usr/bin/env python3
"""Offline checks for the clawbridge Helm chart (run by scripts/check-helm.sh).

Uses real Helm code only (no hand-rolled templating):
  * helm-sdkpy (Helm's Go library as a shared object): `helm lint` of the chart with its defaults.
    Run in a child process, since each package loads its own Go runtime.
  * helm-python-sdk (Helm v4 Go SDK over a C ABI): `helm lint --strict` with each ci values file
    and `helm template` (Chart.render) of defaults + ci values.
Every rendered manifest is validated offline against the Kubernetes JSON schemas bundled in
kubernetes-validate (strict: unknown fields are errors). Prometheus Operator CRs have no bundled
schema: they are checked for apiVersion/kind/metadata.name and the fields the chart relies on.
Then structural facts are asserted, and deliberately broken values must be rejected.

Prints one PASS/FAIL line per check and a closing `helm-check: N passed, M failed` line;
exits 1 on any failure.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import yaml

KUBE_VERSIONS = ["1.30.0", "1.37.0"]  # oldest supported by the preStop sleep action, newest bundled
LINT_KUBE_VERSION = "v1.30.0"
RELEASE, NAMESPACE = "ci", "ci"
CRD_GROUPS = ("monitoring.coreos.com/",)
CLAWBRIDGE_YAML_KEYS = {"listen", "upstream", "upstream_tls", "admin_listen", "chat_completions", "openclaw_config",
                        "log_format", "threads", "grace_period_secs", "limits"}
CLAWBRIDGE_LIMIT_KEYS = {"max_body_bytes", "max_concurrent_runs", "max_frame_bytes", "run_timeout_secs",
                         "accept_timeout_ms", "handshake_timeout_ms", "body_timeout_ms",
                         "sse_keepalive_secs", "run_buffer_bytes", "write_timeout_ms"}


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []

    def ok(self, name: str, detail: str = "") -> None:
        self.passed += 1
        print(f"PASS  {name}" + (f"  ({detail})" if detail else ""), flush=True)

    def bad(self, name: str, why: str) -> None:
        self.failed.append(name)
        print(f"FAIL  {name}: {why}", flush=True)

    def check(self, name: str, fn: Callable[[], str | None]) -> None:
        try:
            detail = fn()
        except AssertionError as e:
            self.bad(name, str(e) or "assertion failed")
        except Exception as e:  # noqa: BLE001 - any crash is a failed check
            self.bad(name, f"{type(e).__name__}: {e}")
        else:
            self.ok(name, detail or "")


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# ---------------------------------------------------------------- Helm (real Go implementations)

def lint_sdkpy(chart: Path) -> dict:
    """helm-sdkpy's Lint action, in a child process (its own Go runtime)."""
    code = (
        "import asyncio, json, sys, helm_sdkpy as hs\n"
        "cfg = hs.Configuration(namespace=%r)\n"
        "print(json.dumps(asyncio.run(hs.Lint(cfg).run(sys.argv[1]))))\n" % NAMESPACE
    )
    p = subprocess.run([sys.executable, "-c", code, str(chart)], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"helm-sdkpy lint crashed: {p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def lint_values(chart: Path, values: dict | None, kube_version: str = LINT_KUBE_VERSION) -> list[str]:
    """`helm lint --strict` with values (helm-python-sdk); returns error/warning messages."""
    import helm_python as hp

    report = hp.lint(str(chart), values, strict=True, namespace=NAMESPACE, kube_version=kube_version)
    return [f"[{ {1: 'INFO', 2: 'WARNING', 3: 'ERROR'}.get(m['severity'], m['severity']) }] {m['path']}: {m['error']}"
            for m in report.get("messages", []) if m.get("severity", 0) >= 2] + \
           [e for e in report.get("errors") or [] if not any(e in m.get("error", "") for m in report.get("messages", []))]


def render(chart: Path, values: dict | None, kube_version: str = LINT_KUBE_VERSION) -> dict[str, list[dict]]:
    """`helm template --kube-version` (helm-python-sdk): {template path: [documents]}.

    Chart.render() does not expose the native renderer's `kube_version` option (what
    .Capabilities.KubeVersion reports), so the pinned helm-python-sdk's native call is used
    directly; the native side rejects unknown option fields, so a rename fails loudly here.
    """
    import helm_python as hp
    from helm_python import _native

    c = hp.Chart.load(str(chart))
    opts = {"name": RELEASE, "namespace": NAMESPACE, "is_install": True, "kube_version": kube_version}
    raw = _native.call_string("helm_render", c._raw(), json.dumps(values) if values else None, json.dumps(opts))
    manifests: dict[str, str] = json.loads(raw)
    out: dict[str, list[dict]] = {}
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            out[path] = [{"__notes__": text}]
            continue
        docs = [d for d in yaml.safe_load_all(text) if d]
        if docs:
            out[path] = docs
    return out


# ---------------------------------------------------------------- schema validation

def validate_docs(docs: list[tuple[str, dict]]) -> tuple[list[str], list[str]]:
    import kubernetes_validate as kv

    errors, notes = [], []
    for path, d in docs:
        api, kind = d.get("apiVersion"), d.get("kind")
        name = (d.get("metadata") or {}).get("name")
        label = f"{path}: {kind}/{name}"
        if not (api and kind and name):
            errors.append(f"{label}: missing apiVersion/kind/metadata.name")
            continue
        if api.startswith(CRD_GROUPS):
            notes.append(f"{kind} ({api}): no bundled schema, schema validation skipped; "
                         "checked apiVersion/kind/metadata.name and fields below")
            continue
        for v in KUBE_VERSIONS:
            try:
                kv.validate(d, v, strict=True)
            except kv.ValidationError as e:
                loc = "/".join(str(p) for p in e.absolute_path)
                errors.append(f"{label} @ k8s {v}: {loc}: {e.message}")
            except kv.SchemaNotFoundError as e:
                errors.append(f"{label} @ k8s {v}: no schema ({e})")
    return errors, notes


# ---------------------------------------------------------------- structural facts

def by_kind(rendered: dict[str, list[dict]]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for docs in rendered.values():
        for d in docs:
            if "kind" in d:
                out.setdefault(d["kind"], []).append(d)
    return out


def prestop_seconds(container: dict) -> int:
    pre = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if "sleep" in pre:
        return int(pre["sleep"]["seconds"])
    if "exec" in pre:
        cmd = pre["exec"]["command"]
        assert cmd[0] == "sleep", f"exec preStop is not a sleep: {cmd}"
        return int(cmd[1])
    return 0


def structural(values: dict, rendered: dict[str, list[dict]]) -> list[str]:
    """Facts every rendering must satisfy; returns a list of violations."""
    errs: list[str] = []

    def need(cond: bool, msg: str) -> None:
        if not cond:
            errs.append(msg)

    k = by_kind(rendered)
    mode = values["mode"]
    deps = k.get("Deployment", [])
    need(len(deps) == 1, f"expected 1 Deployment, got {len(deps)}")
    if not deps:
        return errs
    dep = deps[0]
    tmpl = dep["spec"]["template"]
    pod = tmpl["spec"]
    ann = tmpl["metadata"].get("annotations") or {}
    containers = {c["name"]: c for c in pod["containers"]}

    # -- containers per mode
    want = ["clawbridge", "gateway"] if mode == "sidecar" else ["clawbridge"]
    need([c["name"] for c in pod["containers"]] == want,
         f"{mode} mode: containers {[c['name'] for c in pod['containers']]} != {want}")
    cb = containers.get("clawbridge", {})

    # -- checksums
    need(re.fullmatch(r"[0-9a-f]{64}", str(ann.get("checksum/config", ""))) is not None,
         "pod annotation checksum/config missing or not a sha256")
    secrets = k.get("Secret", [])
    if values["auth"].get("existingSecret"):
        need(not secrets, "existingSecret given but the chart still rendered a Secret")
    elif values["auth"]["mode"] != "none":
        need(len(secrets) == 1, f"expected 1 created Secret, got {len(secrets)}")
        need(re.fullmatch(r"[0-9a-f]{64}", str(ann.get("checksum/secret", ""))) is not None,
             "pod annotation checksum/secret missing for the created Secret")

    # -- secrets only through secretKeyRef
    secret_name = values["auth"].get("existingSecret") or f"{RELEASE}-clawbridge-auth"
    secret_var = {"token": "OPENCLAW_GATEWAY_TOKEN", "password": "OPENCLAW_GATEWAY_PASSWORD"}.get(values["auth"]["mode"])
    secret_key = values["auth"]["tokenKey"] if values["auth"]["mode"] == "token" else values["auth"]["passwordKey"]
    for c in pod["containers"]:
        env = {e["name"]: e for e in c.get("env") or []}
        for e in env.values():
            if re.search(r"TOKEN|PASSWORD|SECRET|API_KEY", e["name"]):
                need("value" not in e, f"{c['name']}: env {e['name']} has a literal value")
        if secret_var:
            e = env.get(secret_var)
            need(e is not None, f"{c['name']}: env {secret_var} missing")
            if e:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef") or {}
                need(ref.get("name") == secret_name and ref.get("key") == secret_key,
                     f"{c['name']}: {secret_var} not from secretKeyRef {secret_name}/{secret_key}: {e}")
    for s in secrets:
        need(secret_key in (s.get("data") or {}), f"Secret {s['metadata']['name']} lacks key {secret_key}")

    # -- no secret material in any ConfigMap
    import base64
    secret_values = {v for v in (values["auth"].get("token"), values["auth"].get("password")) if v}
    for s in secrets:
        secret_values |= {base64.b64decode(v).decode() for v in (s.get("data") or {}).values()}
    cms = k.get("ConfigMap", [])
    need(len(cms) == 1, f"expected 1 ConfigMap, got {len(cms)}")
    for cm in cms:
        blob = json.dumps(cm)
        for sv in secret_values:
            need(sv not in blob, f"ConfigMap {cm['metadata']['name']} contains a secret value")

    # -- config files
    cfg = yaml.safe_load(cms[0]["data"]["clawbridge.yaml"]) if cms else {}
    oc = json.loads(cms[0]["data"]["openclaw.json"]) if cms else {}
    need(set(cfg) <= CLAWBRIDGE_YAML_KEYS, f"clawbridge.yaml unknown keys {set(cfg) - CLAWBRIDGE_YAML_KEYS}")
    need(set(cfg.get("limits") or {}) <= CLAWBRIDGE_LIMIT_KEYS,
         f"clawbridge.yaml unknown limits {set(cfg.get('limits') or {}) - CLAWBRIDGE_LIMIT_KEYS}")
    need(cfg.get("chat_completions") in ("inherit", "on", "off"), f"chat_completions {cfg.get('chat_completions')!r}")
    need(cfg.get("log_format") in ("text", "json"), f"log_format {cfg.get('log_format')!r}")
    auth = (oc.get("gateway") or {}).get("auth") or {}
    need(not ({"token", "password"} & set(auth)), "openclaw.json carries gateway.auth.token/password")
    if mode == "sidecar":
        need(cfg.get("upstream") == f"127.0.0.1:{values['gateway']['port']}",
             f"sidecar upstream must be loopback, got {cfg.get('upstream')!r}")
        need(oc["gateway"].get("bind") == "loopback", "sidecar gateway.bind must be loopback")
        need("127.0.0.1" in oc["gateway"].get("trustedProxies", []),
             "sidecar gateway.trustedProxies must include 127.0.0.1 (clawbridge), or remote clients are refused")
        gw = containers.get("gateway", {})
        need(not gw.get("ports"), "gateway container must not expose ports (loopback only)")
        gw_env = {e["name"]: e.get("value") for e in gw.get("env") or []}
        need(gw_env.get("OPENCLAW_CONFIG_PATH") == values["gateway"]["configPath"],
             "gateway OPENCLAW_CONFIG_PATH mismatch")
        mounts = {m["mountPath"]: m["name"] for m in gw.get("volumeMounts") or []}
        need(mounts.get(os.path.dirname(values["gateway"]["configPath"])) == "gateway-config",
             "gateway config mount missing")
    else:
        need(cfg.get("upstream") == values["standalone"]["upstream"], "standalone upstream mismatch")
        tls = values["standalone"].get("tls") or {}
        if cfg["upstream"].startswith("https://"):
            ca = f"{values['upstreamCaMountPath']}/{tls['caKey']}"
            need((cfg.get("upstream_tls") or {}).get("ca_file") == ca, f"upstream_tls.ca_file must be {ca}")
            need((cfg.get("upstream_tls") or {}).get("server_name") == (tls.get("serverName") or None),
                 "upstream_tls.server_name mismatch")
            mounts = {m["mountPath"]: m["name"] for m in cb.get("volumeMounts") or []}
            need(mounts.get(values["upstreamCaMountPath"]) == "upstream-ca", "upstream CA mount missing")
        else:
            need("upstream_tls" not in cfg, "upstream_tls set for a plain upstream")
    cb_env = {e["name"]: e.get("value") for e in cb.get("env") or []}
    need(cb_env.get("OPENCLAW_CONFIG_PATH") == cfg.get("openclaw_config"),
         "clawbridge OPENCLAW_CONFIG_PATH differs from clawbridge.yaml openclaw_config")

    # -- probes and ports
    admin = values["clawbridge"]["ports"]["admin"]
    rp = (cb.get("readinessProbe") or {}).get("httpGet") or {}
    lp = (cb.get("livenessProbe") or {}).get("httpGet") or {}
    need(rp.get("path") == "/readyz" and rp.get("port") == admin,
         f"readiness probe must be GET /readyz on the admin port {admin}, got {rp}")
    need(lp.get("path") == "/healthz" and lp.get("port") == admin,
         f"liveness probe must be GET /healthz on {admin}, got {lp}")
    cports = {p["name"]: p["containerPort"] for p in cb.get("ports") or []}
    need(cports == {"http": values["clawbridge"]["ports"]["http"], "metrics": admin}, f"clawbridge ports {cports}")
    need(cfg.get("admin_listen", "").endswith(f":{admin}"), "admin_listen does not match the admin port")
    svc = k.get("Service", [{}])[0]
    sports = {p["name"]: p["targetPort"] for p in svc.get("spec", {}).get("ports", [])}
    need(sports == {"http": "http", "metrics": "metrics"}, f"Service ports {sports}")
    need(svc.get("spec", {}).get("selector") == dep["spec"]["selector"]["matchLabels"], "Service selector mismatch")

    # -- drain timing
    grace = int(cfg.get("grace_period_secs", 20))
    pre = prestop_seconds(cb)
    tgps = int(pod.get("terminationGracePeriodSeconds", 30))
    need(tgps >= pre + grace, f"terminationGracePeriodSeconds {tgps} < preStop {pre} + grace {grace}")
    need(tgps >= pre + grace + int(values.get("drainMarginSeconds", 0)),
         f"terminationGracePeriodSeconds {tgps} < preStop {pre} + grace {grace} + margin")
    if mode == "sidecar" and values["preStop"]["mode"] != "none":
        gpre = prestop_seconds(containers["gateway"])
        need(gpre >= pre + grace, f"gateway preStop {gpre} must outlive clawbridge's drain {pre + grace}")
        need(tgps > gpre, f"terminationGracePeriodSeconds {tgps} leaves the gateway no time after its preStop {gpre}")

    # -- hardening
    for c in pod["containers"]:
        sc = c.get("securityContext") or {}
        need(sc.get("runAsNonRoot") is True, f"{c['name']}: runAsNonRoot")
        need(sc.get("readOnlyRootFilesystem") is True, f"{c['name']}: readOnlyRootFilesystem")
        need(sc.get("allowPrivilegeEscalation") is False, f"{c['name']}: allowPrivilegeEscalation")
        need("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), f"{c['name']}: capabilities.drop ALL")
        need(bool(c.get("resources")), f"{c['name']}: resources unset")

    # -- monitoring
    for kind, key in (("ServiceMonitor", "endpoints"), ("PodMonitor", "podMetricsEndpoints")):
        objs = k.get(kind, [])
        need(len(objs) == (1 if values.get(kind[0].lower() + kind[1:], {}).get("enabled") else 0),
             f"{kind}: rendered {len(objs)} with enabled={values.get(kind[0].lower() + kind[1:], {}).get('enabled')}")
        for o in objs:
            need(o["apiVersion"] == "monitoring.coreos.com/v1", f"{kind} apiVersion {o['apiVersion']}")
            eps = o["spec"][key]
            need(all(e.get("path") == "/metrics" and e.get("port") == "metrics" for e in eps),
                 f"{kind} must scrape port metrics path /metrics: {eps}")
            need(o["spec"]["selector"]["matchLabels"].items() <= tmpl["metadata"]["labels"].items()
                 if kind == "PodMonitor" else
                 o["spec"]["selector"]["matchLabels"].items() <= (svc.get("metadata", {}).get("labels") or {}).items(),
                 f"{kind} selector does not select the {'pods' if kind == 'PodMonitor' else 'Service'}")

    # -- PDB
    pdbs = k.get("PodDisruptionBudget", [])
    en = str(values["podDisruptionBudget"]["enabled"]).lower()
    want_pdb = values["replicaCount"] > 1 if en == "auto" else en == "true"
    need(len(pdbs) == int(want_pdb), f"PodDisruptionBudget: rendered {len(pdbs)}, expected {int(want_pdb)}")
    for p in pdbs:
        need(p["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"], "PDB selector mismatch")

    # -- helm test hook
    tests = [d for path, docs in rendered.items() if "/tests/" in path for d in docs]
    need(len(tests) == 1 and tests[0]["kind"] == "Pod"
         and tests[0]["metadata"]["annotations"].get("helm.sh/hook") == "test",
         "helm test hook Pod missing")
    if tests:
        script = json.dumps(tests[0]["spec"]["containers"][0])
        need("/healthz" in script and "/readyz" in script and f":{values['service']['metricsPort']}" in script,
             "test pod must curl /healthz and /readyz on the admin (metrics) port")

    # -- NOTES
    notes = next((d[0]["__notes__"] for p, d in rendered.items() if p.endswith("NOTES.txt")), "")
    need("/v1/chat/completions" in notes and "/metrics" in notes, "NOTES.txt lacks the curl examples")
    if mode == "standalone":
        need("loopback" in notes, "NOTES.txt lacks the standalone loopback caveat")
        need("openclaw devices approve" in notes, "NOTES.txt lacks the standalone pairing approval step")

    # -- device identity: a writable state dir; a key Secret read-only
    ident = values.get("identity") or {}
    cb_env = {e["name"]: e.get("value") for e in cb.get("env") or []}
    cb_mounts = {m["mountPath"]: m for m in cb.get("volumeMounts") or []}
    vols = {v["name"]: v for v in pod.get("volumes") or []}
    state = cb_mounts.get(ident.get("stateDir"))
    need(cb_env.get("CLAWBRIDGE_STATE_DIR") == ident.get("stateDir") and state is not None
         and not state.get("readOnly"), "clawbridge state dir (CLAWBRIDGE_STATE_DIR) not mounted writable")
    if state:
        v = vols.get(state["name"], {})
        want_pvc = (ident.get("persistence") or {}).get("enabled")
        need(("persistentVolumeClaim" in v) == bool(want_pvc) and ("emptyDir" in v) != bool(want_pvc),
             f"state volume {v} does not match identity.persistence.enabled={want_pvc}")
    if ident.get("existingSecret"):
        key_file = cb_env.get("CLAWBRIDGE_DEVICE_KEY_FILE") or ""
        m = cb_mounts.get(os.path.dirname(key_file))
        need(m is not None and m.get("readOnly") is True, "device key Secret not mounted read-only at CLAWBRIDGE_DEVICE_KEY_FILE")
        if m:
            sec = vols.get(m["name"], {}).get("secret") or {}
            need(sec.get("secretName") == ident["existingSecret"]
                 and sec.get("items") == [{"key": ident["secretKey"], "path": os.path.basename(key_file)}],
                 f"device key volume {sec}")
    else:
        need("CLAWBRIDGE_DEVICE_KEY_FILE" not in cb_env, "CLAWBRIDGE_DEVICE_KEY_FILE set without identity.existingSecret")
    return errs


# ---------------------------------------------------------------- values documentation

def undocumented_values(values_yaml: str) -> list[str]:
    """Leaf keys of values.yaml with no helm-docs `# --` comment on themselves or an ancestor."""
    lines = values_yaml.splitlines()
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    missing = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z][\w.-]*):(.*)$", line)
        if not m:
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        j, documented = i - 1, False
        while j >= 0 and lines[j].strip().startswith("#"):
            documented |= lines[j].strip().startswith("# --")
            j -= 1
        nxt = next((x for x in lines[i + 1:] if x.strip() and not x.strip().startswith("#")), "")
        is_map = rest == "" and len(nxt) - len(nxt.lstrip()) > indent and not nxt.strip().startswith("-")
        inherited = any(d for _, _, d in stack)
        if not is_map and not documented and not inherited:
            missing.append(".".join([k for _, k, _ in stack] + [key]) + f" (line {i + 1})")
        stack.append((indent, key, documented))
    return missing


# ---------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chart", default=str(Path(__file__).resolve().parent.parent / "clawbridge"))
    ap.add_argument("--out", help="write rendered manifests here (one file per case)")
    args = ap.parse_args()
    chart = Path(args.chart)
    r = Report()
    t0 = time.monotonic()
    defaults = yaml.safe_load((chart / "values.yaml").read_text())

    cases: dict[str, dict] = {"defaults": {}}
    for f in sorted((chart / "ci").glob("*-values.yaml")):
        cases[f"ci/{f.name}"] = yaml.safe_load(f.read_text()) or {}

    def documented() -> str:
        missing = undocumented_values((chart / "values.yaml").read_text())
        assert not missing, "no `# --` comment: " + ", ".join(missing)
        return "every value has a `# --` comment"
    r.check("values.yaml documented (helm-docs)", documented)

    # 1. helm lint (helm-sdkpy, chart defaults)
    def sdkpy_lint() -> str:
        res = lint_sdkpy(chart)
        msgs = res.get("Messages") or []
        bad = [m for m in msgs if m.get("Severity", 0) >= 3]
        assert not bad and not res.get("Errors"), f"lint errors at {[m.get('Path') for m in bad]} (details: see the strict lint lines below)"
        return f"{len(msgs)} message(s), none at error level"
    r.check("helm lint (helm-sdkpy, defaults)", sdkpy_lint)

    # 2. helm lint --strict with each values set (helm-python-sdk)
    for name, vals in cases.items():
        def strict_lint(vals=vals) -> str:
            msgs = lint_values(chart, vals or None)
            assert not msgs, "; ".join(msgs)
            return f"kube {LINT_KUBE_VERSION}"
        r.check(f"helm lint --strict ({name})", strict_lint)

    # 3. render + schema validation + structural facts
    for name, vals in cases.items():
        merged = deep_merge(defaults, vals)
        rendered: dict[str, list[dict]] = {}

        def do_render(vals=vals) -> str:
            rendered.update(render(chart, vals or None))
            n = sum(len(d) for p, d in rendered.items() if not p.endswith("NOTES.txt"))
            if args.out:
                out = Path(args.out)
                out.mkdir(parents=True, exist_ok=True)
                (out / (name.replace("/", "_").replace(".yaml", "") + ".yaml")).write_text(
                    "\n---\n".join(yaml.safe_dump(d, sort_keys=False) for p, docs in rendered.items()
                                   if not p.endswith("NOTES.txt") for d in docs))
            return f"{n} objects: " + ", ".join(sorted({d['kind'] for docs in rendered.values() for d in docs if 'kind' in d}))
        r.check(f"helm template ({name})", do_render)
        if not rendered:
            continue

        def schemas() -> str:
            docs = [(p, d) for p, ds in rendered.items() if not p.endswith("NOTES.txt") for d in ds]
            errors, notes = validate_docs(docs)
            for n in notes:
                print(f"NOTE  {name}: {n}")
            assert not errors, "\n      ".join([""] + errors)
            return f"{len(docs) - len(notes)} objects valid for k8s {' and '.join(KUBE_VERSIONS)} (strict)"
        r.check(f"kubernetes schemas ({name})", schemas)

        def facts(merged=merged) -> str:
            errs = structural(merged, rendered)
            if merged["clawbridge"]["ports"]["admin"] != 9464:
                errs.append("ci/default values must keep the admin port at 9464")
            assert not errs, "\n      ".join([""] + errs)
            return f"mode={merged['mode']}"
        r.check(f"structure ({name})", facts)

    # 4. deliberate breaks must be caught
    sidecar_ci = cases.get("ci/sidecar-values.yaml", {})

    def must_fail_render(label: str, over: dict, expect: str) -> None:
        def fn() -> str:
            try:
                render(chart, deep_merge(sidecar_ci, over))
            except Exception as e:  # noqa: BLE001
                assert re.search(expect, str(e)), f"failed, but not with /{expect}/: {e}"
                msg = re.sub(r"^.*?execution error at \([^)]*\): ", "", str(e).strip().splitlines()[-1])
                return f"rejected: {msg[:160]}"
            raise AssertionError("rendered without error")
        r.check(f"break caught: {label}", fn)

    must_fail_render("terminationGracePeriodSeconds < preStop + grace",
                     {"terminationGracePeriodSeconds": 20}, r"terminationGracePeriodSeconds \(20\) must be >=")
    must_fail_render("token in gateway.config (ConfigMap)",
                     {"gateway": {"config": {"gateway": {"auth": {"token": "leak"}}}}}, r"must not contain token")
    must_fail_render("chatCompletions: maybe (schema)", {"clawbridge": {"chatCompletions": "maybe"}}, r"chatCompletions")
    must_fail_render("standalone without upstream", {"mode": "standalone"}, r"standalone.upstream is required")
    must_fail_render("existingSecret and token together", {"auth": {"existingSecret": "x"}}, r"not both")
    must_fail_render("https upstream without a CA Secret",
                     {"mode": "standalone", "standalone": {"upstream": "https://gw.example:443"}}, r"caSecret is empty")
    must_fail_render("upstream TLS on a plain upstream",
                     {"mode": "standalone", "standalone": {"upstream": "gw:1", "tls": {"serverName": "gw"}}},
                     r"not https://")

    def old_kube_sleep() -> str:
        try:
            render(chart, sidecar_ci, kube_version="v1.29.0")
        except Exception as e:  # noqa: BLE001
            assert "needs Kubernetes >= 1.30" in str(e), f"failed, but not for the sleep handler: {e}"
            return "preStop.mode=sleep rejected when rendering for k8s v1.29"
        raise AssertionError("rendered for k8s v1.29 with preStop.mode=sleep")
    r.check("break caught: sleep preStop on k8s 1.29", old_kube_sleep)

    def k8s_schema_break() -> str:
        bad = render(chart, deep_merge(sidecar_ci, {"clawbridge": {"securityContext": {"runAsUser": "root"}}}))
        errors, _ = validate_docs([(p, d) for p, ds in bad.items() if not p.endswith("NOTES.txt") for d in ds])
        assert any("runAsUser" in e for e in errors), f"schema validation let it through: {errors}"
        return "runAsUser: \"root\" rejected by the k8s schema"
    r.check("break caught: invalid field type (k8s schema)", k8s_schema_break)

    def structure_break() -> str:
        over = {"clawbridge": {"readinessProbe": {"httpGet": {"path": "/healthz", "port": 9464}}}}
        vals = deep_merge(sidecar_ci, over)
        errs = structural(deep_merge(defaults, vals), render(chart, vals))
        assert any("readiness probe must be GET /readyz" in e for e in errs), f"structural check let it through: {errs}"
        return "readiness on /healthz rejected"
    r.check("break caught: readiness probe on the wrong path", structure_break)

    dt = time.monotonic() - t0
    print()
    if r.failed:
        print(f"FAILED checks: {', '.join(r.failed)}")
    print(f"helm chart checks {'PASSED' if not r.failed else 'FAILED'} in {dt:.1f}s")
    print(f"helm-check: {r.passed} passed, {len(r.failed)} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` should not print a traceback
    sys.exit(main())
