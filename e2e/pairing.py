#!/usr/bin/env python3
"""Phase 4: device identity and pairing against the real gateway (issue 15 §1).

--mode remote : the gateway listens on every interface (OCREF_BIND=lan) and
    clawbridge runs INSIDE the phase's network namespace (E2E_NETNS), its
    upstream the veth host address, so the gateway sees a remote peer. This
    script starts and stops clawbridge itself (restarts are part of the test):
    not ready with PAIRING_REQUIRED, /readyz and the metric and the log name
    the device, the request and the approve command; retries reuse the
    request; `openclaw devices approve` -> ready without a restart, a chat
    turn works; a restart with the same state dir needs no new approval;
    `openclaw devices rotate` -> the new device token is stored, ready again;
    `openclaw devices revoke` -> not ready again.
--mode legacy : an older gateway on loopback that demands a device
    (2026.3.31): clawbridge, started by run.sh, is ready (the gateway paired
    the device silently and issued a token) and serves a chat turn.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from common import TOKEN, Reporter

KIT = Path(os.environ.get("E2E_KIT", "../shared/openclaw-real"))
NETNS = os.environ.get("E2E_NETNS", "")
NS_HOST_ADDR = os.environ.get("E2E_NETNS_HOST_ADDR", "10.231.7.1")
NS_ADDR = os.environ.get("E2E_NETNS_ADDR", "10.231.7.2")
GATEWAY_PORT = os.environ.get("OCREF_GATEWAY_PORT", "18789")
BIN = os.environ.get("E2E_BIN", "")
OUT = Path(os.environ.get("E2E_OUT", "out"))
BRIDGE_PORT = os.environ.get("E2E_BRIDGE_PORT", "18800")
ADMIN_PORT = os.environ.get("E2E_ADMIN_PORT", "18801")
GATEWAY_CONFIG = os.environ.get("E2E_GATEWAY_CONFIG", "")
BODY = {"model": "openclaw", "messages": [{"role": "user", "content": "pairing e2e"}]}
R: Reporter


# ---------------------------------------------------------------- the gateway's CLI
def devices(*args: str) -> str:
    """`openclaw devices …` against the gateway, with the kit's environment."""
    script = ('. "$1/env.sh"; ocref_export_env; shift; '
              'exec "$OCREF_NODE_BIN" "$OCREF_OPENCLAW_MJS" devices "$@" '
              f'--url ws://127.0.0.1:{GATEWAY_PORT} --token "$OCREF_TOKEN"')
    p = subprocess.run(["bash", "-c", script, "devices", str(KIT), *args],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"openclaw devices {' '.join(args)}: exit {p.returncode}: {p.stderr[-600:]}")
    return p.stdout


def devices_list() -> dict:
    out = devices("list", "--json")
    return json.loads(out[out.index("{"):])


# ---------------------------------------------------------------- clawbridge in the namespace
class Bridge:
    def __init__(self, state: Path, name: str):
        self.log = OUT / f"clawbridge-phase4-{name}.log"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CLAWBRIDGE_STATE_DIR": str(state),
            "CLAWBRIDGE_LISTEN": f"0.0.0.0:{BRIDGE_PORT}",
            "CLAWBRIDGE_ADMIN_LISTEN": f"0.0.0.0:{ADMIN_PORT}",
            "CLAWBRIDGE_UPSTREAM": f"{NS_HOST_ADDR}:{GATEWAY_PORT}",
            "CLAWBRIDGE_CHAT_COMPLETIONS": "on",
            "OPENCLAW_CONFIG_PATH": GATEWAY_CONFIG,
            "CLAWBRIDGE_GRACE_PERIOD_SECS": "2",
            "CLAWBRIDGE_LOG_FORMAT": "json",
        }
        argv = ["ip", "netns", "exec", NETNS, "env", "-i", *[f"{k}={v}" for k, v in env.items()], BIN]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"),
                                     stdin=subprocess.DEVNULL)
        self.base = f"http://{NS_ADDR}:{BRIDGE_PORT}"
        self.admin = f"http://{NS_ADDR}:{ADMIN_PORT}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def readyz(self, c: httpx.Client) -> tuple[int, dict]:
        try:
            r = c.get(self.admin + "/readyz", timeout=3)
            return r.status_code, r.json()
        except (httpx.HTTPError, ValueError):
            return 0, {}

    def wait_readyz(self, c: httpx.Client, pred, secs: float) -> tuple[float, int, dict]:
        t0 = time.monotonic()
        status, body = 0, {}
        while time.monotonic() - t0 < secs:
            if self.proc.poll() is not None:
                raise RuntimeError(f"clawbridge exited {self.proc.returncode}: {self.logs()[-800:]}")
            status, body = self.readyz(c)
            if status and pred(status, body):
                return time.monotonic() - t0, status, body
            time.sleep(0.2)
        return -1.0, status, body

    def metrics(self, c: httpx.Client) -> str:
        return c.get(self.admin + "/metrics", timeout=5).text


