#!/usr/bin/env python3
"""Rotating the gateway token without restarting clawbridge (issue 15 §3).

The token in the gateway's own config file (the kit's rendered openclaw.json,
which clawbridge reads too) is rewritten in place while a stream runs through
clawbridge. The gateway (2026.9.6) applies it in ~1 s and closes links that
used the old token (4001 "gateway auth changed"); clawbridge re-reads the file
and re-handshakes. Checked: the new bearer gets 200 through clawbridge within
5 s of the write, the old one 401, /readyz is back to 200; the stream in
flight ends either whole or with an error naming the 4001 (never cut short
without a word). Then the original token is written back and must work again
within 5 s, so later suites run unchanged.

Standard library only. Env as in common.py, plus E2E_ADMIN_URL and
E2E_GATEWAY_CONFIG (the gateway's openclaw.json).
"""
from __future__ import annotations

import http.client
import json
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from common import BRIDGE_URL, FAKE_URL, TOKEN, Reporter

R = Reporter("rotation")
ADMIN_URL = os.environ.get("E2E_ADMIN_URL", "http://127.0.0.1:18801").rstrip("/")
CONFIG = os.environ.get("E2E_GATEWAY_CONFIG", os.path.expanduser("~/.cache/openclaw-ref/run/state/openclaw.json"))
NEW_TOKEN = TOKEN + "-rotated"
PIECES = [f"r{i:02d} " for i in range(20)]
DEADLINE = 5.0


def fake_config(**kw) -> dict:
    req = urllib.request.Request(FAKE_URL + "/_fake/config", data=json.dumps(kw).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def post(token: str, stream: bool, timeout: float = 60, headers_at: list | None = None) -> tuple[int, bytes]:
    """One completion through clawbridge; `headers_at` gets the time the status line arrived."""
    u = urllib.parse.urlsplit(BRIDGE_URL)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    body = json.dumps({"model": "openclaw", "stream": stream, "user": "rotation",
                       "messages": [{"role": "user", "content": "rotate"}]})
    c.request("POST", "/v1/chat/completions", body=body,
              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = c.getresponse()
    if headers_at is not None:
        headers_at.append(time.monotonic())
    data = r.read()
    c.close()
    return r.status, data


def ready() -> bool:
    try:
        with urllib.request.urlopen(ADMIN_URL + "/readyz", timeout=5) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False


def reloads_ok() -> int:
    with urllib.request.urlopen(ADMIN_URL + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('clawbridge_config_reloads_total{result="ok"} '):
                return int(float(line.split()[1]))
    return 0


def write_token(token: str) -> None:
    """Rewrites gateway.auth.token in place, as an operator's edit would."""
    with open(CONFIG, encoding="utf-8") as f:
        text = f.read()
    new, n = re.subn(r'(auth:\s*\{\s*mode:\s*"token",\s*token:\s*")[^"]*(")', rf"\g<1>{token}\g<2>", text, count=1)
    if n != 1:
        raise RuntimeError(f"no gateway.auth.token in {CONFIG}")
    with open(CONFIG, "w", encoding="utf-8") as f:
        f.write(new)


def served_after(token: str, written: float, before: int) -> tuple[float | None, str]:
    """Seconds from the write until a stream with `token` gets its 200 through clawbridge
    (sent once the gateway accepted the run; the turn itself can take seconds). Waits for
    clawbridge's reload on /metrics first, so no wrong bearer is sent (loopback mismatches
    are slowed down, as in the gateway); 503 while it relinks is retried."""
    last = ""
    while time.monotonic() - written < DEADLINE:
        if reloads_ok() > before:
            break
        time.sleep(0.05)
    while time.monotonic() - written < DEADLINE:
        at: list = []
        status, data = post(token, stream=True, headers_at=at)
        _, error, _ = sse(data) if status == 200 else ("", None, None)
        if status == 200 and error is None:
            took = at[0] - written
            return (took if took <= DEADLINE else None), f"200 after {took:.2f} s"
        last = f"{status} {data[:200]!r}"
        time.sleep(0.1)
    return None, last


def live_stream(out: dict) -> None:
    try:
        out["status"], out["raw"] = post(TOKEN, stream=True, timeout=120)
    except Exception as e:  # reported below
        out["error"] = repr(e)


def sse(raw: bytes) -> tuple[str, str | None, str | None]:
    content, error, last = [], None, None
    for block in raw.decode("utf-8", "replace").split("\n\n"):
        if not block.startswith("data: "):
            continue
        last = block[len("data: "):]
        if last == "[DONE]":
            continue
        ev = json.loads(last)
        if "error" in ev:
            error = ev["error"].get("message")
        for ch in ev.get("choices") or []:
            content.append((ch.get("delta") or {}).get("content") or "")
    return "".join(content), error, last


def main() -> int:
    R.check("gateway config found", os.path.isfile(CONFIG), CONFIG)
    fake_config(reply=PIECES, delay_ms=150, fail_status=0)
    live: dict = {}
    try:
        t = threading.Thread(target=live_stream, args=(live,), daemon=True)
        t.start()
        time.sleep(1.5)  # the run is under way
        fake_config(reply=["Hello", ", world", "!"], delay_ms=0, fail_status=0)
        before = reloads_ok()
        written = time.monotonic()
        write_token(NEW_TOKEN)
        took, last = served_after(NEW_TOKEN, written, before)
        R.check("new bearer served within 5 s", took is not None, f"{took:.2f} s after the write" if took else last)
        status, _ = post(TOKEN, stream=False)
        R.check("old bearer refused", status == 401, str(status))
        R.check("ready", ready())

        t.join(timeout=60)
        content, error, last_event = sse(live.get("raw", b""))
        whole = content == "".join(PIECES).rstrip()
        R.check("stream in flight: 200 and [DONE]", live.get("status") == 200 and last_event == "[DONE]",
                f"{live.get('status')} {live.get('error', '')} last={last_event!r}")
        R.check("stream in flight: whole, or an error naming the gateway's 4001",
                whole or (error is not None and "4001" in error and "gateway auth changed" in error),
                f"whole={whole} error={error!r} got {len(content)} chars")
        print(f"NOTE rotation: stream in flight {'finished whole' if whole else 'ended with: ' + repr(error)}")
    finally:
        fake_config(reply=["Hello", ", world", "!"], delay_ms=0, fail_status=0)
        before = reloads_ok()
        written = time.monotonic()
        write_token(TOKEN)
        took, last = served_after(TOKEN, written, before)
        R.check("original token restored and served within 5 s", took is not None,
                f"{took:.2f} s after the write" if took else last)
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
