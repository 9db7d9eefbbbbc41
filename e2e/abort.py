#!/usr/bin/env python3
"""Client disconnect through clawbridge aborts the gateway run.

The fake LLM streams a long reply slowly (delay_ms 300, 40 deltas = ~12 s).
A streaming client goes through clawbridge and disconnects right after the
first content chunk. A passive native-WS listener connected DIRECTLY to the
gateway must then see, within a few seconds, the run end as aborted
(agent lifecycle phase "error"/aborted:true, or chat state "aborted"), with
only part of the reply produced, and no further upstream LLM call (no retry).
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

import httpx

from common import BRIDGE_URL, GATEWAY_URL, TOKEN, FakeLog, GatewayWS, Reporter, fake_config, ws_url

R = Reporter("abort")
PIECES = [f"w{i:02d} " for i in range(40)]
ABORT_DEADLINE_S = 6.0


def stream_until_first_content(user: str) -> dict:
    """Runs in a thread: POST stream through clawbridge, read to the first
    content chunk, then hang up. Returns what was seen."""
    out = {"status": None, "first_chunk": None, "chunk_id": None, "t_disconnect": None, "error": None}
    client = httpx.Client(timeout=httpx.Timeout(60, connect=5))
    try:
        body = {"model": "openclaw", "stream": True, "user": user,
                "messages": [{"role": "user", "content": "tell me a long story"}]}
        with client.stream("POST", BRIDGE_URL + "/v1/chat/completions", json=body,
                           headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            out["status"] = r.status_code
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                ev = json.loads(line[6:])
                out["chunk_id"] = out["chunk_id"] or ev.get("id")
                d = ((ev.get("choices") or [{}])[0].get("delta") or {})
                if d.get("content"):
                    out["first_chunk"] = d["content"]
                    break
            out["t_disconnect"] = time.monotonic()
            # leaving the with-block closes the half-read response: the connection is dropped
    except Exception as e:  # noqa: BLE001
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        client.close()
        if out["t_disconnect"] is None:
            out["t_disconnect"] = time.monotonic()
    return out


async def run() -> None:
    fc = httpx.Client(timeout=10)
    before = fake_config(fc)
    fake_config(fc, reply=PIECES, delay_ms=300, fail_status=0)
    g = GatewayWS(ws_url(GATEWAY_URL))
    try:
        hello = await g.connect()
        if not R.check("direct WS listener connects with read+write", bool(hello.get("ok")) and
                       (hello.get("payload") or {}).get("auth", {}).get("scopes") == ["operator.read", "operator.write"],
                       json.dumps(hello.get("error") or (hello.get("payload") or {}).get("auth"))[:200]):
            return
        user = f"e2e-abort-{uuid.uuid4().hex[:8]}"
        skey = f"agent:main:openai-user:{user}"
        start = len(g.frames)
        log = FakeLog()
        loop = asyncio.get_running_loop()
        seen = await loop.run_in_executor(None, stream_until_first_content, user)
        R.check("stream through clawbridge: 200 and a first content chunk",
                seen["status"] == 200 and (seen["first_chunk"] or "").startswith("w00"),
                f"status {seen['status']}, first chunk {seen['first_chunk']!r}, error {seen['error']}")

        def mine(f):
            return (f.get("type") == "event" and f.get("event") in ("agent", "chat")
                    and (f.get("payload") or {}).get("sessionKey") == skey)

        def is_abort(f):
            if not mine(f):
                return False
            p = f["payload"]
            if f["event"] == "agent" and p.get("stream") == "lifecycle":
                d = p.get("data") or {}
                return d.get("aborted") is True or d.get("phase") == "error"
            return f["event"] == "chat" and p.get("state") == "aborted"

        def is_normal_end(f):
            if not mine(f):
                return False
            p = f["payload"]
            d = p.get("data") or {}
            return (f["event"] == "agent" and p.get("stream") == "lifecycle" and d.get("phase") == "end"
                    and not d.get("aborted")) or (f["event"] == "chat" and p.get("state") == "final")

        try:
            ev = await g.wait_for(lambda f: is_abort(f) or is_normal_end(f), ABORT_DEADLINE_S + 4, start)
            dt = ev["_t"] - seen["t_disconnect"]
            ok = is_abort(ev) and dt <= ABORT_DEADLINE_S
            R.check(f"gateway run aborted within {ABORT_DEADLINE_S:.0f}s of the disconnect", ok,
                    f"{ev['event']} {json.dumps({k: v for k, v in ev['payload'].items() if k in ('stream','data','state','stopReason')})[:300]} after {dt:.2f}s")
        except Exception as e:  # noqa: BLE001
            evs = [(f.get("event"), (f.get("payload") or {}).get("stream"), (f.get("payload") or {}).get("state"))
                   for f in g.frames[start:] if mine(f)]
            R.check(f"gateway run aborted within {ABORT_DEADLINE_S:.0f}s of the disconnect", False,
                    f"{type(e).__name__}; events for {skey}: {evs[:12]}")
            return
        # both signals, and the reply was cut short
        await asyncio.sleep(1.0)
        evs = [f for f in g.frames[start:] if mine(f)]
        life = [f["payload"]["data"] for f in evs if f["event"] == "agent" and f["payload"].get("stream") == "lifecycle"
                and (f["payload"].get("data") or {}).get("phase") in ("error", "end")]
        R.check("lifecycle ends with aborted:true", any(d.get("aborted") is True for d in life),
                json.dumps(life)[:300])
        chat_ab = [f["payload"] for f in evs if f["event"] == "chat" and f["payload"].get("state") == "aborted"]
        if chat_ab:
            txt = "".join(c.get("text", "") for c in (chat_ab[-1].get("message") or {}).get("content") or [])
            R.check("chat state 'aborted' with only part of the reply", len(txt) < len("".join(PIECES)),
                    f"{len(txt)} of {len(''.join(PIECES))} chars")
        else:
            R.check("chat state 'aborted' seen", False, "no chat aborted event")
        R.check("no chat 'final' for the aborted run", not any(f["event"] == "chat" and f["payload"].get("state") == "final"
                                                              for f in evs))
        run_ids = {f["payload"].get("runId") for f in evs}
        if seen["chunk_id"] in run_ids:
            print(f"INFO abort: gateway runId equals the SSE chunk id ({seen['chunk_id']})")
        else:
            print(f"INFO abort: gateway runId {sorted(map(str, run_ids))} differs from the SSE chunk id {seen['chunk_id']}")
        await asyncio.sleep(2.0)
        ups = log.new_entries()
        R.check("exactly one upstream LLM call (no retry after the abort)", len(ups) == 1, f"{len(ups)} calls")
    finally:
        await g.close()
        fake_config(fc, reply=before["reply"], delay_ms=before["delay_ms"], fail_status=before["fail_status"])
        fc.close()


def main() -> int:
    asyncio.run(run())
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