def chat(c: httpx.Client, base: str) -> httpx.Response:
    return c.post(base + "/v1/chat/completions", json=BODY, timeout=120,
                  headers={"Authorization": f"Bearer {TOKEN}"})


def pending(body: dict) -> bool:
    return body.get("ready") is False and (body.get("device") or {}).get("pairing") == "pending"


def pairing_metric(text: str) -> str | None:
    on = re.findall(r'^clawbridge_gateway_pairing\{state="(\w+)"\} 1$', text, re.M)
    return on[0] if len(on) == 1 else None


# ---------------------------------------------------------------- remote
def remote(c: httpx.Client, state: Path) -> None:
    b = Bridge(state, "remote-1")
    try:
        t, status, body = b.wait_readyz(c, lambda s, v: pending(v), 30)
        dev = body.get("device") or {}
        R.check("remote clawbridge not ready: the gateway requires pairing", t >= 0 and status == 503,
                f"{status} {json.dumps(body)[:300]}")
        device_id, request_id = dev.get("id") or "", dev.get("request_id") or ""
        R.check("/readyz names the device id (64 hex) and the request id",
                bool(re.fullmatch(r"[0-9a-f]{64}", device_id)) and bool(request_id), json.dumps(dev))
        R.check("/readyz reason says pairing and gives the approve command",
                "pairing" in body.get("reason", "") and f"openclaw devices approve {request_id}" in body.get("reason", ""),
                body.get("reason", ""))
        key = state / "device-key.pem"
        R.check("the key was generated in CLAWBRIDGE_STATE_DIR, mode 0600",
                key.exists() and (key.stat().st_mode & 0o777) == 0o600,
                oct(key.stat().st_mode & 0o777) if key.exists() else "missing")
        R.check("metric clawbridge_gateway_pairing{state=\"pending\"} 1", pairing_metric(b.metrics(c)) == "pending")
        lst = devices_list()
        mine = [p for p in lst.get("pending", []) if p.get("requestId") == request_id]
        R.check("the gateway lists the same pending request, for this device, from the namespace address",
                len(mine) == 1 and mine[0].get("deviceId") == device_id and mine[0].get("remoteIp") == NS_ADDR,
                json.dumps(mine)[:300])
        logged = [json.loads(l) for l in b.logs().splitlines() if "approve" in l and l.startswith("{")]
        R.check("the log prints the exact approve command",
                any(f"openclaw devices approve {request_id}" in json.dumps(e) for e in logged),
                f"{len(logged)} lines")
        r = chat(c, b.base)
        R.check("a chat request meanwhile gets 503 with the usual body",
                r.status_code == 503 and (r.json().get("error") or {}).get("message") == "OpenClaw gateway unavailable",
                f"{r.status_code} {r.text[:200]}")
        time.sleep(5)  # a few retries
        _, _, again = b.wait_readyz(c, lambda s, v: True, 5)
        R.check("retries reuse the same request id", (again.get("device") or {}).get("request_id") == request_id,
                json.dumps(again.get("device")))

        devices("approve", request_id)
        t_approved = time.monotonic()
        t, status, body = b.wait_readyz(c, lambda s, v: s == 200, 20)
        R.check("approved -> ready without a restart", status == 200, f"{status} {json.dumps(body)[:300]}")
        print(f"INFO pairing: ready {time.monotonic() - t_approved:.1f}s after the approve command returned", flush=True)
        gw = body.get("gateway") or {}
        R.check("/readyz shows the negotiated protocol and server version",
                gw.get("protocol") == 4 and gw.get("server_version") == "2026.9.6", json.dumps(gw))
        R.check("/readyz pairing is paired", (body.get("device") or {}).get("pairing") == "paired",
                json.dumps(body.get("device")))
        m = b.metrics(c)
        R.check("metrics: pairing paired and one gateway_info series",
                pairing_metric(m) == "paired"
                and re.findall(r"^clawbridge_gateway_info\{.*$", m, re.M)
                == ['clawbridge_gateway_info{protocol="4",server_version="2026.9.6"} 1'],
                str(re.findall(r"^clawbridge_gateway_(?:info|pairing).*$", m, re.M)))
        tok = state / "device-token.json"
        R.check("the device token is stored, mode 0600",
                tok.exists() and (tok.stat().st_mode & 0o777) == 0o600)
        R.check("no secret in the log", TOKEN not in b.logs()
                and json.loads(tok.read_text())["token"] not in b.logs() and "PRIVATE KEY" not in b.logs())
        r = chat(c, b.base)
        R.check("a chat turn through the paired clawbridge", r.status_code == 200
                and r.json()["choices"][0]["message"]["content"] != "", f"{r.status_code} {r.text[:200]}")
        b.stop()
        R.check("clawbridge exited cleanly", b.proc.returncode == 0, str(b.proc.returncode))

        b = Bridge(state, "remote-2")
        t, status, body = b.wait_readyz(c, lambda s, v: s == 200 or pending(v), 20)
        R.check("restart with the same state: ready with no new approval", status == 200,
                f"{status} {json.dumps(body)[:300]}")
        left = [p for p in devices_list().get("pending", []) if p.get("deviceId") == device_id]
        R.check("no new pairing request after the restart", left == [], json.dumps(left)[:200])

        # The gateway rotates the device token: it closes the device's links; the
        # reconnect gets the new token, which replaces the stored one.
        before = json.loads(tok.read_text())["token"]
        devices("rotate", "--device", device_id, "--role", "operator")
        t0 = time.monotonic()
        new = before
        while time.monotonic() - t0 < 20 and new == before:
            time.sleep(0.2)
            new = json.loads(tok.read_text())["token"] if tok.exists() else before
        t, status, body = b.wait_readyz(c, lambda s, v: s == 200, 20)
        R.check("token rotated by the gateway: the new one is stored, ready again", new != before and status == 200,
                f"changed={new != before} {status} {json.dumps(body.get('device'))}")
        R.check("no secret in the log after the rotation", new not in b.logs() and before not in b.logs())

        devices("revoke", "--device", device_id, "--role", "operator")
        t, status, body = b.wait_readyz(c, lambda s, v: pending(v), 20)
        R.check("revoked -> not ready again, pairing pending", status == 503,
                f"{status} {json.dumps(body)[:300]}")
        R.check("the live link was closed by the gateway (4001 device removed)", "4001 device removed" in b.logs())
        r = chat(c, b.base)
        R.check("a chat request after the revocation gets 503", r.status_code == 503, str(r.status_code))
    finally:
        b.stop()


