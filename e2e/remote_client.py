#!/usr/bin/env python3
"""Client steps for the remote-client suite (remote.py), run in-process from
loopback or, as a script, inside the phase's network namespace:

    ip netns exec <ns> <venv python> remote_client.py < steps.json > results.json

A step is a JSON object; a batch is a list of steps, answered by a list of
results in the same order (one process per batch: the namespace is entered
once, not per request).

  {"kind": "http", "base": "http://10.231.7.1:18800", "method": "POST",
   "target": "/v1/%2e/chat/completions", "headers": [["Authorization", "Bearer x"]], "body": "...",
   "host": "optional Host header (default: the base's host:port)"}
      -> {"status", "headers" (lower-case names, repeats joined by ", "), "body", "ms"}
      The target is written byte for byte (no client-side normalisation) on a
      fresh connection with `Connection: close`, so odd spellings reach the server as sent.
  {"kind": "ws", "url": "ws://10.231.7.1:18800/", "token": "...", "scopes": [...], "headers": {...}}
      -> {"ok", "scopes", "error", "closed", "http_status", "http_body", "ms"}
      A native `connect` as gateway-client/backend, operator, token auth, no device.
"""
from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from urllib.parse import urlsplit

from common import GatewayWS

MAX_RESPONSE = 4 << 20


def _dechunk(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        j = data.find(b"\r\n", i)
        if j < 0:
            break
        size = int(data[i:j].split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        out += data[j + 2:j + 2 + size]
        i = j + 2 + size + 2
    return bytes(out)


def http_step(step: dict, timeout: float = 60.0) -> dict:
    u = urlsplit(step["base"])
    body = step.get("body") or ""
    body_b = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    lines = [f"{step.get('method', 'GET')} {step['target']} HTTP/1.1", f"Host: {step.get('host') or u.netloc}"]
    lines += [f"{k}: {v}" for k, v in step.get("headers") or []]
    if body_b or step.get("method", "GET") == "POST":
        lines.append(f"Content-Length: {len(body_b)}")
    lines.append("Connection: close")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body_b
    t0 = time.monotonic()
    data = bytearray()
    try:
        with socket.create_connection((u.hostname, u.port), timeout=timeout) as s:
            s.sendall(raw)
            while len(data) < MAX_RESPONSE:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        if not data:
            return {"status": None, "error": f"{type(e).__name__}: {e}", "ms": (time.monotonic() - t0) * 1e3}
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    head_lines = head.decode("latin-1").split("\r\n")
    parts = head_lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    headers: dict[str, str] = {}
    for line in head_lines[1:]:
        k, _, v = line.partition(":")
        k, v = k.strip().lower(), v.strip()
        headers[k] = f"{headers[k]}, {v}" if k in headers else v
    if "chunked" in headers.get("transfer-encoding", "").lower():
        rest = _dechunk(rest)
    return {"status": status, "headers": headers, "body": rest.decode("utf-8", "replace"),
            "ms": (time.monotonic() - t0) * 1e3}


async def ws_step(step: dict) -> dict:
    from websockets.exceptions import InvalidStatus
    g = GatewayWS(step["url"], token=step["token"], scopes=step.get("scopes") or [], headers=step.get("headers"))
    t0 = time.monotonic()
    out: dict = {"ok": None, "scopes": None, "error": None, "closed": None, "http_status": None, "http_body": None}
    try:
        hello = await g.connect(timeout=20)
        out["ok"] = hello.get("ok")
        out["scopes"] = ((hello.get("payload") or {}).get("auth") or {}).get("scopes")
        out["error"] = hello.get("error")
        if not hello.get("ok"):
            try:  # the gateway closes after a refused connect: record how
                await asyncio.wait_for(g._reader, 3)
            except Exception:  # noqa: BLE001
                pass
    except InvalidStatus as e:
        out["http_status"] = e.response.status_code
        out["http_body"] = (e.response.body or b"").decode("utf-8", "replace")
    except Exception as e:  # noqa: BLE001
        out["error"] = {"exception": f"{type(e).__name__}: {e}"[:300]}
    finally:
        out["closed"] = list(g.closed) if g.closed else None
        await g.close()
    out["ms"] = (time.monotonic() - t0) * 1e3
    return out


def run_steps(steps: list[dict]) -> list[dict]:
    results = []
    for step in steps:
        if step["kind"] == "http":
            results.append(http_step(step))
        elif step["kind"] == "ws":
            results.append(asyncio.run(ws_step(step)))
        else:
            results.append({"error": f"unknown step kind {step['kind']!r}"})
    return results


if __name__ == "__main__":
    json.dump(run_steps(json.load(sys.stdin)), sys.stdout)
