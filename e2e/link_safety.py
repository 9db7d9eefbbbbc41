#!/usr/bin/env python3
"""One hostile request cannot break clawbridge's shared link to the real gateway.

A live stream runs through clawbridge (the fake LLM sends 20 deltas, 100 ms
apart). Meanwhile a request whose body is 9 MiB of invalid UTF-8 inside the
user message goes through clawbridge: under the 20 MiB body limit, but 27 MiB
once each byte becomes U+FFFD in the gateway's `agent` frame, over the 25 MiB
`maxPayload` the gateway announced. Sent, the gateway would close the shared
link with 1009 and the live stream would fail. Expected: a 413 naming both
sizes, the live stream whole and clean, and no reconnect of clawbridge's link
(`clawbridge_gateway_reconnects_total` unchanged, from the admin `/metrics`).

Standard library only. Env as in common.py, plus E2E_ADMIN_URL (clawbridge's
admin listener, default http://127.0.0.1:18801).
"""
from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request

from common import BRIDGE_URL, FAKE_URL, TOKEN, Reporter

R = Reporter("link_safety")
ADMIN_URL = os.environ.get("E2E_ADMIN_URL", "http://127.0.0.1:18801").rstrip("/")
PIECES = [f"w{i:02d} " for i in range(20)]


def fake_config(**kw) -> dict:
    req = urllib.request.Request(FAKE_URL + "/_fake/config", data=json.dumps(kw).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def reconnects() -> int:
    with urllib.request.urlopen(ADMIN_URL + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("clawbridge_gateway_reconnects_total "):
                return int(float(line.split()[1]))
    return -1


def post(body: bytes, timeout: float = 120) -> tuple[int, bytes]:
    u = urllib.parse.urlsplit(BRIDGE_URL)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    c.request("POST", "/v1/chat/completions", body=body,
              headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def live_stream(out: dict) -> None:
    body = json.dumps({"model": "openclaw", "stream": True, "user": "link-safety-live",
                       "messages": [{"role": "user", "content": "live"}]}).encode()
    try:
        out["status"], out["raw"] = post(body)
    except Exception as e:  # reported by the checks below
        out["error"] = repr(e)


def sse_content(raw: bytes) -> tuple[str, list[str]]:
    content, tail = [], []
    for block in raw.decode("utf-8", "replace").split("\n\n"):
        if not block.startswith("data: "):
            continue
        data = block[len("data: "):]
        tail.append(data)
        if data == "[DONE]":
            continue
        ev = json.loads(data)
        for ch in ev.get("choices") or []:
            content.append((ch.get("delta") or {}).get("content") or "")
    return "".join(content), tail[-2:]


def main() -> int:
    before = reconnects()
    R.check("admin metrics readable", before >= 0, f"reconnects {before}")
    fake_config(reply=PIECES, delay_ms=100, fail_status=0)
    try:
        live: dict = {}
        t = threading.Thread(target=live_stream, args=(live,), daemon=True)
        t.start()
        hostile = (b'{"model":"openclaw","messages":[{"role":"user","content":"'
                   + b"\xff" * (9 * 1024 * 1024) + b'"}]}')
        status, data = post(hostile)
        msg = ""
        try:
            msg = json.loads(data)["error"]["message"]
        except Exception:
            pass
        R.check("hostile request: 413", status == 413, f"{status} {data[:200]!r}")
        R.check("hostile request: message names both sizes",
                msg.startswith("Request too large for the gateway: it is ")
                and "over the gateway's 26214400-byte frame limit" in msg, msg)
        t.join(timeout=60)
        R.check("live stream ended", not t.is_alive() and "error" not in live, live.get("error", ""))
        content, tail = sse_content(live.get("raw", b""))
        R.check("live stream: 200", live.get("status") == 200, str(live.get("status")))
        # The gateway trims the reply's trailing whitespace.
        R.check("live stream: every delta", content == "".join(PIECES).rstrip(), repr(content[-60:]))
        R.check("live stream: clean end", tail[-1:] == ["[DONE]"] and '"error"' not in tail[0], repr(tail))
        time.sleep(2)  # a dropped link is re-dialled after a backoff; give it time to show
        after = reconnects()
        R.check("the link was never replaced", after == before, f"reconnects {before} -> {after}")
    finally:
        fake_config(reply=["Hello", ", world", "!"], delay_ms=0, fail_status=0)
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
