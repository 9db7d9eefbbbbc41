#!/usr/bin/env python3
"""Real Python clients against clawbridge's OpenAI surface beyond chat
completions (base_url = clawbridge /v1, api_key = gateway token):

- openai-python: models.list / models.retrieve, responses.create (non-stream and
  stream=True), the responses.stream helper, previous_response_id (the second
  turn's request to the fake LLM carries the first turn), wrong key -> 401;
- langchain-openai ChatOpenAI: invoke and stream (chat completions);
- openai-agents with OpenAIChatCompletionsModel: Runner.run and
  Runner.run_streamed; and openai-agents' OpenAIResponsesModel, which the
  built-in (2026.9.6) refuses: its input items lack `type`, so the strict
  schema answers 400 `input: Invalid input` (BadRequestError). clawbridge must
  answer the same. Tracing is disabled (no traffic beyond loopback).

Every check asserts the fake LLM's configured reply (read from /_fake/config),
not just the absence of an exception. Chat completions through the plain
openai SDKs are in sdk_python.py / sdk_node.mjs.
"""
from __future__ import annotations

import asyncio
import os
import sys
import time

os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"  # before `agents` is imported

import httpx  # noqa: E402
import openai  # noqa: E402
from openai import AsyncOpenAI, OpenAI  # noqa: E402

from common import BRIDGE_URL, TOKEN, FakeLog, Reporter, fake_config  # noqa: E402
from api_compare import split_upstream  # noqa: E402

R = Reporter("clients-python")
MODEL = "openclaw/main"
MODEL_IDS = ["openclaw", "openclaw/default", "openclaw/main"]  # the kit's config: one agent, `main`
# What the built-in answers openai-agents' Responses model (recorded from 2026.9.6).
AGENTS_RESPONSES_ERROR = (400, {"error": {"message": "input: Invalid input", "type": "invalid_request_error"}})


def guard(name):
    """Decorator: an exception fails the named check instead of the suite."""
    def wrap(fn):
        def run(*a, **kw):
            try:
                return fn(*a, **kw)
            except Exception as e:  # noqa: BLE001
                R.check(name, False, f"{type(e).__name__}: {str(e)[:300]}")
        return run
    return wrap


