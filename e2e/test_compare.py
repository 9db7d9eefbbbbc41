#!/usr/bin/env python3
"""Offline self-check of differential.py's comparison (no gateway needed):
proves that the comparator flags the differences it is meant to catch."""
import json
import sys
import time

from common import Reporter
from differential import compare

R = Reporter("compare-selfcheck")
NOW = int(time.time())
ID = "chatcmpl_2ce27408-450f-4fcb-8bc8-8234edeafdac"
ID2 = "chatcmpl_11111111-450f-4fcb-8bc8-8234edeafdac"
SSE_H = [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")]
JSON_H = [("content-type", "application/json; charset=utf-8")]


def chunk(delta, finish=None, cid=ID, created=NOW):
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": "openclaw",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def sse(events):
    return "".join("data: " + (e if isinstance(e, str) else json.dumps(e, separators=(",", ":"))) + "\n\n"
                   for e in events).encode()


def stream(pieces, cid=ID, finish=True, created=NOW):
    evs = [chunk({"role": "assistant"}, cid=cid, created=created)]
    evs += [chunk({"content": p}, cid=cid, created=created) for p in pieces]
    if finish:
        evs.append(chunk({}, "stop", cid=cid, created=created))
    return sse(evs + ["[DONE]"])


def resp(raw, headers=SSE_H, status=200):
    return {"status": status, "headers": headers, "raw": raw, "ms": 1}


base = resp(stream(["Hello", ", world", "!"]))
cases = [
    ("identical stream matches", resp(stream(["Hello", ", world", "!"], cid=ID2)), {}, False),
    ("merged deltas: chunking note only", resp(stream(["Hello", ", world!"], cid=ID2)), {}, False),
    ("merged deltas with strict_chunks: mismatch", resp(stream(["Hello", ", world!"], cid=ID2)), {"strict_chunks": True}, True),
    ("different content: mismatch", resp(stream(["Hello", ", world", "?"], cid=ID2)), {}, True),
    ("missing finish chunk: mismatch", resp(stream(["Hello", ", world", "!"], cid=ID2, finish=False)), {}, True),
    ("hyphen id: mismatch", resp(stream(["Hello", ", world", "!"], cid=ID2.replace("_", "-"))), {}, True),
    ("created far off: mismatch", resp(stream(["Hello", ", world", "!"], created=NOW - 3600)), {}, True),
    ("cache-control missing: mismatch", resp(stream(["Hello", ", world", "!"]), headers=SSE_H[:1]), {}, True),
    ("status differs: mismatch", resp(stream(["Hello", ", world", "!"]), status=201), {}, True),
]
for name, other, case, want_diff in cases:
    d, notes = compare(base, other, case, NOW)
    R.check(name, bool(d) == want_diff, f"diffs={d} notes={notes}")
    if name.startswith("merged deltas: chunking"):
        R.check("merged deltas: reported as chunking", any(n.startswith("chunking") for n in notes), f"{notes}")

j = {"id": ID, "object": "chat.completion", "created": NOW, "model": "openclaw",
     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello, world!"}, "finish_reason": "stop"}],
     "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}
jb = resp(json.dumps(j).encode(), JSON_H)
j2 = json.loads(json.dumps(j)); j2["id"] = ID2
R.check("JSON equal modulo id: match", not compare(jb, resp(json.dumps(j2).encode(), JSON_H), {}, NOW)[0])
j3 = json.loads(json.dumps(j)); j3["usage"]["prompt_tokens"] = 0
R.check("JSON usage differs: mismatch", bool(compare(jb, resp(json.dumps(j3).encode(), JSON_H), {}, NOW)[0]))
e1 = resp(b'{"error":{"message":"Unexpected end of JSON input","type":"invalid_request_error"}}', JSON_H, 400)
e2 = resp(b'{"error":{"message":"EOF while parsing a list at line 1 column 32","type":"invalid_request_error"}}', JSON_H, 400)
R.check("error message differs: mismatch", bool(compare(e1, e2, {}, NOW)[0]))
t1 = resp(b"Method Not Allowed", [("content-type", "text/plain; charset=utf-8"), ("allow", "POST")], 405)
t2 = resp(b"Method Not Allowed", [("content-type", "text/plain; charset=utf-8")], 405)
R.check("Allow header missing: mismatch", bool(compare(t1, t2, {}, NOW)[0]))
sys.exit(R.finish())
