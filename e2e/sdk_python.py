#!/usr/bin/env python3
"""Official OpenAI Python SDK against clawbridge (base_url = clawbridge /v1,
api_key = gateway token, model openclaw/main): non-stream, stream, wrong key."""
from __future__ import annotations

import sys

import httpx
import openai
from openai import OpenAI

from common import BRIDGE_URL, TOKEN, Reporter, fake_config

R = Reporter("sdk-python")


def main() -> int:
    with httpx.Client(timeout=10) as c:
        cfg = fake_config(c)
    want = "".join(cfg["reply"])
    print(f"INFO sdk-python: openai {openai.__version__}, expecting reply {want!r} (from /_fake/config)")
    client = OpenAI(base_url=BRIDGE_URL + "/v1", api_key=TOKEN, max_retries=0, timeout=90)
    msgs = [{"role": "user", "content": "hi from the python sdk"}]
    try:
        r = client.chat.completions.create(model="openclaw/main", messages=msgs)
        R.check("non-stream: content", r.choices[0].message.content == want, repr(r.choices[0].message.content))
        R.check("non-stream: finish_reason stop, role assistant",
                r.choices[0].finish_reason == "stop" and r.choices[0].message.role == "assistant",
                f"{r.choices[0].finish_reason}/{r.choices[0].message.role}")
        R.check("non-stream: model echoed, id chatcmpl_", r.model == "openclaw/main" and r.id.startswith("chatcmpl_"),
                f"{r.model} {r.id}")
        R.check("non-stream: usage present", r.usage is not None and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens,
                f"{r.usage}")
    except Exception as e:  # noqa: BLE001
        R.check("non-stream completion", False, f"{type(e).__name__}: {e}")
    try:
        parts, finish, roles, usage = [], None, [], None
        stream = client.chat.completions.create(model="openclaw/main", messages=msgs, stream=True,
                                                stream_options={"include_usage": True})
        for ch in stream:
            if ch.usage is not None:
                usage = ch.usage
            for choice in ch.choices:
                if choice.delta.role:
                    roles.append(choice.delta.role)
                if choice.delta.content:
                    parts.append(choice.delta.content)
                if choice.finish_reason:
                    finish = choice.finish_reason
        R.check("stream: joined deltas", "".join(parts) == want, f"{''.join(parts)!r} in {len(parts)} deltas")
        R.check("stream: role assistant first, finish stop", roles[:1] == ["assistant"] and finish == "stop", f"{roles} {finish}")
        R.check("stream: usage chunk (include_usage)", usage is not None and usage.total_tokens > 0, f"{usage}")
    except Exception as e:  # noqa: BLE001
        R.check("stream completion", False, f"{type(e).__name__}: {e}")
    bad = OpenAI(base_url=BRIDGE_URL + "/v1", api_key="wrong-key", max_retries=0, timeout=30)
    try:
        bad.chat.completions.create(model="openclaw/main", messages=msgs)
        R.check("wrong key: AuthenticationError", False, "no exception raised")
    except openai.AuthenticationError as e:
        R.check("wrong key: AuthenticationError 401", e.status_code == 401, f"status {e.status_code}")
    except Exception as e:  # noqa: BLE001
        R.check("wrong key: AuthenticationError", False, f"{type(e).__name__}: {e}")
    try:
        bad.chat.completions.create(model="openclaw/main", messages=msgs, stream=True)
        R.check("wrong key (stream): AuthenticationError", False, "no exception raised")
    except openai.AuthenticationError as e:
        R.check("wrong key (stream): AuthenticationError 401", e.status_code == 401, f"status {e.status_code}")
    except Exception as e:  # noqa: BLE001
        R.check("wrong key (stream): AuthenticationError", False, f"{type(e).__name__}: {e}")
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
