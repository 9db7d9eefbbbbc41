"""Shared helpers for the clawbridge e2e suites (run by e2e/run.sh).

Everything is configured through environment variables that run.sh exports:

  E2E_GATEWAY_URL   the real gateway, direct     (default http://127.0.0.1:18789)
  E2E_BRIDGE_URL    clawbridge's listen address   (default http://127.0.0.1:18800)
  E2E_FAKE_URL      the kit's fake LLM            (default http://127.0.0.1:18790)
  E2E_TOKEN         gateway token                 (default test-token)
  E2E_FAKE_LOG      fake LLM request log (JSONL)  (default ~/.cache/openclaw-ref/run/fake_llm.requests.jsonl)
  E2E_OUT           output directory              (default e2e/out)
  E2E_PHASE         1 = built-in endpoint on, 2 = off (clawbridge alone serves turns)
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
GATEWAY_URL = os.environ.get("E2E_GATEWAY_URL", "http://127.0.0.1:18789").rstrip("/")
BRIDGE_URL = os.environ.get("E2E_BRIDGE_URL", "http://127.0.0.1:18800").rstrip("/")
FAKE_URL = os.environ.get("E2E_FAKE_URL", "http://127.0.0.1:18790").rstrip("/")
TOKEN = os.environ.get("E2E_TOKEN", "test-token")
FAKE_LOG = Path(os.environ.get(
    "E2E_FAKE_LOG", os.path.expanduser("~/.cache/openclaw-ref/run/fake_llm.requests.jsonl")))
OUT = Path(os.environ.get("E2E_OUT", str(HERE / "out")))
PHASE = int(os.environ.get("E2E_PHASE", "1"))
DEFAULT_REPLY = ["Hello", ", world", "!"]

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
CHATCMPL_RE = re.compile(r"^chatcmpl_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def ws_url(http_url: str) -> str:
    return "ws" + http_url[len("http"):] + "/"


# ---------------------------------------------------------------- reporting
class Reporter:
    """Collects PASS/FAIL/SKIP lines; exit code 1 if anything failed."""

    def __init__(self, suite: str):
        self.suite = suite
        self.failed = 0
        self.passed = 0
        self.skipped = 0

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            d = detail if len(detail) <= 140 else detail[:140] + "..."
            print(f"PASS {self.suite}: {name}" + (f" ({d})" if d else ""), flush=True)
        else:
            self.failed += 1
            print(f"FAIL {self.suite}: {name}" + (f": {detail}" if detail else ""), flush=True)
        return ok

    def skip(self, name: str, reason: str) -> None:
        self.skipped += 1
        print(f"SKIP {self.suite}: {name}: {reason}", flush=True)

    def finish(self) -> int:
        status = "FAIL" if self.failed else "PASS"
        print(f"{self.suite}: {status} ({self.passed} passed, {self.failed} failed, {self.skipped} skipped)", flush=True)
        return 1 if self.failed else 0


# ---------------------------------------------------------------- fake LLM
def fake_config(client, **kw) -> dict:
    """POST /_fake/config; {} just reads. Returns the current settings."""
    r = client.post(FAKE_URL + "/_fake/config", content=json.dumps(kw).encode(), timeout=10)
    r.raise_for_status()
    return r.json()


def fake_reset(client) -> dict:
    return fake_config(client, reply=DEFAULT_REPLY, delay_ms=0, fail_status=0)


class FakeLog:
    """Reads the fake LLM's JSONL request log from a remembered offset."""

    def __init__(self, path: Path = FAKE_LOG):
        self.path = path
        self.mark()

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def new_entries(self, path_filter: str | None = "/v1/chat/completions") -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        out = []
        for line in data.splitlines():
            try:
                e = json.loads(line)
            except Exception:
                continue
            if path_filter is None or (e.get("path") or "").split("?")[0] == path_filter:
                out.append(e)
        return out


def upstream_user_text(entry: dict) -> str:
    """The first user message of an upstream request (the folded prompt + Runtime line)."""
    for m in (entry.get("body") or {}).get("messages") or []:
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            return m["content"]
    return ""


def upstream_session_key(entry: dict) -> str | None:
    m = re.search(r"\bsession=(\S+)", upstream_user_text(entry))
    return m.group(1) if m else None


# ---------------------------------------------------------------- SSE
def parse_sse(raw: bytes) -> tuple[list[Any], list[str]]:
    """Parse an SSE body into events (decoded JSON, or the string '[DONE]' /
    {'_unparsed': text}) and a list of non-`data:` lines (comments, event:, id:)."""
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n")
    events: list[Any] = []
    other: list[str] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        data_lines = []
        for line in block.split("\n"):
            if line.startswith("data:"):
                data_lines.append(line[5:][1:] if line[5:6] == " " else line[5:])
            elif line:
                other.append(line)
        if not data_lines:
            continue
        data = "\n".join(data_lines)
        if data == "[DONE]":
            events.append("[DONE]")
            continue
        try:
            events.append(json.loads(data))
        except Exception:
            events.append({"_unparsed": data})
    return events, other