@guard("openai-python models")
def openai_models(client: OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    R.check("openai-python models.list: ids", ids == MODEL_IDS, f"{ids}")
    m = client.models.retrieve(MODEL)
    R.check("openai-python models.retrieve(openclaw/main)", (m.id, m.object, m.owned_by) == (MODEL, "model", "openclaw"),
            f"{m.id} {m.object} {m.owned_by}")
    try:
        client.models.retrieve("openclaw/nosuch")
        R.check("openai-python models.retrieve(unknown): NotFoundError", False, "no exception")
    except openai.NotFoundError as e:
        R.check("openai-python models.retrieve(unknown): NotFoundError 404", e.status_code == 404, f"{e.status_code}")


@guard("openai-python responses.create")
def openai_responses(client: OpenAI, want: str) -> None:
    r = client.responses.create(model=MODEL, input="hi from openai-python responses")
    R.check("openai-python responses.create: output_text", r.output_text == want, repr(r.output_text))
    R.check("openai-python responses.create: id resp_, status completed, model echoed",
            r.id.startswith("resp_") and r.status == "completed" and r.model == MODEL, f"{r.id} {r.status} {r.model}")
    R.check("openai-python responses.create: usage",
            r.usage is not None and r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens > 0, f"{r.usage}")

    types, deltas, final = [], [], None
    for ev in client.responses.create(model=MODEL, input="hi from a raw stream", stream=True):
        types.append(ev.type)
        if ev.type == "response.output_text.delta":
            deltas.append(ev.delta)
        if ev.type == "response.completed":
            final = ev.response
    R.check("openai-python responses.create(stream=True): joined deltas", "".join(deltas) == want,
            f"{''.join(deltas)!r} in {len(deltas)} deltas")
    R.check("openai-python responses.create(stream=True): created first, completed last",
            types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed",
            f"{types[:2]}...{types[-1:]}")
    R.check("openai-python responses.create(stream=True): completed response text",
            final is not None and final.output_text == want, repr(final and final.output_text))


@guard("openai-python responses.stream")
def openai_responses_stream(client: OpenAI, want: str) -> None:
    deltas = []
    with client.responses.stream(model=MODEL, input="hi from the stream helper", instructions="Be brief.") as s:
        for ev in s:
            if ev.type == "response.output_text.delta":
                deltas.append(ev.delta)
        final = s.get_final_response()
    R.check("openai-python responses.stream: deltas", "".join(deltas) == want, f"{''.join(deltas)!r}")
    R.check("openai-python responses.stream: final response", final.output_text == want and final.status == "completed",
            f"{final.output_text!r} {final.status}")


@guard("openai-python previous_response_id")
def openai_previous(client: OpenAI, want: str) -> None:
    log = FakeLog()
    first = client.responses.create(model=MODEL, input=f"sdk-first-{os.getpid()}")
    second = client.responses.create(model=MODEL, input=f"sdk-second-{os.getpid()}", previous_response_id=first.id)
    time.sleep(0.1)
    ups = log.new_entries()
    R.check("openai-python previous_response_id: two turns, reply", len(ups) == 2 and second.output_text == want,
            f"{len(ups)} upstream calls, {second.output_text!r}")
    if len(ups) == 2:
        _, history, prompt = split_upstream(ups[1])
        hist = " | ".join(str(m.get("content"))[:80] for m in history)
        R.check("openai-python previous_response_id: the second turn's LLM request carries the first",
                f"sdk-first-{os.getpid()}" in hist and any(m.get("role") == "assistant" and m.get("content") == want
                                                          for m in history)
                and f"sdk-second-{os.getpid()}" in prompt, hist[:200])


@guard("openai-python wrong key")
def openai_wrong_key() -> None:
    bad = OpenAI(base_url=BRIDGE_URL + "/v1", api_key="wrong-key", max_retries=0, timeout=30)
    for label, call in (("responses.create", lambda: bad.responses.create(model=MODEL, input="hi")),
                        ("models.list", lambda: list(bad.models.list()))):
        try:
            call()
            R.check(f"openai-python wrong key {label}: AuthenticationError", False, "no exception")
        except openai.AuthenticationError as e:
            R.check(f"openai-python wrong key {label}: AuthenticationError 401", e.status_code == 401, f"{e.status_code}")


@guard("langchain-openai ChatOpenAI")
def langchain(want: str) -> None:
    import langchain_openai
    from langchain_openai import ChatOpenAI
    print(f"INFO clients-python: langchain-openai {getattr(langchain_openai, '__version__', '?')}")
    llm = ChatOpenAI(model=MODEL, base_url=BRIDGE_URL + "/v1", api_key=TOKEN, max_retries=0, timeout=90)
    msg = llm.invoke("hi from langchain")
    R.check("langchain ChatOpenAI.invoke: content", msg.content == want, repr(msg.content))
    parts = [c.content for c in llm.stream("hi from langchain stream")]
    R.check("langchain ChatOpenAI.stream: joined chunks", "".join(parts) == want and len([p for p in parts if p]) >= 1,
            f"{''.join(parts)!r} in {len(parts)} chunks")


async def agents_part(want: str) -> None:
    import agents
    from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner, set_tracing_disabled
    set_tracing_disabled(True)
    print(f"INFO clients-python: openai-agents {getattr(agents, '__version__', '?')}")
    client = AsyncOpenAI(base_url=BRIDGE_URL + "/v1", api_key=TOKEN, max_retries=0, timeout=90)
    chat = Agent(name="e2e", instructions="Be brief.",
                 model=OpenAIChatCompletionsModel(model=MODEL, openai_client=client))
    try:
        r = await Runner.run(chat, "hi from openai-agents")
        R.check("openai-agents chat-completions model: Runner.run final_output", r.final_output == want,
                repr(r.final_output))
    except Exception as e:  # noqa: BLE001
        R.check("openai-agents chat-completions model: Runner.run", False, f"{type(e).__name__}: {e}")
    try:
        rs = Runner.run_streamed(chat, "hi from openai-agents, streamed")
        deltas = []
        async for ev in rs.stream_events():
            if ev.type == "raw_response_event" and getattr(ev.data, "type", "") == "response.output_text.delta":
                deltas.append(ev.data.delta)
        R.check("openai-agents chat-completions model: Runner.run_streamed deltas + final_output",
                "".join(deltas) == want and rs.final_output == want, f"{deltas} {rs.final_output!r}")
    except Exception as e:  # noqa: BLE001
        R.check("openai-agents chat-completions model: Runner.run_streamed", False, f"{type(e).__name__}: {e}")
    resp = Agent(name="e2e", instructions="Be brief.", model=OpenAIResponsesModel(model=MODEL, openai_client=client))
    log = FakeLog()
    try:
        r = await Runner.run(resp, "hi from openai-agents' responses model")
        R.check("openai-agents responses model: BadRequestError like the built-in", False,
                f"no error: final_output {r.final_output!r}")
    except openai.BadRequestError as e:
        try:
            body = e.response.json()
        except Exception:  # noqa: BLE001
            body = e.response.text
        R.check("openai-agents responses model: 400 `input: Invalid input` (as the built-in)",
                (e.status_code, body) == AGENTS_RESPONSES_ERROR, f"{e.status_code} {body}")
    except Exception as e:  # noqa: BLE001
        R.check("openai-agents responses model: BadRequestError", False, f"{type(e).__name__}: {e}")
    time.sleep(0.1)
    R.check("openai-agents responses model: no turn ran", not log.new_entries())
    await client.close()


def main() -> int:
    with httpx.Client(timeout=10) as c:
        want = "".join(fake_config(c)["reply"])
    print(f"INFO clients-python: openai {openai.__version__}, {BRIDGE_URL}, expecting reply {want!r} (from /_fake/config)")
    client = OpenAI(base_url=BRIDGE_URL + "/v1", api_key=TOKEN, max_retries=0, timeout=90)
    openai_models(client)
    openai_responses(client, want)
    openai_responses_stream(client, want)
    openai_previous(client, want)
    openai_wrong_key()
    langchain(want)
    asyncio.run(agents_part(want))
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