# ---------------------------------------------------------------- legacy
def legacy(c: httpx.Client, version: str, protocol: int) -> None:
    admin = os.environ.get("E2E_ADMIN_URL", f"http://127.0.0.1:{ADMIN_PORT}")
    bridge = os.environ.get("E2E_BRIDGE_URL", f"http://127.0.0.1:{BRIDGE_PORT}")
    r = c.get(admin + "/readyz", timeout=5)
    body = r.json()
    R.check(f"{version} on loopback: ready", r.status_code == 200, json.dumps(body)[:300])
    gw = body.get("gateway") or {}
    R.check("/readyz shows the legacy protocol and version",
            gw.get("protocol") == protocol and gw.get("server_version") == version, json.dumps(gw))
    R.check("the gateway paired the device silently and issued a token",
            (body.get("device") or {}).get("pairing") == "paired", json.dumps(body.get("device")))
    r = chat(c, bridge)
    R.check(f"a chat turn on {version}", r.status_code == 200 and r.json()["choices"][0]["message"]["content"] != "",
            f"{r.status_code} {r.text[:200]}")


def main() -> int:
    global R
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["remote", "legacy"], required=True)
    ap.add_argument("--state", type=Path, help="state dir for the remote mode (emptied first)")
    ap.add_argument("--version", default="2026.3.31")
    ap.add_argument("--protocol", type=int, default=3)
    a = ap.parse_args()
    R = Reporter(f"pairing-{a.mode}")
    with httpx.Client() as c:
        if a.mode == "remote":
            if not (NETNS and BIN and a.state):
                print("pairing: E2E_NETNS, E2E_BIN and --state are required", file=sys.stderr)
                return 2
            subprocess.run(["rm", "-rf", str(a.state)], check=True)
            remote(c, a.state)
        else:
            legacy(c, a.version, a.protocol)
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