def event_kind(ev: Any) -> str:
    if ev == "[DONE]":
        return "done"
    if not isinstance(ev, dict):
        return "other"
    if "error" in ev:
        return "error"
    if "_unparsed" in ev:
        return "unparsed"
    ch = ev.get("choices")
    if isinstance(ch, list) and not ch and "usage" in ev:
        return "usage"
    if isinstance(ch, list) and ch:
        c0 = ch[0] or {}
        d = c0.get("delta") or {}
        if c0.get("finish_reason") is not None:
            return "finish"
        if "role" in d and not d.get("content"):
            return "role"
        if "content" in d:
            return "content"
        if "tool_calls" in d:
            return "tool_calls"
    return "other"


def sse_content(events: list[Any]) -> str:
    return "".join(((e.get("choices") or [{}])[0].get("delta") or {}).get("content") or ""
                   for e in events if event_kind(e) == "content")


# ---------------------------------------------------------------- normalisation
def normalize(obj: Any, now: float | None = None, problems: list[str] | None = None, key: str | None = None) -> Any:
    """Replace volatile values: chatcmpl ids, uuids (also inside `resp_`/`msg_`/`call_`
    ids), `created` / `created_at` (checked to be a plausible unix-seconds value
    first; a literal 0, as in /v1/models, is kept and compared)."""
    if isinstance(obj, dict):
        return {k: normalize(v, now, problems, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [normalize(v, now, problems, key) for v in obj]
    if key in ("created", "created_at") and isinstance(obj, int) and not isinstance(obj, bool) and obj != 0:
        if now is not None and problems is not None and abs(obj - now) > 300:
            problems.append(f"created={obj} is not near now ({int(now)})")
        return "<created>"
    if isinstance(obj, str):
        if key == "id" and CHATCMPL_RE.match(obj):
            return "chatcmpl_<uuid>"
        return UUID_RE.sub("<uuid>", obj)
    return obj


# ---------------------------------------------------------------- native WS
class GatewayWS:
    """Minimal native-protocol client (token auth, gateway-client/backend)."""

    def __init__(self, url: str, token: str = TOKEN, scopes=("operator.read", "operator.write"),
                 headers: dict | None = None):
        self.url = url
        self.token = token
        self.scopes = list(scopes)
        self.headers = dict(headers or {})   # extra handshake headers (e.g. spoofed X-Forwarded-For)
        self.ws = None
        self.hello: dict | None = None
        self.frames: list[dict] = []       # every received frame
        self._reader: asyncio.Task | None = None
        self._cond: asyncio.Condition | None = None
        self.closed: tuple | None = None

    async def connect(self, timeout: float = 15.0) -> dict:
        from websockets.asyncio.client import connect as ws_connect
        self.ws = await asyncio.wait_for(
            ws_connect(self.url, max_size=None, open_timeout=timeout, ping_interval=None, compression=None,
                       additional_headers=self.headers or None),
            timeout)
        self._cond = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        cid = "connect-" + uuid.uuid4().hex[:8]
        await self.send({"type": "req", "id": cid, "method": "connect", "params": {
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "gateway-client", "version": "0.1.0", "platform": "linux", "mode": "backend"},
            "role": "operator", "scopes": self.scopes, "auth": {"token": self.token}}})
        self.hello = await self.wait_for(lambda f: f.get("type") == "res" and f.get("id") == cid, timeout)
        return self.hello

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def _read(self) -> None:
        import websockets
        try:
            async for raw in self.ws:
                try:
                    f = json.loads(raw)
                except Exception:
                    f = {"_raw": raw}
                f["_t"] = time.monotonic()
                async with self._cond:
                    self.frames.append(f)
                    self._cond.notify_all()
        except websockets.ConnectionClosed as e:
            self.closed = (getattr(e.rcvd, "code", None), getattr(e.rcvd, "reason", None))
        finally:
            if self.closed is None:
                self.closed = (None, None)
            async with self._cond:
                self._cond.notify_all()

    async def wait_for(self, pred: Callable[[dict], bool], timeout: float, start: int = 0) -> dict:
        """First frame (index >= start) matching pred; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        async with self._cond:
            while True:
                for f in self.frames[start:]:
                    if pred(f):
                        return f
                if self.closed is not None:
                    raise ConnectionError(f"websocket closed {self.closed} while waiting")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("timed out waiting for frame")
                try:
                    await asyncio.wait_for(self._cond.wait(), left)
                except asyncio.TimeoutError:
                    pass

    async def rpc(self, method: str, params: dict, timeout: float = 30.0) -> dict:
        rid = "rpc-" + uuid.uuid4().hex[:8]
        n = len(self.frames)
        await self.send({"type": "req", "id": rid, "method": method, "params": params})
        return await self.wait_for(lambda f: f.get("type") == "res" and f.get("id") == rid, timeout, start=n)

    async def close(self) -> None:
        if self.ws is not None:
            try:
                await self.ws.close()
            except Exception:
                pass
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 5)
            except Exception:
                self._reader.cancel()


def die(msg: str) -> None:
    print(f"FATAL: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)
