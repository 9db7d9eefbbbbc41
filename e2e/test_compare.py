#!/usr/bin/env python3
"""Offline self-check of differential.py's comparison (no gateway needed):
proves that the comparator flags the differences it is meant to catch."""
import json
import sys
import time

from common import Reporter
from api_compare import check_llm
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

# ---- OpenResponses SSE (api_compare.compare_responses_sse via compare) and llm expectations
RID = "resp_2ce27408-450f-4fcb-8bc8-8234edeafdac"
MID = "msg_11111111-450f-4fcb-8bc8-8234edeafdac"


def rstream(pieces, rid=RID, mid=MID, created=NOW, done=True, event_of=None, final="completed"):
    text = "".join(pieces)
    resp = {"id": rid, "object": "response", "created_at": created, "status": "in_progress", "model": "openclaw",
            "output": []}
    evs = [{"type": "response.created", "response": resp}, {"type": "response.in_progress", "response": resp},
           {"type": "response.output_item.added", "output_index": 0,
            "item": {"type": "message", "id": mid, "role": "assistant", "content": [], "status": "in_progress"}}]
    evs += [{"type": "response.output_text.delta", "item_id": mid, "output_index": 0, "content_index": 0, "delta": p}
            for p in pieces]
    evs += [{"type": "response.output_text.done", "item_id": mid, "output_index": 0, "content_index": 0, "text": text},
            {"type": f"response.{final}", "response": {**resp, "status": final}}]
    out = "".join(f"event: {(event_of or {}).get(e['type'], e['type'])}\ndata: {json.dumps(e)}\n\n" for e in evs)
    return (out + ("data: [DONE]\n\n" if done else "")).encode()


rbase = resp(rstream(["Hello", ", world", "!"]))
RID2 = RID.replace("2ce27408", "33333333")
MID2 = MID.replace("11111111", "44444444")
rcases = [
    ("responses: identical modulo ids matches", resp(rstream(["Hello", ", world", "!"], rid=RID2, mid=MID2)), {}, False),
    ("responses: merged deltas only a chunking note", resp(rstream(["Hello", ", world!"], rid=RID2)), {}, False),
    ("responses: merged deltas, strict_chunks: mismatch", resp(rstream(["Hello", ", world!"])), {"strict_chunks": True}, True),
    ("responses: other text: mismatch", resp(rstream(["Hello", ", world", "?"])), {}, True),
    ("responses: no [DONE]: mismatch", resp(rstream(["Hello", ", world", "!"], done=False)), {}, True),
    ("responses: event line not the data type: mismatch",
     resp(rstream(["Hello", ", world", "!"], event_of={"response.output_text.done": "response.done"})), {}, True),
    ("responses: failed instead of completed: mismatch", resp(rstream(["Hello", ", world", "!"], final="failed")), {}, True),
    ("responses: created_at far off: mismatch", resp(rstream(["Hello", ", world", "!"], created=NOW - 3600)), {}, True),
    ("responses: id not resp_<uuid>: mismatch", resp(rstream(["Hello", ", world", "!"], rid="resp_abc")), {}, True),
]
for name, other, case, want_diff in rcases:
    d, notes = compare(rbase, other, case, NOW)
    R.check(name, bool(d) == want_diff, f"diffs={d} notes={notes}")
mixed = rstream(["Hello", ", world", "!"]).replace(MID.encode(), MID2.encode(), 1)
R.check("responses: item id varies within a stream: mismatch", bool(compare(rbase, resp(mixed), {}, NOW)[0]))
m1 = resp(b'{"id":"openclaw","object":"model","created":0,"owned_by":"openclaw","permission":[]}', JSON_H)
m2 = resp(b'{"id":"openclaw","object":"model","created":%d,"owned_by":"openclaw","permission":[]}' % NOW, JSON_H)
R.check("models: created 0 kept and compared (0 vs now: mismatch)", bool(compare(m1, m2, {}, NOW)[0]))
R.check("models: identical detail matches", not compare(m1, resp(m1["raw"], JSON_H), {}, NOW)[0])


def up(session, prompt, history=(), system="SYS"):
    msgs = [{"role": "system", "content": system}, *history,
            {"role": "user", "content": f"[ts] {prompt}" + (f"\n\nRuntime: agent=main | session={session} | x" if not history else "")},
            {"role": "user", "content": [{"type": "text", "text": "internal"}]}]
    if history:  # the Runtime line stays on the session's first user message
        msgs[1] = {**msgs[1], "content": msgs[1]["content"] + f"\n\nRuntime: agent=main | session={session} | x"}
    return {"path": "/v1/chat/completions", "body": {"messages": msgs}}


first = up("agent:main:openresponses:a", "one")
second = up("agent:main:openresponses:a", "two", history=[{"role": "user", "content": "[ts] one"},
                                                         {"role": "assistant", "content": "Hello"}])
other = up("agent:main:openresponses:b", "three")
by = {"first": [first]}
R.check("llm: met expectation passes", not check_llm({"same_session_as": "first", "history_contains": ["one", "assistant: Hello"],
                                                      "prompt_contains": ["two"], "system_contains": ["SYS"]},
                                                     [second], {}, by))
R.check("llm: other session flagged", bool(check_llm({"same_session_as": "first"}, [other], {}, by)))
R.check("llm: same session flagged", bool(check_llm({"other_session_than": "first"}, [second], {}, by)))
R.check("llm: missing prompt text flagged", bool(check_llm({"prompt_contains": ["{uniq}"]}, [first], {"{uniq}": "u1"}, by)))
R.check("llm: history not empty flagged", bool(check_llm({"history_empty": True}, [second], {}, by)))
R.check("llm: call count flagged", bool(check_llm({}, [], {}, by)) and bool(check_llm({"calls": 0}, [first], {}, by)))
R.check("llm: session regex flagged", bool(check_llm({"session": "agent:main:openresponses-user:x"}, [first], {}, by)))
sys.exit(R.finish())
