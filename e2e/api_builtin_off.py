#!/usr/bin/env python3
"""Phase-2 checks for /v1/models and /v1/responses (gateway started with
OCREF_BUILTIN_CHAT=0 and without OCREF_BUILTIN_RESPONSES: both built-in
OpenAI endpoints off, so the gateway serves neither models nor responses).

--mode builtin-off : the gateway's own routes are really off (direct answer 404
                     `Not Found`, no upstream LLM call), so whatever clawbridge
                     (CLAWBRIDGE_CHAT_COMPLETIONS=on CLAWBRIDGE_RESPONSES=on)
                     serves there comes from clawbridge and the native protocol.
--mode inherit     : clawbridge with both switches `inherit` and both gateway keys
                     false passes the routes through: the answer is the gateway's
                     own (status, body, headers except Date), and no turn runs.
"""
from __future__ import annotations

import argparse
import sys
import time

import httpx

from common import BRIDGE_URL, GATEWAY_URL, TOKEN, FakeLog, Reporter

HDR = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
REQUESTS = [
    ("GET /v1/models", "GET", "/v1/models", None),
    ("GET /v1/models/openclaw%2Fmain", "GET", "/v1/models/openclaw%2Fmain", None),
    ("POST /v1/responses", "POST", "/v1/responses", {"model": "openclaw", "input": "hi"}),
    ("POST /v1/responses (stream)", "POST", "/v1/responses", {"model": "openclaw", "stream": True, "input": "hi"}),
    ("GET /v1/responses", "GET", "/v1/responses", None),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["builtin-off", "inherit"], required=True)
    args = ap.parse_args()
    R = Reporter(f"api-{args.mode}")
    c = httpx.Client(timeout=60)
    log = FakeLog()
    for label, method, path, body in REQUESTS:
        log.mark()
        d = c.request(method, GATEWAY_URL + path, json=body, headers=HDR)
        time.sleep(0.1)
        R.check(f"{label}: direct built-in route is off (404 Not Found)",
                d.status_code == 404 and d.content == b"Not Found", f"status {d.status_code} {d.content[:100]!r}")
        R.check(f"{label}: direct call ran no turn", not log.new_entries())
        if args.mode == "inherit":
            log.mark()
            b = c.request(method, BRIDGE_URL + path, json=body, headers=HDR)
            time.sleep(0.1)
            R.check(f"{label}: clawbridge passes through: same status", b.status_code == d.status_code,
                    f"direct {d.status_code} vs clawbridge {b.status_code} {b.content[:120]!r}")
            R.check(f"{label}: same body", b.content == d.content, f"{d.content[:80]!r} vs {b.content[:80]!r}")
            hd = sorted((k, v) for k, v in d.headers.items() if k != "date")
            hb = sorted((k, v) for k, v in b.headers.items() if k != "date")
            R.check(f"{label}: same headers (except Date)", hd == hb, f"{sorted(set(hd) ^ set(hb))}")
            R.check(f"{label}: no agent turn ran", not log.new_entries())
    c.close()
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
