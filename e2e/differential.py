#!/usr/bin/env python3
"""Differential suite: every case in cases.json goes to the gateway's built-in
/v1/chat/completions and through clawbridge; the answers must match.

Phase 1 (built-in on): compares built-in vs clawbridge live and saves the
built-in answers to out/reference.json.
Phase 2 (--phase2, built-in off): sends the cases marked "phase2" through
clawbridge only and compares them with the saved phase-1 built-in answers.

Compared: status; the headers in STRICT_HEADERS; JSON bodies after normalising
ids/uuids/created; other bodies byte for byte; SSE as (a) event structure,
(b) non-content events, (c) concatenated content, with chunk-count differences
reported as "chunking" (strict one-to-one for strict_chunks cases); and the
upstream LLM requests the two runs caused (count, and the request bodies after
normalising uuids/timestamps/per-side ids).

With --cases api_cases.json --name differential-api the same runner covers
GET /v1/models[/{id}] and POST /v1/responses (api_compare.py: OpenResponses SSE,
`{resp:<case>}` placeholders that chain `previous_response_id` to an earlier
case's response on the same side, and per-case `llm` expectations checked on
each side's own upstream requests).

Exit code 1 on any MISMATCH.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path

import httpx

from api_compare import check_llm, compare_responses_sse, is_responses_stream, response_id_of
from common import (BRIDGE_URL, GATEWAY_URL, OUT, TOKEN, FakeLog, event_kind, fake_config, normalize,
                    parse_sse, sse_content)

HERE = Path(__file__).resolve().parent
STRICT_HEADERS = ["content-type", "cache-control", "allow", "www-authenticate", "retry-after", "content-encoding",
                  "x-accel-buffering"]
SOFT_HEADERS = ["x-content-type-options", "referrer-policy", "permissions-policy", "connection", "keep-alive",
                "transfer-encoding", "content-length"]
TS_RE = re.compile(r"\[(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})? [A-Z]{2,5}\]")
ISO_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HEX_ID_RE = re.compile(r"\b[0-9a-f]{32}\b")


def subst(obj, table):
    if isinstance(obj, str):
        for k, v in table.items():
            obj = obj.replace(k, v)
        return obj
    if isinstance(obj, list):
        return [subst(x, table) for x in obj]
    if isinstance(obj, dict):
        return {k: subst(v, table) for k, v in obj.items()}
    return obj


def build_request(case, defaults, table):
    method = case.get("method", defaults["method"])
    path = case.get("path", defaults["path"])
    headers = dict(defaults["headers"])
    for k, v in (case.get("headers") or {}).items():
        # case-insensitive override of a default
        for dk in list(headers):
            if dk.lower() == k.lower():
                del headers[dk]
        if v is not None:
            headers[k] = v
    headers = {k: subst(v, table) for k, v in headers.items()}
    content = None
    if "raw" in case:
        content = subst(case["raw"], table).encode()
    elif "body" in case:
        content = json.dumps(subst(case["body"], table), ensure_ascii=False).encode()
    elif "gen" in case:
        g = case["gen"]
        n = int(g["content_chars"])
        unit = "The quick brown fox jumps over the lazy dog 0123456789. "
        text = (unit * (n // len(unit) + 1))[:n]
        content = json.dumps({"model": "openclaw", "stream": bool(g.get("stream")),
                              "messages": [{"role": "user", "content": text}]}).encode()
    return method, path, headers, content


def do_request(client, base, method, path, headers, content, timeout):
    t0 = time.monotonic()
    try:
        req = client.build_request(method, base + path, headers=headers, content=content, timeout=timeout)
        r = client.send(req)
        raw = r.content
        return {"status": r.status_code, "headers": [(k.lower(), v) for k, v in r.headers.multi_items()],
                "raw": raw, "ms": round((time.monotonic() - t0) * 1000)}
    except Exception as e:  # noqa: BLE001
        return {"status": f"ERR:{type(e).__name__}", "headers": [], "raw": str(e).encode(),
                "ms": round((time.monotonic() - t0) * 1000)}


def hdr(resp, name):
    vals = [v for k, v in resp["headers"] if k == name]
    return ", ".join(vals) if vals else None


def is_sse(resp):
    return (hdr(resp, "content-type") or "").startswith("text/event-stream")


def short(s, n=220):
    s = s if isinstance(s, str) else json.dumps(s, ensure_ascii=False)
    return s if len(s) <= n else s[:n] + f"...(+{len(s) - n})"


def json_diff(a, b, limit=6):
    sa = json.dumps(a, indent=1, ensure_ascii=False, sort_keys=True).splitlines()
    sb = json.dumps(b, indent=1, ensure_ascii=False, sort_keys=True).splitlines()
    out = [l for l in difflib.unified_diff(sa, sb, "builtin", "clawbridge", lineterm="", n=0)
           if not l.startswith(("---", "+++", "@@"))]
    return "; ".join(short(l.strip(), 160) for l in out[:limit]) + (f" (+{len(out) - limit} lines)" if len(out) > limit else "")


def key_order(obj):
    """Key order of all dicts (to report serialisation-order differences)."""
    if isinstance(obj, dict):
        return [list(obj.keys())] + [k for v in obj.values() for k in key_order(v)]
    if isinstance(obj, list):
        return [k for v in obj for k in key_order(v)]
    return []


def compare_sse(b, c, strict_chunks, now, diffs, notes):
    eb, ob = parse_sse(b["raw"])
    ec, oc = parse_sse(c["raw"])
    if ob != oc:
        diffs.append(f"non-data SSE lines differ: builtin {ob[:3]} vs clawbridge {oc[:3]}")
    for side, evs in (("builtin", eb), ("clawbridge", ec)):
        ids = {e.get("id") for e in evs if isinstance(e, dict) and "id" in e}
        cr = {e.get("created") for e in evs if isinstance(e, dict) and "created" in e}
        if len(ids) > 1:
            diffs.append(f"{side}: chunk ids vary within one stream: {sorted(map(str, ids))[:3]}")
        if len(cr) > 1:
            notes.append(f"{side}: 'created' varies within one stream: {sorted(cr)}")
    probs = []
    nb = [normalize(e, now, probs) for e in eb]
    nc = [normalize(e, now, probs) for e in ec]
    diffs.extend(probs)

    def collapse(evs):
        kinds, others = [], []
        for e in evs:
            k = event_kind(e)
            if k == "content":
                if not kinds or kinds[-1] != "content*":
                    kinds.append("content*")
                continue
            kinds.append(k)
            others.append(e)
        return kinds, others

    kb, xb = collapse(nb)
    kc, xc = collapse(nc)
    if kb != kc:
        diffs.append(f"event structure differs: builtin {kb} vs clawbridge {kc}")
    else:
        for i, (x, y) in enumerate(zip(xb, xc)):
            if x != y:
                diffs.append(f"event {event_kind(x)} differs: {json_diff(x, y)}")
            elif key_order(x) != key_order(y):
                notes.append(f"key order differs in {event_kind(x)} event: {key_order(x)[:2]} vs {key_order(y)[:2]}")
    tb, tc = sse_content(eb), sse_content(ec)
    if tb != tc:
        diffs.append(f"content differs: builtin {short(tb, 120)!r} vs clawbridge {short(tc, 120)!r}")
    cb = [e for e in nb if event_kind(e) == "content"]
    cc = [e for e in nc if event_kind(e) == "content"]
    if len(cb) != len(cc):
        msg = f"chunking: builtin {len(cb)} content chunks vs clawbridge {len(cc)}"
        (diffs if strict_chunks else notes).append(msg)
    elif strict_chunks or tb == tc:
        for i, (x, y) in enumerate(zip(cb, cc)):
            if x != y:
                (diffs if strict_chunks else notes).append(f"content chunk {i} differs: {json_diff(x, y)}")
                break
    # raw framing: every event must be exactly 'data: <json>\n\n'
    for side, resp in (("clawbridge", c),):
        txt = resp["raw"].decode("utf-8", "replace")
        if txt and not txt.endswith("data: [DONE]\n\n") and hdr(b, "content-type") == hdr(c, "content-type") \
                and b["raw"].decode("utf-8", "replace").endswith("data: [DONE]\n\n"):
            diffs.append(f"{side}: stream does not end with 'data: [DONE]\\n\\n' (ends {txt[-40:]!r})")


def compare(b, c, case, now):
    """Returns (diffs, notes)."""
    diffs, notes = [], []
    if b["status"] != c["status"]:
        diffs.append(f"status {b['status']} vs {c['status']}")
    for h in STRICT_HEADERS:
        hb, hc = hdr(b, h), hdr(c, h)
        if hb != hc:
            diffs.append(f"header {h}: {hb!r} vs {hc!r}")
    for h in SOFT_HEADERS:
        hb, hc = hdr(b, h), hdr(c, h)
        if h == "content-length" and hb and hc and hb != hc and not is_sse(b):
            continue  # reported via body comparison
        if (hb is None) != (hc is None) or (h not in ("content-length", "keep-alive") and hb != hc):
            notes.append(f"header {h}: {hb!r} vs {hc!r}")
    names_b = {k for k, _ in b["headers"]} - {"date"}
    names_c = {k for k, _ in c["headers"]} - {"date"}
    extra = sorted((names_c - names_b) - set(SOFT_HEADERS) - set(STRICT_HEADERS))
    missing = sorted((names_b - names_c) - set(SOFT_HEADERS) - set(STRICT_HEADERS))
    if extra:
        notes.append(f"extra headers from clawbridge: {extra}")
    if missing:
        notes.append(f"headers missing from clawbridge: {missing}")

    if is_sse(b) or is_sse(c):
        if is_sse(b) and is_sse(c) and (is_responses_stream(b["raw"]) or is_responses_stream(c["raw"])):
            compare_responses_sse(b, c, case.get("strict_chunks", False), now, diffs, notes, json_diff, short)
        elif is_sse(b) and is_sse(c):
            compare_sse(b, c, case.get("strict_chunks", False), now, diffs, notes)
        else:
            diffs.append(f"one side is SSE, the other not: body {short(b['raw'].decode('utf-8','replace'),100)!r} "
                         f"vs {short(c['raw'].decode('utf-8','replace'),100)!r}")
        return diffs, notes
    jb = jc = None
    try:
        jb = json.loads(b["raw"]) if b["raw"] else None
        jc = json.loads(c["raw"]) if c["raw"] else None
        is_json = b["raw"] and c["raw"]
    except Exception:
        is_json = False
    if is_json:
        probs = []
        nb, nc = normalize(jb, now, probs), normalize(jc, now, probs)
        diffs.extend(probs)
        if nb != nc:
            diffs.append(f"body: {json_diff(nb, nc)}")
        elif key_order(jb) != key_order(jc):
            notes.append(f"JSON key order differs: {key_order(jb)[:2]} vs {key_order(jc)[:2]}")
        elif b["raw"] != c["raw"] and UUID_RE.sub("U", b["raw"].decode()) != UUID_RE.sub("U", c["raw"].decode()) \
                and not re.search(rb'"created(_at)?":', b["raw"]):
            notes.append("JSON equal but serialised differently (whitespace/escaping)")
    elif b["raw"] != c["raw"]:
        diffs.append(f"body bytes differ: {short(b['raw'].decode('utf-8','replace'),120)!r} vs "
                     f"{short(c['raw'].decode('utf-8','replace'),120)!r}")
    return diffs, notes


def norm_upstream(entry, table_inv):
    body = entry.get("body")
    s = json.dumps(body, ensure_ascii=False)
    for k, v in table_inv.items():
        s = s.replace(k, v)
    s = TS_RE.sub("[<ts>]", s)
    s = ISO_RE.sub("<iso>", s)
    s = UUID_RE.sub("<uuid>", s)
    s = HEX_ID_RE.sub("<hex>", s)
    return json.loads(s)


# Known, documented upstream differences (README, "Deliberate deviations"): a
# run started over the native protocol carries operator turn authority, so the
# agent also gets the `transcripts` tool; the built-in's in-process run does not.
KNOWN_UPSTREAM_TOOLS = {"transcripts"}
KNOWN_UPSTREAM_PROMPT_LINES = ("- transcripts (core):",)


def upstream_lines(o, ignore_keys=()):
    out = []
    for i, m in enumerate(o.get("messages") or []):
        c = m.get("content")
        c = c if isinstance(c, str) else json.dumps(c, ensure_ascii=False)
        out += [f"msg{i}/{m.get('role')}: {l}" for l in c.split("\n")
                if not l.startswith(KNOWN_UPSTREAM_PROMPT_LINES)]
    for t in o.get("tools") or []:
        if (t.get("function") or {}).get("name") in KNOWN_UPSTREAM_TOOLS:
            continue
        out.append(f"tool: {json.dumps(t, ensure_ascii=False, sort_keys=True)[:400]}")
    rest = {k: v for k, v in o.items() if k not in ("messages", "tools") and k not in ignore_keys}
    out += [f"{k}: {json.dumps(v, ensure_ascii=False, sort_keys=True)[:300]}" for k, v in sorted(rest.items())]
    return out


def upstream_diff_lines(a, b, ignore_keys=()):
    return [l for l in difflib.unified_diff(upstream_lines(a, ignore_keys), upstream_lines(b, ignore_keys),
                                            lineterm="", n=0)
            if not l.startswith(("---", "+++", "@@"))]


def upstream_diff(a, b, ignore_keys=()):
    """Compact summary: differing line counts per section, then the first lines."""
    d = upstream_diff_lines(a, b, ignore_keys)
    sections = {}
    for l in d:
        sec = l[1:].split(":", 1)[0]
        sec = "tools" if sec == "tool" else sec
        sections.setdefault(sec, [0, 0])[0 if l[0] == "-" else 1] += 1
    summ = ", ".join(f"{k} -{v[0]}/+{v[1]}" for k, v in sections.items())
    return f"[{summ}] " + "; ".join(short(l, 110) for l in d[:3]) + (f" (+{len(d) - 3} lines)" if len(d) > 3 else "")


def loose_count(case, ub, uc, notes):
    """`upstream_count: "retries"`: the gateway's provider retries (upstream 5xx) vary in number
    from run to run; both sides must call the LLM, the count is only a note."""
    if case.get("upstream_count") == "retries" and ub and uc:
        notes.append(f"upstream LLM calls (retries): builtin {len(ub)} vs clawbridge {len(uc)}")
        return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=str(HERE / "cases.json"))
    ap.add_argument("--phase2", action="store_true", help="built-in off: compare clawbridge with out/reference.json")
    ap.add_argument("--only", default=None, help="regex on case names")
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-upstream", action="store_true", help="skip the upstream-request comparison")
    ap.add_argument("--name", default="differential",
                    help="label and output names (out/<name>[-phase2].txt, reference out/reference[-<name>].json)")
    args = ap.parse_args()

    spec = json.loads(Path(args.cases).read_text())
    defaults = spec["defaults"]
    cases = spec["cases"]
    slow_enabled = os.environ.get("E2E_SLOW") == "1"
    run_id = os.environ.get("E2E_RUN_ID") or uuid.uuid4().hex[:10]
    OUT.mkdir(parents=True, exist_ok=True)
    out_path = Path(args.out) if args.out else OUT / (f"{args.name}-phase2.txt" if args.phase2 else f"{args.name}.txt")
    ref_path = OUT / ("reference.json" if args.name == "differential" else f"reference-{args.name}.json")
    reference = {}
    if args.phase2:
        if not ref_path.exists():
            print(f"FAIL differential-phase2: no phase-1 reference at {ref_path}")
            return 1
        reference = json.loads(ref_path.read_text())

    names = [c["name"] for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        print(f"FAIL differential: duplicate case names {dup}")
        return 1

    rows, details, saved_ref = [], [], {}
    n_match = n_dev = n_mis = n_skip = 0
    fake_client = httpx.Client(timeout=10)
    cb = httpx.Client(http2=False)
    cc = httpx.Client(http2=False)
    log = FakeLog()
    label = f"{args.name}-phase2" if args.phase2 else args.name
    resp_ids = {"builtin": {}, "clawbridge": {}}      # case -> response id, per side (previous_response_id chains)
    ups_by_case = {"builtin": {}, "clawbridge": {}}   # case -> raw upstream entries, per side (llm expectations)
    for case in cases:
        name = case["name"]
        if args.only and not re.search(args.only, name):
            continue
        if args.phase2 and not case.get("phase2"):
            continue
        if case.get("slow") and not slow_enabled:
            rows.append((name, "-", "-", "skipped", "slow case (upstream 5xx retries ~80 s); set E2E_SLOW=1"))
            n_skip += 1
            continue
        timeout = 200.0 if case.get("slow") else 90.0
        before = fake_config(fake_client) if case.get("fake") else None
        if case.get("fake"):
            fake_config(fake_client, **case["fake"])
        try:
            results, ups, tables = {}, {}, {}
            sides = ["clawbridge"] if args.phase2 else ["builtin", "clawbridge"]
            for side in sides:
                # Phase 2 runs on the same gateway state as phase 1: its own {uniq},
                # so a `user` or session key starts fresh there too.
                uniq = f"{run_id}-{side}" + ("-p2" if args.phase2 else "")
                table = {"{token}": TOKEN, "{run}": run_id, "{uniq}": uniq}
                table.update({f"{{resp:{k}}}": v for k, v in resp_ids[side].items()})
                tables[side] = table
                method, path, headers, content = build_request(case, defaults, table)
                log.mark()
                base = GATEWAY_URL if side == "builtin" else BRIDGE_URL
                results[side] = do_request(cb if side == "builtin" else cc, base, method, path, headers, content, timeout)
                time.sleep(0.05)  # let the fake LLM flush its log line
                ups[side] = log.new_entries()
                ups_by_case[side][name] = ups[side]
                rid = response_id_of(results[side])
                if rid:
                    resp_ids[side][name] = rid
        finally:
            if before is not None:
                fake_config(fake_client, reply=before["reply"], delay_ms=before["delay_ms"],
                            fail_status=before["fail_status"])
        now = time.time()
        # What reached the fake LLM, checked on each side's own requests (built-in side: phase 1 only).
        llm_probs = []
        if case.get("llm") is not None:
            for side in (["clawbridge"] if args.phase2 else ["builtin", "clawbridge"]):
                llm_probs += [f"{side} LLM: {p}" for p in
                              check_llm(case["llm"], ups[side], tables[side], ups_by_case[side])]
        # Declared upstream differences (e.g. sampling params the native method cannot carry).
        ignore = tuple((case.get("upstream_ignore") or {}).get("keys") or ())
        if args.phase2:
            ref = reference.get(name)
            if ref is None:
                rows.append((name, "-", str(results["clawbridge"]["status"]), "MISMATCH", "no phase-1 reference"))
                n_mis += 1
                continue
            b = {"status": ref["status"], "headers": [tuple(h) for h in ref["headers"]],
                 "raw": ref["raw"].encode("utf-8", "surrogateescape"), "ms": ref["ms"]}
            now = ref["now"]
            # created of clawbridge is "now", built-in's is from phase 1: normalise on each side's own clock
            c = results["clawbridge"]
            diffs, notes = compare(b, c, case, None)
            updiff_full = []
            udiffs = []
            if not args.no_upstream:
                ub = ref.get("upstream_norm")
                uc = [norm_upstream(e, {tables["clawbridge"]["{uniq}"]: "{uniq}"}) for e in ups["clawbridge"]]
                if ub is not None and len(ub) != len(uc) and not loose_count(case, ub, uc, notes):
                    udiffs.append(f"upstream LLM calls: builtin {len(ub)} vs clawbridge {len(uc)}")
                elif ub and upstream_diff_lines(ub[0], uc[0], ignore):
                    udiffs.append(f"upstream request differs: {upstream_diff(ub[0], uc[0], ignore)}")
                    updiff_full = upstream_diff_lines(ub[0], uc[0], ignore)
            diffs += udiffs
        else:
            b, c = results["builtin"], results["clawbridge"]
            diffs, notes = compare(b, c, case, now)
            updiff_full = []
            if not args.no_upstream:
                inv_b = {tables["builtin"]["{uniq}"]: "{uniq}"}
                inv_c = {tables["clawbridge"]["{uniq}"]: "{uniq}"}
                ub = [norm_upstream(e, inv_b) for e in ups["builtin"]]
                uc = [norm_upstream(e, inv_c) for e in ups["clawbridge"]]
                if len(ub) != len(uc) and not loose_count(case, ub, uc, notes):
                    diffs.append(f"upstream LLM calls: builtin {len(ub)} vs clawbridge {len(uc)}")
                elif ub and upstream_diff_lines(ub[0], uc[0], ignore):
                    diffs.append(f"upstream request differs: {upstream_diff(ub[0], uc[0], ignore)}")
                    updiff_full = upstream_diff_lines(ub[0], uc[0], ignore)
            saved_ref[name] = {"status": b["status"], "headers": b["headers"],
                               "raw": b["raw"].decode("utf-8", "surrogateescape"), "ms": b["ms"], "now": now,
                               "upstream_norm": [norm_upstream(e, {tables['builtin']['{uniq}']: '{uniq}'})
                                                 for e in ups["builtin"]]}
        dev = case.get("expected_deviation")
        if llm_probs:
            # an unmet `llm` expectation is never covered by a declared deviation
            diffs = llm_probs + diffs
            dev = None
        if not diffs:
            verdict, why = "match", ("; ".join(notes) if notes else "")
            if dev:
                why = "declared deviation NOT observed (clawbridge matched the built-in); " + why
            n_match += 1
        elif dev and c["status"] == dev.get("bridge_status") and \
                (not dev.get("bridge_body_contains") or dev["bridge_body_contains"].encode() in c["raw"]):
            verdict, why = "deviation-expected", dev["reason"]
            n_dev += 1
        else:
            verdict, why = "MISMATCH", " | ".join(diffs) + (f" || notes: {'; '.join(notes)}" if notes else "")
            n_mis += 1
        rows.append((name, str(b["status"]), str(c["status"]), verdict, why))
        details.append({"case": name, "verdict": verdict, "diffs": diffs, "notes": notes,
                        "upstream_diff": updiff_full,
                        "builtin": {"status": b["status"], "ms": b["ms"], "headers": b["headers"],
                                    "body": b["raw"][:3000].decode("utf-8", "replace")},
                        "clawbridge": {"status": c["status"], "ms": c["ms"], "headers": c["headers"],
                                       "body": c["raw"][:3000].decode("utf-8", "replace")}})
    fake_client.close()
    cb.close()
    cc.close()

    if not args.phase2 and saved_ref and not args.only:
        ref_path.write_text(json.dumps(saved_ref, ensure_ascii=False))

    w1 = max(len(r[0]) for r in rows) if rows else 10
    lines = [f"{'case':<{w1}}  {'builtin':>7}  {'bridge':>7}  verdict             detail",
             "-" * (w1 + 60)]
    for name, sb, sc, verdict, why in rows:
        lines.append(f"{name:<{w1}}  {sb:>7}  {sc:>7}  {verdict:<18}  {why}")
    total = n_match + n_dev + n_mis
    summary = (f"{label}: {total} cases, {n_match} match, {n_dev} expected deviations, {n_mis} mismatches"
               + (f" ({n_skip} skipped)" if n_skip else ""))
    lines += ["", summary]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    out_path.write_text(text)
    (out_path.with_suffix(".json")).write_text(json.dumps(details, ensure_ascii=False, indent=1))
    print(f"{label}: table written to {out_path}, full responses in {out_path.with_suffix('.json')}")
    if args.only and total == 0 and n_skip == 0:
        print(f"SKIP {label}: no case matches --only {args.only!r}")
        return 0
    if total < (1 if args.phase2 or args.only else spec.get("min_cases", 30)):
        print(f"FAIL {label}: only {total} cases ran")
        return 1
    print(f"{'FAIL' if n_mis else 'PASS'} {label}: {summary}")
    return 1 if n_mis else 0


if __name__ == "__main__":
    sys.exit(main())
