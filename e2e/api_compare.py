"""Comparison helpers for the OpenAI surface beyond chat completions (used by
differential.py with api_cases.json): OpenResponses SSE streams, response ids
for `previous_response_id` chains, and the `llm` expectations (what reached
the fake LLM) of a case.

OpenResponses SSE (2026.9.6, openresponses-http-*.mjs) frames every event as
`event: <type>\\ndata: <json with the same type>\\n\\n` and ends with
`data: [DONE]\\n\\n`. Compared here: the framing of every block, the event
sequence with runs of `response.output_text.delta` collapsed to one entry,
every non-delta event after normalisation (ids, created_at), the joined delta
text, delta counts ("chunking" unless strict_chunks), and that one stream uses
one response id and one output-item id throughout.
"""
from __future__ import annotations

import json
import re
from typing import Any

from common import normalize, upstream_session_key

DELTA = "response.output_text.delta"
RESP_ID_RE = re.compile(r"^resp_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# ---------------------------------------------------------------- SSE
def parse_blocks(raw: bytes) -> list[dict]:
    """SSE blocks as {"event": str|None, "data": decoded JSON|'[DONE]'|{'_unparsed':..}, "other": [lines]}."""
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n")
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        ev, data, other = None, [], []
        for line in block.split("\n"):
            if line.startswith("event:"):
                ev = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:][1:] if line[5:6] == " " else line[5:])
            elif line:
                other.append(line)
        d: Any = "\n".join(data) if data else None
        if d is not None and d != "[DONE]":
            try:
                d = json.loads(d)
            except Exception:
                d = {"_unparsed": d}
        out.append({"event": ev, "data": d, "other": other})
    return out


def is_responses_stream(raw: bytes) -> bool:
    for b in parse_blocks(raw)[:2]:
        d = b["data"]
        if isinstance(d, dict) and str(d.get("type", "")).startswith("response."):
            return True
    return False


def _kind(block: dict) -> str:
    d = block["data"]
    if d == "[DONE]":
        return "[DONE]"
    if isinstance(d, dict):
        return str(d.get("type") or ("unparsed" if "_unparsed" in d else "untyped"))
    return "no-data"


def _ids(obj: Any, key_pred, acc: set) -> set:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, str) and key_pred(k, v):
                acc.add(v)
            _ids(v, key_pred, acc)
    elif isinstance(obj, list):
        for v in obj:
            _ids(v, key_pred, acc)
    return acc


def framing_problems(side: str, raw: bytes) -> list[str]:
    probs = []
    text = raw.decode("utf-8", "replace")
    if not text.endswith("data: [DONE]\n\n"):
        probs.append(f"{side}: stream does not end with 'data: [DONE]\\n\\n' (ends {text[-40:]!r})")
    for i, b in enumerate(parse_blocks(raw)):
        if b["other"]:
            probs.append(f"{side}: block {i} has other lines {b['other'][:2]}")
        if b["data"] == "[DONE]":
            if b["event"] is not None:
                probs.append(f"{side}: [DONE] block carries 'event: {b['event']}'")
            continue
        if b["event"] != _kind(b):
            probs.append(f"{side}: block {i}: 'event: {b['event']}' but data type {_kind(b)!r}")
    return probs


def stream_id_problems(side: str, raw: bytes) -> list[str]:
    evs = [b["data"] for b in parse_blocks(raw) if isinstance(b["data"], dict)]
    rids = _ids(evs, lambda k, v: k == "id" and v.startswith("resp_"), set())
    items = _ids(evs, lambda k, v: (k == "item_id") or (k == "id" and v.startswith("msg_")), set())
    probs = []
    if len(rids) != 1:
        probs.append(f"{side}: {len(rids)} response ids in one stream: {sorted(rids)[:3]}")
    if len(items) > 1:
        probs.append(f"{side}: output item ids vary within one stream: {sorted(items)[:3]}")
    return probs


