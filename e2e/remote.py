#!/usr/bin/env python3
"""Phase 3: a remote client stays remote through clawbridge (issue 13 §1, §2, §4).

The gateway stays on loopback with its built-in chat off; clawbridge
(CLAWBRIDGE_CHAT_COMPLETIONS=on) listens on every address. The "remote"
client runs inside the phase's own network namespace (E2E_NETNS) and reaches
clawbridge at the veth host address (E2E_REMOTE_BRIDGE_URL); the "local"
client is this process, on loopback (E2E_BRIDGE_URL, E2E_GATEWAY_URL).

--mode trusted   : gateway.trustedProxies = [127.0.0.1] (OCREF_TRUSTED_PROXIES):
    native WS scopes ([] remote, kept local, spoofed forwarding headers
    change nothing); /readyz detail (local only); chat-path spellings served
    by clawbridge, never forwarded; POST + Upgrade refused; then the two
    lockouts, last because they lock the remote address out for 5 minutes:
    clawbridge's chat route, and the gateway's own limiter over passthrough WS.
--mode untrusted : the gateway does not trust clawbridge: remote passthrough
    (HTTP and WS) is refused with 403 proxy_attribution_required, never
    served as local; local clients, clawbridge's /readyz and its chat route
    (both sides) keep working.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from common import BRIDGE_URL, GATEWAY_URL, TOKEN, Reporter, fake_config, ws_url
from remote_client import run_steps

HERE = Path(__file__).resolve().parent
NETNS = os.environ.get("E2E_NETNS", "")
REMOTE_BRIDGE_URL = os.environ.get("E2E_REMOTE_BRIDGE_URL", "").rstrip("/")
BRIDGE_LOG = Path(os.environ.get("E2E_BRIDGE_LOG", "/nonexistent"))   # clawbridge's JSON log (run.sh)
ADMIN_URL = os.environ.get("E2E_ADMIN_URL", "http://127.0.0.1:18801").rstrip("/")
ALL_SCOPES = ["operator.read", "operator.write", "operator.admin"]
CHAT = "/v1/chat/completions"
# Spellings the gateway routes to /v1/chat/completions (src/ingress/path.rs table,
# recorded from the gateway's own code), each with the Host header it is sent
# with (None: the address connected to), and one it does not route there (control).
ABSOLUTE = "http://evil.example:9/v1/chat/completions"
SPELLINGS = [
    ("/v1/chat/completions?x=1", None),
    ("/v1/./chat/completions", None),
    ("/v1/%2e/chat/completions", None),
    ("/v1/x/%2E%2E/chat/completions", None),
    ("/v1\\chat\\completions", None),
    ("/../v1/chat/completions", None),
    ("//x/v1/chat/completions", None),
    (ABSOLUTE, "evil.example:9"),   # absolute-form: Host must match its authority (RFC 9112 §3.2.2)
    ("/__openclaw__/cap/abc/v1/chat/completions", None),
]
NOT_CHAT = "/v1/chat/completions/"
R: Reporter


# ---------------------------------------------------------------- clients
def remote(steps: list[dict]) -> list[dict]:
    """Runs a batch of remote_client steps inside the namespace."""
    p = subprocess.run(["ip", "netns", "exec", NETNS, sys.executable, str(HERE / "remote_client.py")],
                       input=json.dumps(steps), capture_output=True, text=True, timeout=300, cwd=HERE)
    if p.returncode != 0:
        raise RuntimeError(f"remote client exited {p.returncode}: {p.stderr[-800:]}")
    return json.loads(p.stdout)


def ws(url: str, token: str = TOKEN, headers: dict | None = None) -> dict:
    return {"kind": "ws", "url": ws_url(url), "token": token, "scopes": ALL_SCOPES, "headers": headers or {}}


def get(base: str, target: str, headers: list | None = None) -> dict:
    return {"kind": "http", "base": base, "method": "GET", "target": target, "headers": headers or []}


def chat(base: str, target: str = CHAT, token: str | None = TOKEN, extra: list | None = None,
         host: str | None = None) -> dict:
    headers = [["Content-Type", "application/json"]] + ([["Authorization", f"Bearer {token}"]] if token else [])
    body = {"model": "openclaw", "messages": [{"role": "user", "content": "hi"}]}
    return {"kind": "http", "base": base, "method": "POST", "target": target,
            "headers": headers + (extra or []), "body": json.dumps(body), "host": host}


def error_type(r: dict) -> str | None:
    try:
        return (json.loads(r.get("body") or r.get("http_body") or "") or {}).get("error", {}).get("type")
    except Exception:  # noqa: BLE001
        return None


def completion_text(r: dict) -> str | None:
    try:
        j = json.loads(r["body"])
        return j["choices"][0]["message"]["content"] if j.get("object") == "chat.completion" else None
    except Exception:  # noqa: BLE001
        return None


def brief(r: dict) -> str:
    if r.get("kind") == "ws" or "scopes" in r:
        return json.dumps({k: r.get(k) for k in ("ok", "scopes", "error", "closed", "http_status", "http_body")})[:260]
    return f"{r.get('status')} {(r.get('body') or r.get('error') or '')[:160]!r}"


def refusals() -> int:
    """Access-log lines of upgrades clawbridge refused itself."""
    try:
        lines = BRIDGE_LOG.read_text(errors="replace").splitlines()
    except OSError:
        return 0
    return sum(1 for line in lines if '"route":"refused"' in line and '"reason":"upgrade_method"' in line)


def json_body(r: dict):
    try:
        return json.loads(r.get("body") or "")
    except Exception:  # noqa: BLE001
        return None


# ---------------------------------------------------------------- trusted
def ws_locality() -> None:
    """Native WS connect through clawbridge, with the scopes of a local backend client asked for."""
    direct, local = run_steps([ws(GATEWAY_URL), ws(BRIDGE_URL)])
    R.check("WS direct from loopback: all asked scopes (reference)", direct.get("ok") is True and direct["scopes"] == ALL_SCOPES, brief(direct))
    R.check("WS via clawbridge from loopback: scopes kept", local.get("ok") is True and local["scopes"] == ALL_SCOPES, brief(local))
    # A proxy on loopback (trusted by the gateway, so by clawbridge too) naming its
    # client: clawbridge extends the chain; the gateway judges the client as it
    # would directly.
    for label, h in (("X-Forwarded-For: 203.0.113.7", {"X-Forwarded-For": "203.0.113.7"}),
                     ("X-Forwarded-For: 127.0.0.1", {"X-Forwarded-For": "127.0.0.1"})):
        d, b = run_steps([ws(GATEWAY_URL, headers=h), ws(BRIDGE_URL, headers=h)])
        same = (d.get("ok"), d.get("scopes"), d.get("http_status")) == (b.get("ok"), b.get("scopes"), b.get("http_status"))
        R.check(f"WS from a loopback proxy sending {label}: via clawbridge as direct", same and b.get("scopes") != ALL_SCOPES,
                f"direct {brief(d)} vs clawbridge {brief(b)}")
    spoofs = {
        "X-Forwarded-For: 127.0.0.1": {"X-Forwarded-For": "127.0.0.1"},
        "X-Real-IP: 127.0.0.1": {"X-Real-IP": "127.0.0.1"},
        "XFF + Forwarded + X-Forwarded-Proto": {"X-Forwarded-For": "127.0.0.1", "Forwarded": "for=127.0.0.1",
                                                "X-Forwarded-Proto": "http"},
    }
    res = remote([ws(REMOTE_BRIDGE_URL)] + [ws(REMOTE_BRIDGE_URL, headers=h) for h in spoofs.values()])
    plain = res[0]
    R.check("WS via clawbridge from the namespace: connected with scopes [] (what a remote client gets)",
            plain.get("ok") is True and plain.get("scopes") == [], brief(plain))
    for (label, _), r in zip(spoofs.items(), res[1:]):
        refused = r.get("ok") is not True and (r.get("http_status") in (400, 403) or r.get("error") is not None)
        R.check(f"WS from the namespace spoofing {label}: scopes [] or refused, never local",
                (r.get("ok") is True and r.get("scopes") == []) or refused, brief(r))


def readyz_detail() -> None:
    direct, local = run_steps([get(GATEWAY_URL, "/readyz"), get(BRIDGE_URL, "/readyz")])
    rem, spoof = remote([get(REMOTE_BRIDGE_URL, "/readyz"),
                         get(REMOTE_BRIDGE_URL, "/readyz", [["X-Forwarded-For", "127.0.0.1"], ["X-Forwarded-For", "::1"],
                                                            ["X-Real-IP", "127.0.0.1"], ["Forwarded", "for=127.0.0.1"]])])
    jd, jl, jr, js = (json_body(x) for x in (direct, local, rem, spoof))
    detailed = isinstance(jd, dict) and set(jd) - {"ready"}
    R.check("/readyz direct from loopback: detail beyond 'ready' (reference)", direct["status"] == 200 and bool(detailed),
            f"keys {sorted(jd) if isinstance(jd, dict) else jd}")
    R.check("/readyz via clawbridge from loopback: the same detail", local["status"] == 200 and isinstance(jl, dict)
            and set(jl) == set(jd or {}), f"keys {sorted(jl) if isinstance(jl, dict) else brief(local)}")
    R.check("/readyz via clawbridge from the namespace: only {\"ready\": ...}", rem["status"] == 200 and isinstance(jr, dict)
            and set(jr) == {"ready"}, brief(rem))
    R.check("/readyz from the namespace spoofing XFF (twice)/X-Real-IP/Forwarded loopback: still only {\"ready\": ...}",
            spoof["status"] == 200 and isinstance(js, dict) and set(js) == {"ready"}, brief(spoof))


def spellings(reply: str) -> None:
    """Every spelling of the chat path is clawbridge's: a completion with a token
    (the gateway's built-in is off: forwarded, it would be 404), 401 without."""
    steps = []
    for t, host in SPELLINGS:
        steps += [chat(REMOTE_BRIDGE_URL, t, host=host), chat(REMOTE_BRIDGE_URL, t, token=None, host=host)]
    steps += [chat(REMOTE_BRIDGE_URL, ABSOLUTE),   # Host differs from the target's authority
              chat(REMOTE_BRIDGE_URL, NOT_CHAT),
              chat(REMOTE_BRIDGE_URL, CHAT, extra=[["Upgrade", "websocket"], ["Connection", "Upgrade"]]),
              chat(REMOTE_BRIDGE_URL, "/v1/%2e/chat/completions", extra=[["Upgrade", "websocket"], ["Connection", "Upgrade"]]),
              chat(REMOTE_BRIDGE_URL, CHAT, extra=[["X-Forwarded-For", "203.0.113.9"]])]
    refused_before = refusals()
    res = remote(steps)
    time.sleep(0.2)
    refused_by_clawbridge = refusals() - refused_before
    for i, (t, _) in enumerate(SPELLINGS):
        ok, anon = res[2 * i], res[2 * i + 1]
        R.check(f"POST {t} from the namespace: served by clawbridge (completion)",
                ok["status"] == 200 and completion_text(ok) == reply, brief(ok))
        R.check(f"POST {t} without a token: clawbridge's 401", anon["status"] == 401 and error_type(anon) == "unauthorized",
                brief(anon))
    mismatch, ctl, up, up2, xff = res[len(SPELLINGS) * 2:]
    R.check("POST absolute-form with a Host that differs from its authority: refused 400 before routing, never forwarded",
            mismatch["status"] == 400, brief(mismatch))
    R.check(f"POST {NOT_CHAT} (not the chat path): forwarded, the gateway's 404", ctl["status"] == 404, brief(ctl))
    R.check("POST /v1/chat/completions with Upgrade: websocket: 405", up["status"] == 405, brief(up))
    R.check("POST /v1/%2e/chat/completions with Upgrade: websocket: 405", up2["status"] == 405, brief(up2))
    # the gateway's `ws` answers these the same way: clawbridge's access log shows who did
    R.check("both upgrades answered by clawbridge, not forwarded (access log: route refused, upgrade_method)",
            refused_by_clawbridge == 2, f"{refused_by_clawbridge} refusal lines in {BRIDGE_LOG.name}")
    R.check("POST chat from the namespace with its own X-Forwarded-For: 403 proxy_attribution_required (as the gateway)",
            xff["status"] == 403 and error_type(xff) == "proxy_attribution_required", brief(xff))


def chat_lockout(reply: str) -> None:
    """10 wrong bearer tokens lock the remote client out of clawbridge's chat
    route; a loopback client with the right token is still served."""
    res = remote([chat(REMOTE_BRIDGE_URL, token=f"wrong-{i}") for i in range(10)]
                 + [chat(REMOTE_BRIDGE_URL), chat(REMOTE_BRIDGE_URL, "/v1/%2e/chat/completions")])
    wrong, locked, locked2 = res[:10], res[10], res[11]
    R.check("chat: 10 wrong tokens from the namespace: 401 each", all(r["status"] == 401 for r in wrong),
            f"{[r['status'] for r in wrong]}")
    ra = locked.get("headers", {}).get("retry-after", "")
    R.check("chat: then the right token from the namespace: 429 + Retry-After (locked out)",
            locked["status"] == 429 and error_type(locked) == "rate_limited" and ra.isdigit() and 240 <= int(ra) <= 300,
            f"{brief(locked)} Retry-After {ra!r}")
    R.check("chat: the lockout holds on another spelling of the path", locked2["status"] == 429, brief(locked2))
    (local,) = run_steps([chat(BRIDGE_URL)])
    R.check("chat: a loopback client with the right token is still served",
            local["status"] == 200 and completion_text(local) == reply, brief(local))
    # Behind a proxy on loopback (trusted), the lockout keys on the client it names.
    a, b = [["X-Forwarded-For", "198.51.100.1"]], [["X-Forwarded-For", "198.51.100.2"]]
    res = run_steps([chat(BRIDGE_URL, token=f"wrong-{i}", extra=a) for i in range(10)]
                    + [chat(BRIDGE_URL, extra=a), chat(BRIDGE_URL, extra=b)])
    R.check("chat behind a loopback proxy: 10 wrong tokens for client A: 401 each, then A is locked out (429)",
            all(r["status"] == 401 for r in res[:10]) and res[10]["status"] == 429,
            f"{[r['status'] for r in res[:11]]}")
    R.check("chat behind the same proxy: client B with the right token is served",
            res[11]["status"] == 200 and completion_text(res[11]) == reply, brief(res[11]))


def ws_lockout() -> None:
    """Wrong WS tokens from the remote client, passed through: the gateway's
    own limiter keys on the forwarded client (loopback would be exempt)."""
    res = remote([ws(REMOTE_BRIDGE_URL, token=f"wrong-{i}") for i in range(10)] + [ws(REMOTE_BRIDGE_URL)])
    wrong, locked = res[:10], res[10]
    codes = [((r.get("error") or {}).get("details") or {}).get("code") or (r.get("error") or {}).get("code") for r in wrong]
    R.check("WS: 10 wrong tokens from the namespace: refused each", all(r.get("ok") is False for r in wrong), f"{codes}")
    lerr = locked.get("error") or {}
    R.check("WS: then the right token from the namespace: AUTH_RATE_LIMITED from the gateway, socket closed 1008",
            locked.get("ok") is False and (lerr.get("details") or {}).get("code") == "AUTH_RATE_LIMITED"
            and (locked.get("closed") or [None])[0] == 1008, brief(locked))
    (local,) = run_steps([ws(BRIDGE_URL)])
    R.check("WS: a loopback client via clawbridge is not locked out (scopes kept)",
            local.get("ok") is True and local.get("scopes") == ALL_SCOPES, brief(local))


# ---------------------------------------------------------------- untrusted
def untrusted(reply: str) -> None:
    res = remote([get(REMOTE_BRIDGE_URL, "/readyz"), get(REMOTE_BRIDGE_URL, "/"), get(REMOTE_BRIDGE_URL, "/healthz"),
                  ws(REMOTE_BRIDGE_URL), ws(REMOTE_BRIDGE_URL, headers={"X-Forwarded-For": "127.0.0.1"}),
                  chat(REMOTE_BRIDGE_URL), chat(REMOTE_BRIDGE_URL, token=None)])
    rz, ui, hz, w, wspoof, ch, anon = res
    for label, r in (("GET /readyz", rz), ("GET / (Control UI)", ui)):
        R.check(f"{label} from the namespace via clawbridge: 403 proxy_attribution_required, never local",
                r["status"] == 403 and error_type(r) == "proxy_attribution_required", brief(r))
    R.check("GET /healthz from the namespace: the gateway's liveness probe (answered before attribution)",
            hz["status"] == 200, brief(hz))
    for label, r in (("WS", w), ("WS spoofing X-Forwarded-For: 127.0.0.1", wspoof)):
        R.check(f"{label} from the namespace via clawbridge: 403 proxy_attribution_required at the upgrade",
                r.get("http_status") == 403 and error_type(r) == "proxy_attribution_required" and r.get("ok") is None, brief(r))
    R.check("chat from the namespace: served by clawbridge", ch["status"] == 200 and completion_text(ch) == reply, brief(ch))
    R.check("chat from the namespace without a token: clawbridge's 401", anon["status"] == 401 and error_type(anon) == "unauthorized",
            brief(anon))
    lz, lw, lch = run_steps([get(BRIDGE_URL, "/readyz"), ws(BRIDGE_URL), chat(BRIDGE_URL)])
    jl = json_body(lz)
    R.check("GET /readyz from loopback via clawbridge: 200 with detail", lz["status"] == 200 and isinstance(jl, dict)
            and len(set(jl) - {"ready"}) > 0, brief(lz))
    R.check("WS from loopback via clawbridge: scopes kept", lw.get("ok") is True and lw.get("scopes") == ALL_SCOPES, brief(lw))
    R.check("chat from loopback: served", lch["status"] == 200 and completion_text(lch) == reply, brief(lch))


def main() -> int:
    global R
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["trusted", "untrusted"], required=True)
    args = ap.parse_args()
    R = Reporter(f"remote-{args.mode}")
    if not NETNS or not REMOTE_BRIDGE_URL:
        print("FATAL: E2E_NETNS and E2E_REMOTE_BRIDGE_URL must be set (run.sh phase 3)", file=sys.stderr)
        return 2
    with httpx.Client(timeout=10) as c:
        reply = "".join(fake_config(c)["reply"])
        adm = c.get(ADMIN_URL + "/readyz")
    R.check("clawbridge admin /readyz: ready", adm.status_code == 200, f"{adm.status_code} {adm.text[:120]!r}")
    said = str((adm.json() if adm.headers.get("content-type", "").startswith("application/json") else {}).get("remote_clients"))
    want = "forwarded as themselves" if args.mode == "trusted" else "refused by the gateway (403 proxy_attribution_required)"
    R.check(f"clawbridge admin /readyz remote_clients says {want!r}", want in said, said[:200])
    if args.mode == "trusted":
        ws_locality()
        readyz_detail()
        spellings(reply)
        chat_lockout(reply)
        ws_lockout()
    else:
        untrusted(reply)
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
