#!/usr/bin/env python3
"""Session semantics through clawbridge, proven from the gateway side.

1. Two calls with the same `user` land in the same gateway session: both
   upstream prompts carry session=agent:main:openai-user:<user>, and the second
   upstream request carries the first exchange (its user text and the reply).
2. Two calls without `user` land in two different fresh sessions
   (agent:main:openai:<uuid>), and the second does not carry the first.
3. `x-openclaw-session-key: e2e-key-<rand>` routes to exactly agent:main:e2e-key-<rand>:
   a passive native-WS listener connected directly to the gateway sees the run's
   agent events with that sessionKey, sessions.list finds it, and the upstream
   prompt names it.
"""
from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid

import httpx

from common import BRIDGE_URL, GATEWAY_URL, TOKEN, FakeLog, GatewayWS, Reporter, fake_config, upstream_session_key, ws_url

R = Reporter("sessions")
HDR = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def chat(client, text, user=None, headers=None):
    body = {"model": "openclaw", "messages": [{"role": "user", "content": text}]}
    if user is not None:
        body["user"] = user
    h = dict(HDR)
    h.update(headers or {})
    r = client.post(BRIDGE_URL + "/v1/chat/completions", json=body, headers=h, timeout=90)
    return r


def all_text(entry):
    """All message texts of an upstream request except the system prompt."""
    out = []
    for m in (entry.get("body") or {}).get("messages") or []:
        if m.get("role") == "system":
            continue
        c = m.get("content")
        out.append(c if isinstance(c, str) else json.dumps(c, ensure_ascii=False))
    return "\n".join(out)


def one_turn(client, log, text, **kw):
    log.mark()
    r = chat(client, text, **kw)
    time.sleep(0.1)
    ents = log.new_entries()
    return r, ents


def main() -> int:
    rand = uuid.uuid4().hex[:8]
    client = httpx.Client()
    reply = "".join(fake_config(client)["reply"])
    log = FakeLog()

    # 1. same user -> same session, history carried
    user = f"e2e-sess-{rand}"
    r1, e1 = one_turn(client, log, f"first-{rand}", user=user)
    r2, e2 = one_turn(client, log, f"second-{rand}", user=user)
    R.check("same user: both calls 200", r1.status_code == 200 and r2.status_code == 200,
            f"{r1.status_code}/{r2.status_code}" + ("" if r1.status_code == r2.status_code == 200 else f" {r1.text[:200]} {r2.text[:200]}"))
    R.check("same user: one upstream LLM call each", len(e1) == 1 and len(e2) == 1, f"{len(e1)}/{len(e2)}")
    if e1 and e2:
        k1, k2 = upstream_session_key(e1[0]), upstream_session_key(e2[0])
        want = f"agent:main:openai-user:{user}"
        R.check("same user: session key is agent:main:openai-user:<user>", k1 == want, f"got {k1!r}, want {want!r}")
        R.check("same user: both calls in the same session", k1 == k2, f"{k1!r} vs {k2!r}")
        t2 = all_text(e2[0])
        R.check("same user: 2nd upstream prompt carries the 1st user message", f"first-{rand}" in t2,
                f"'first-{rand}' " + ("found" if f"first-{rand}" in t2 else "NOT found") + " in 2nd upstream request")
        R.check("same user: 2nd upstream prompt carries the 1st reply", reply in t2,
                f"{reply!r} not in 2nd upstream request" if reply not in t2 else f"reply {reply!r}")
        t1 = all_text(e1[0])
        R.check("same user: 1st upstream prompt has no earlier history", f"second-{rand}" not in t1 and reply not in t1)

    # 2. no user -> fresh session each time
    r3, e3 = one_turn(client, log, f"third-{rand}")
    r4, e4 = one_turn(client, log, f"fourth-{rand}")
    R.check("no user: both calls 200", r3.status_code == 200 and r4.status_code == 200)
    if e3 and e4:
        k3, k4 = upstream_session_key(e3[0]), upstream_session_key(e4[0])
        pat = re.compile(r"^agent:main:openai:[0-9a-f-]{36}$")
        R.check("no user: session keys are agent:main:openai:<uuid>", bool(k3 and pat.match(k3) and k4 and pat.match(k4)),
                f"{k3!r}, {k4!r}")
        R.check("no user: two different sessions", k3 != k4, f"{k3!r} vs {k4!r}")
        R.check("no user: 2nd upstream prompt does not carry the 1st", f"third-{rand}" not in all_text(e4[0]))
    else:
        R.check("no user: upstream calls seen", False, f"{len(e3)}/{len(e4)}")

    # 3. explicit session key, observed on the gateway's native WS
    key = f"e2e-key-{rand}"
    want_key = f"agent:main:{key}"

    async def ws_part():
        g = GatewayWS(ws_url(GATEWAY_URL))
        hello = await g.connect()
        if not hello.get("ok"):
            R.check("session key: direct WS listener connects", False, json.dumps(hello.get("error")))
            return
        start = len(g.frames)
        loop = asyncio.get_running_loop()
        log.mark()
        r = await loop.run_in_executor(None, lambda: chat(client, f"keyed-{rand}",
                                                          headers={"x-openclaw-session-key": key}))
        R.check("session key: call 200", r.status_code == 200, "" if r.status_code == 200 else f"{r.status_code} {r.text[:200]}")
        try:
            ev = await g.wait_for(lambda f: f.get("type") == "event" and f.get("event") == "agent"
                                  and (f.get("payload") or {}).get("sessionKey", "").endswith(key.lower()), 15, start)
            sk = ev["payload"]["sessionKey"]
            R.check("session key: gateway agent events carry exactly agent:main:<key>", sk == want_key,
                    f"got {sk!r}")
        except Exception as e:  # noqa: BLE001
            keys = sorted({(f.get("payload") or {}).get("sessionKey") for f in g.frames[start:]
                           if f.get("event") == "agent"} - {None})
            R.check("session key: gateway agent events carry exactly agent:main:<key>", False,
                    f"{type(e).__name__}; sessionKeys seen: {keys}")
        lst = await g.rpc("sessions.list", {"search": key})
        keys = [s.get("key") for s in (lst.get("payload") or {}).get("sessions") or []]
        R.check("session key: sessions.list has exactly that key", keys == [want_key], f"{keys}")
        ents = log.new_entries()
        R.check("session key: upstream prompt names the session", bool(ents) and upstream_session_key(ents[0]) == want_key,
                f"{[upstream_session_key(e) for e in ents]}")
        await g.close()

    asyncio.run(ws_part())
    client.close()
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
