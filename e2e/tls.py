"""The TLS phase: the real gateway serves HTTPS/WSS only (gateway.tls, a
certificate of a test CA made by run.sh), clawbridge reaches it with
CLAWBRIDGE_UPSTREAM=https://127.0.0.1:<port>, the test CA as its bundle and
the server name overridden to gateway.test (the certificate names
gateway.test and localhost, not the IP).

Checks: the gateway refuses plaintext (so whatever works went over TLS);
clawbridge is ready (its shared link is wss:// with operator scopes); a chat
turn, stream and not; a passthrough GET identical to the direct HTTPS one;
a WebSocket upgrade through clawbridge (connect, scopes kept, an agent turn).
Then a second clawbridge with a wrong server name and one without the test
CA (the system's roots): not ready with the TLS reason, passthrough 502.

Env (run.sh): E2E_BRIDGE_URL, E2E_ADMIN_URL, E2E_TLS_GATEWAY_URL
(https://localhost:<port>), E2E_TLS_CA, E2E_TLS_UPSTREAM (https://127.0.0.1:<port>),
E2E_CLAWBRIDGE_BIN, E2E_GATEWAY_CONFIG.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import httpx

from common import BRIDGE_URL, TOKEN, GatewayWS, Reporter, fake_config, parse_sse, sse_content, ws_url

R = Reporter("tls")
ADMIN_URL = os.environ["E2E_ADMIN_URL"].rstrip("/")
GATEWAY = os.environ["E2E_TLS_GATEWAY_URL"].rstrip("/")
CA = os.environ["E2E_TLS_CA"]
UPSTREAM = os.environ["E2E_TLS_UPSTREAM"]
BIN = os.environ["E2E_CLAWBRIDGE_BIN"]
GATEWAY_CONFIG = os.environ["E2E_GATEWAY_CONFIG"]


def plaintext_refused() -> None:
    port = int(GATEWAY.rsplit(":", 1)[1])
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        R.check("gateway refuses plaintext HTTP", False, f"got HTTP {r.status_code}")
    except httpx.HTTPError as e:
        R.check("gateway refuses plaintext HTTP", True, type(e).__name__)


def http_part(client: httpx.Client, reply: str) -> None:
    r = client.get(ADMIN_URL + "/readyz")
    R.check("clawbridge ready over wss://", r.status_code == 200 and r.json().get("reason") == "gateway connected", r.text[:200])
    body = {"model": "openclaw", "messages": [{"role": "user", "content": "tls " + uuid.uuid4().hex[:6]}]}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = client.post(BRIDGE_URL + "/v1/chat/completions", json=body, headers=auth, timeout=90)
    content = r.json()["choices"][0]["message"]["content"] if r.status_code == 200 else None
    R.check("chat non-stream over TLS", r.status_code == 200 and content == reply, f"HTTP {r.status_code} {content!r}")
    r = client.post(BRIDGE_URL + "/v1/chat/completions", json={**body, "stream": True}, headers=auth, timeout=90)
    events, _ = parse_sse(r.content)
    R.check("chat stream over TLS", r.status_code == 200 and sse_content(events) == reply and events[-1] == "[DONE]",
            f"HTTP {r.status_code} {sse_content(events)!r}")
    with httpx.Client(verify=CA, timeout=30) as direct:
        d = direct.get(GATEWAY + "/healthz")
    b = client.get(BRIDGE_URL + "/healthz")
    R.check("passthrough GET /healthz identical to direct HTTPS", (d.status_code, d.content) == (b.status_code, b.content),
            f"direct {d.status_code} {d.content[:60]!r} vs clawbridge {b.status_code} {b.content[:60]!r}")


async def ws_part(reply: str) -> None:
    g = GatewayWS(ws_url(BRIDGE_URL))
    try:
        hello = await g.connect()
        scopes = ((hello.get("payload") or {}).get("auth") or {}).get("scopes")
        R.check("WS upgrade via clawbridge: hello-ok, scopes kept",
                bool(hello.get("ok")) and scopes == ["operator.read", "operator.write"], f"scopes {scopes}")
        idem, aid = "e2e-tls-" + uuid.uuid4().hex, "agent-" + uuid.uuid4().hex[:8]
        start = len(g.frames)
        await g.send({"type": "req", "id": aid, "method": "agent",
                      "params": {"message": "Say hello", "agentId": "main", "idempotencyKey": idem}})
        final = await g.wait_for(lambda f: f.get("type") == "res" and f.get("id") == aid
                                 and (f.get("payload") or {}).get("status") != "accepted", 60, start)
        texts = [p.get("text") for p in (((final.get("payload") or {}).get("result") or {}).get("payloads") or [])]
        R.check("WS upgrade via clawbridge: agent turn", final.get("ok") is True and texts == [reply], f"texts {texts}")
    except Exception as e:  # noqa: BLE001
        R.check("WS upgrade via clawbridge", False, f"{type(e).__name__}: {e}")
    finally:
        await g.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused(label: str, env: dict, needle: str) -> None:
    """A second clawbridge that must not trust the gateway: not ready, with the reason; passthrough 502."""
    port, admin = free_port(), free_port()
    full = {"PATH": os.environ.get("PATH", ""), "HOME": tempfile.gettempdir(),
            "CLAWBRIDGE_LISTEN": f"127.0.0.1:{port}", "CLAWBRIDGE_ADMIN_LISTEN": f"127.0.0.1:{admin}",
            "CLAWBRIDGE_UPSTREAM": UPSTREAM, "OPENCLAW_CONFIG_PATH": GATEWAY_CONFIG,
            "CLAWBRIDGE_CHAT_COMPLETIONS": "on", "CLAWBRIDGE_GRACE_PERIOD_SECS": "1", **env}
    p = subprocess.Popen([BIN], env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        reason, status = "", 0
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=2)
                status, reason = r.status_code, r.json().get("reason", "")
                if needle in reason:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        R.check(f"{label}: not ready, with the TLS reason", status == 503 and needle in reason, f"{status} {reason[:200]}")
        try:
            code = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code
        except httpx.HTTPError as e:
            code = type(e).__name__
        R.check(f"{label}: passthrough 502", code == 502, f"{code}")
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main() -> int:
    client = httpx.Client(timeout=30)
    reply = "".join(fake_config(client)["reply"])
    plaintext_refused()
    http_part(client, reply)
    client.close()
    asyncio.run(ws_part(reply))
    refused("wrong server name", {"CLAWBRIDGE_UPSTREAM_CA_FILE": CA, "CLAWBRIDGE_UPSTREAM_SERVER_NAME": "wrong.test"},
            "not valid for name")
    refused("system roots (test CA not trusted)", {"CLAWBRIDGE_UPSTREAM_SERVER_NAME": "gateway.test"}, "UnknownIssuer")
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
