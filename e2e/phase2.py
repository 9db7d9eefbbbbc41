#!/usr/bin/env python3
"""Phase-2 checks (gateway started with OCREF_BUILTIN_CHAT=0).

--mode builtin-off : the gateway's own POST /v1/chat/completions is really off
                     (direct answer 404, no upstream LLM call), so whatever
                     clawbridge (CLAWBRIDGE_CHAT_COMPLETIONS=on) serves comes
                     from the native WS protocol alone.
--mode inherit     : clawbridge with CLAWBRIDGE_CHAT_COMPLETIONS=inherit and the
                     gateway key false passes the route through: the answer is
                     the gateway's own (status, body, headers except Date), and
                     no agent turn runs.
"""
from __future__ import annotations

import argparse
import sys
import time

import httpx

from common import BRIDGE_URL, GATEWAY_URL, TOKEN, FakeLog, Reporter

BODIES = {
    "non-stream": {"model": "openclaw", "messages": [{"role": "user", "content": "hi"}]},
    "stream": {"model": "openclaw", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
}
HDR = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["builtin-off", "inherit"], required=True)
    args = ap.parse_args()
    R = Reporter(f"phase2-{args.mode}")
    c = httpx.Client(timeout=60)
    log = FakeLog()
    for label, body in BODIES.items():
        log.mark()
        d = c.post(GATEWAY_URL + "/v1/chat/completions", json=body, headers=HDR)
        time.sleep(0.1)
        R.check(f"{label}: direct built-in endpoint is off (404)", d.status_code == 404,
                f"status {d.status_code} {d.text[:100]!r}")
        R.check(f"{label}: direct call ran no turn", not log.new_entries())
        if args.mode == "inherit":
            log.mark()
            b = c.post(BRIDGE_URL + "/v1/chat/completions", json=body, headers=HDR)
            time.sleep(0.1)
            R.check(f"{label}: clawbridge passes through: same status", b.status_code == d.status_code,
                    f"direct {d.status_code} vs clawbridge {b.status_code} {b.text[:120]!r}")
            R.check(f"{label}: same body", b.content == d.content, f"{d.content[:80]!r} vs {b.content[:80]!r}")
            hd = sorted((k, v) for k, v in d.headers.items() if k != "date")
            hb = sorted((k, v) for k, v in b.headers.items() if k != "date")
            R.check(f"{label}: same headers (except Date)", hd == hb, f"{sorted(set(hd) ^ set(hb))}")
            R.check(f"{label}: no agent turn ran", not log.new_entries())
    # GET goes through unchanged too
    if args.mode == "inherit":
        d = c.get(GATEWAY_URL + "/v1/chat/completions", headers=HDR)
        b = c.get(BRIDGE_URL + "/v1/chat/completions", headers=HDR)
        R.check("GET: same status and body as direct", (d.status_code, d.content) == (b.status_code, b.content),
                f"{d.status_code} {d.content[:60]!r} vs {b.status_code} {b.content[:60]!r}")
    c.close()
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
