#!/usr/bin/env python3
"""Everything that is not POST /v1/chat/completions passes through unchanged.

HTTP: /healthz, /health, /readyz, /startupz, the Control UI (/ and an unknown
path), /favicon.ico and /v1/models come back the same through clawbridge as
direct: status, body bytes, and all headers except Date. /readyz and /startupz
carry volatile fields (uptimeMs, eventLoop): their JSON is compared with those
normalised, and a byte difference is reported as INFO.

WS: a native client connecting through clawbridge's port completes `connect`
with scopes read+write kept, and runs an `agent` turn (accepted -> assistant
events -> final res ok with the fake LLM's reply). A wrong token fails the
same way as direct.
"""
from __future__ import annotations

import asyncio
import json
import sys
import uuid

import httpx

from common import BRIDGE_URL, GATEWAY_URL, TOKEN, GatewayWS, Reporter, fake_config, ws_url

R = Reporter("passthrough")
VOLATILE = {"uptimeMs", "eventLoop", "ts", "durationMs"}
PATHS = [
    ("/healthz", None), ("/health", None), ("/readyz", None), ("/startupz", None),
    ("/", None), ("/nonexistent-e2e", None), ("/favicon.ico", None),
    ("/v1/models", f"Bearer {TOKEN}"), ("/v1/models", None), ("/v1/models/openclaw%2Fmain", f"Bearer {TOKEN}"),
]


def strip_volatile(o):
    if isinstance(o, dict):
        return {k: ("<v>" if k in VOLATILE else strip_volatile(v)) for k, v in o.items()}
    if isinstance(o, list):
        return [strip_volatile(x) for x in o]
    return o


def headers_of(r):
    return sorted((k.lower(), v) for k, v in r.headers.multi_items() if k.lower() != "date")


def http_part(client):
    for path, auth in PATHS:
        h = {"Authorization": auth} if auth else {}
        d = client.get(GATEWAY_URL + path, headers=h)
        b = client.get(BRIDGE_URL + path, headers=h)
        name = f"GET {path}" + (" (auth)" if auth else "")
        same_status = d.status_code == b.status_code
        if path in ("/readyz", "/startupz"):
            try:
                jd, jb = strip_volatile(d.json()), strip_volatile(b.json())
                body_ok = jd == jb
                why = "" if body_ok else f"{json.dumps(jd)[:200]} vs {json.dumps(jb)[:200]}"
            except Exception as e:  # noqa: BLE001
                body_ok, why = False, f"not JSON: {e}"
            if body_ok and d.content != b.content:
                print(f"INFO passthrough: {name}: bytes differ only in volatile fields (uptimeMs/eventLoop)")
            hd = [x for x in headers_of(d) if x[0] != "content-length"]
            hb = [x for x in headers_of(b) if x[0] != "content-length"]
        else:
            body_ok = d.content == b.content
            why = "" if body_ok else f"{len(d.content)} vs {len(b.content)} bytes: {d.content[:80]!r} vs {b.content[:80]!r}"
            hd, hb = headers_of(d), headers_of(b)
        R.check(f"{name}: status {d.status_code}", same_status, f"direct {d.status_code} vs clawbridge {b.status_code}")
        R.check(f"{name}: body identical", body_ok, why or f"{len(d.content)} bytes")
        hdiff = sorted(set(hd) ^ set(hb))
        R.check(f"{name}: headers identical (except Date)", not hdiff,
                "; ".join(f"{'direct' if x in hd else 'clawbridge'} {x[0]}: {x[1][:80]}" for x in hdiff))


async def ws_part(reply: str):
    # handshake through clawbridge keeps the requested scopes
    g = GatewayWS(ws_url(BRIDGE_URL))
    try:
        hello = await g.connect()
    except Exception as e:  # noqa: BLE001
        R.check("WS via clawbridge: connect", False, f"{type(e).__name__}: {e}")
        return
    auth = (hello.get("payload") or {}).get("auth") or {}
    R.check("WS via clawbridge: hello-ok", bool(hello.get("ok")) and (hello.get("payload") or {}).get("type") == "hello-ok",
            json.dumps(hello.get("error"))[:200] if not hello.get("ok") else "")
    R.check("WS via clawbridge: scopes read+write kept", auth.get("scopes") == ["operator.read", "operator.write"],
            f"scopes {auth.get('scopes')}")
    idem = "e2e-pt-" + uuid.uuid4().hex
    aid = "agent-" + uuid.uuid4().hex[:8]
    start = len(g.frames)
    await g.send({"type": "req", "id": aid, "method": "agent",
                  "params": {"message": "Say hello", "agentId": "main", "idempotencyKey": idem}})
    try:
        acc = await g.wait_for(lambda f: f.get("type") == "res" and f.get("id") == aid, 60, start)
        R.check("WS via clawbridge: agent accepted", acc.get("ok") is True and (acc.get("payload") or {}).get("status") == "accepted",
                json.dumps(acc)[:200])
        final = await g.wait_for(lambda f: f.get("type") == "res" and f.get("id") == aid
                                 and (f.get("payload") or {}).get("status") != "accepted", 60, start)
        evs = [f for f in g.frames[start:] if f.get("type") == "event" and f.get("event") == "agent"
               and (f.get("payload") or {}).get("runId") == idem]
        streams = [(f["payload"].get("stream"), (f["payload"].get("data") or {}).get("phase")) for f in evs]
        assistant = [f["payload"]["data"] for f in evs if f["payload"].get("stream") == "assistant"]
        R.check("WS via clawbridge: assistant events for the run", bool(assistant) and assistant[-1].get("text") == reply,
                f"{len(assistant)} events, last text {assistant[-1].get('text') if assistant else None!r}")
        R.check("WS via clawbridge: lifecycle start..end", ("lifecycle", "start") in streams and ("lifecycle", "end") in streams,
                f"{streams[:8]}")
        texts = [p.get("text") for p in (((final.get("payload") or {}).get("result") or {}).get("payloads") or [])]
        R.check("WS via clawbridge: final res ok with the reply",
                final.get("ok") is True and (final.get("payload") or {}).get("status") == "ok" and texts == [reply],
                f"ok={final.get('ok')} status={(final.get('payload') or {}).get('status')} texts={texts}")
    except Exception as e:  # noqa: BLE001
        R.check("WS via clawbridge: agent turn", False, f"{type(e).__name__}: {e}")
    finally:
        await g.close()

    # wrong token: same failure through clawbridge as direct
    async def bad(url):
        w = GatewayWS(url, token="wrong-token")
        try:
            h = await w.connect()
            await asyncio.sleep(0.5)
            return (h.get("ok"), (h.get("error") or {}).get("code"), (h.get("error") or {}).get("message"), w.closed)
        except Exception as e:  # noqa: BLE001
            return ("exception", type(e).__name__, str(e)[:120], w.closed)
        finally:
            await w.close()
    d, b = await bad(ws_url(GATEWAY_URL)), await bad(ws_url(BRIDGE_URL))
    R.check("WS via clawbridge: wrong token fails like direct", d == b and d[0] is False, f"direct {d} vs clawbridge {b}")


def main() -> int:
    client = httpx.Client(timeout=30)
    reply = "".join(fake_config(client)["reply"])
    http_part(client)
    client.close()
    asyncio.run(ws_part(reply))
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