def compare_responses_sse(b, c, strict_chunks, now, diffs, notes, json_diff, short):
    bb, cb = parse_blocks(b["raw"]), parse_blocks(c["raw"])
    for side, resp in (("builtin", b), ("clawbridge", c)):
        diffs.extend(framing_problems(side, resp["raw"]))
        diffs.extend(stream_id_problems(side, resp["raw"]))
    probs: list[str] = []
    nb = [normalize(x["data"], now, probs) for x in bb]
    nc = [normalize(x["data"], now, probs) for x in cb]
    diffs.extend(probs)

    def collapse(blocks, norm):
        kinds, others = [], []
        for blk, n in zip(blocks, norm):
            k = _kind(blk)
            if k == DELTA:
                if not kinds or kinds[-1] != DELTA + "*":
                    kinds.append(DELTA + "*")
                continue
            kinds.append(k)
            others.append(n)
        return kinds, others

    kb, xb = collapse(bb, nb)
    kc, xc = collapse(cb, nc)
    if kb != kc:
        diffs.append(f"event sequence differs: builtin {kb} vs clawbridge {kc}")
    else:
        for k, x, y in zip([k for k in kb if k != DELTA + "*"], xb, xc):
            if x != y:
                diffs.append(f"event {k} differs: {json_diff(x, y)}")
    db = [n for blk, n in zip(bb, nb) if _kind(blk) == DELTA]
    dc = [n for blk, n in zip(cb, nc) if _kind(blk) == DELTA]
    tb = "".join(str(d.get("delta", "")) for d in db)
    tc = "".join(str(d.get("delta", "")) for d in dc)
    if tb != tc:
        diffs.append(f"delta text differs: builtin {short(tb, 120)!r} vs clawbridge {short(tc, 120)!r}")
    if len(db) != len(dc):
        (diffs if strict_chunks else notes).append(f"chunking: builtin {len(db)} deltas vs clawbridge {len(dc)}")
    else:
        for i, (x, y) in enumerate(zip(db, dc)):
            if x != y:
                (diffs if strict_chunks else notes).append(f"delta {i} differs: {json_diff(x, y)}")
                break


# ---------------------------------------------------------------- ids for chains
def response_id_of(resp: dict) -> str | None:
    """The `resp_…` id a /v1/responses answer carries (JSON body or first SSE event)."""
    raw = resp.get("raw") or b""
    try:
        j = json.loads(raw)
        if isinstance(j, dict) and isinstance(j.get("id"), str) and j["id"].startswith("resp_"):
            return j["id"]
    except Exception:
        pass
    for blk in parse_blocks(raw):
        d = blk["data"]
        if isinstance(d, dict) and isinstance(d.get("response"), dict):
            rid = d["response"].get("id")
            if isinstance(rid, str) and rid.startswith("resp_"):
                return rid
    return None


# ---------------------------------------------------------------- what reached the fake LLM
def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text", "")) for p in content or [] if isinstance(p, dict))


def split_upstream(entry: dict) -> tuple[str, list[dict], str]:
    """(system prompt, history messages, current prompt) of one upstream LLM request.
    The current prompt is the last user message with string content (the gateway
    appends its internal-context block as a separate content-part message after it)."""
    msgs = (entry.get("body") or {}).get("messages") or []
    system = "\n".join(_text(m.get("content")) for m in msgs if m.get("role") == "system")
    rest = [m for m in msgs if m.get("role") != "system"]
    last = max((i for i, m in enumerate(rest) if m.get("role") == "user" and isinstance(m.get("content"), str)),
               default=None)
    if last is None:
        return system, rest, ""
    return system, rest[:last], rest[last]["content"]


def check_llm(spec: dict, entries: list[dict], table: dict, by_case: dict[str, list[dict]]) -> list[str]:
    """Problems with a case's `llm` expectation for one side's upstream requests."""
    def sub(s: str) -> str:
        for k, v in table.items():
            s = s.replace(k, v)
        return s

    probs = []
    calls = spec.get("calls", 1)
    if len(entries) != calls:
        return [f"{len(entries)} upstream LLM calls, expected {calls}"]
    if not entries:
        return []
    system, history, prompt = split_upstream(entries[0])
    hist_text = "\n".join(f"{m.get('role')}: {_text(m.get('content'))}" for m in history)
    for s in spec.get("system_contains", []):
        if sub(s) not in system:
            probs.append(f"system prompt lacks {sub(s)!r}")
    for s in spec.get("system_excludes", []):
        if sub(s) in system:
            probs.append(f"system prompt contains {sub(s)!r}")
    for s in spec.get("prompt_contains", []):
        if sub(s) not in prompt:
            probs.append(f"current prompt lacks {sub(s)!r} (prompt {prompt[:160]!r})")
    for s in spec.get("prompt_excludes", []):
        if sub(s) in prompt:
            probs.append(f"current prompt contains {sub(s)!r}")
    for s in spec.get("history_contains", []):
        if sub(s) not in hist_text:
            probs.append(f"history lacks {sub(s)!r} (history {hist_text[:200]!r})")
    if spec.get("history_empty") and history:
        probs.append(f"history not empty: {hist_text[:200]!r}")
    key = upstream_session_key(entries[0])
    if "session" in spec and not (key and re.fullmatch(sub(spec["session"]), key)):
        probs.append(f"session key {key!r} does not match {sub(spec['session'])!r}")
    for field, want_same in (("same_session_as", True), ("other_session_than", False)):
        other = spec.get(field)
        if not other:
            continue
        oe = by_case.get(other) or []
        okey = upstream_session_key(oe[0]) if oe else None
        if okey is None:
            probs.append(f"{field} {other}: that case reached no LLM on this side")
        elif (key == okey) != want_same:
            probs.append(f"session {key!r} {'differs from' if want_same else 'is the same as'} {other}'s {okey!r}")
    return probs
