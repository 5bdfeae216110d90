"""A deterministic, instant LLM for tests and benchmarks. TEST-ONLY: it lives under ``tests/``.

Agents select it with ``[llm] provider = "tests.support.scripted:ScriptedProvider"`` (the server
process needs the repository root on ``PYTHONPATH``). It reads commands from the last message:

==============================  ========================================================
last message                    reply
==============================  ========================================================
tool result(s)                  ``Tool results: name=content; ...`` (what the tools said)
``/tool NAME {json}``           one tool call (several separated by `` ;; ``)
``/say TEXT``                   ``TEXT`` verbatim, in small pieces (e.g. a tool call written as text)
``/error MESSAGE``              raises ProviderError before any output
``/error-after MESSAGE``        streams one word, then raises
``/cancelled-after``            streams one word, then raises a stray CancelledError (a BaseException)
``/slow N SECONDS``             N words, one every SECONDS (for disconnects and timeouts)
``/count N``                    N words ``w1 w2 ...``
``/system``                     the system messages, joined with `` | ``
``/history``                    ``role:content`` of every message, joined with `` | ``
``/options``                    the generation options the provider got, as one JSON word
anything else                   ``You said: <text>``, word by word
==============================  ========================================================

With ``format`` set it answers JSON (schema-shaped when a schema is given); ``max_tokens`` cuts
the reply with ``done_reason`` ``length``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import anyio

from atoll.config import LLMConfig
from atoll.errors import ProviderError
from atoll.messages import (
    Finished,
    Message,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCall,
    ToolCallRequested,
    Usage,
)
from atoll.providers.base import ModelProfile


class ScriptedProvider:
    name = "scripted"
    base_url = None

    def __init__(self, config: LLMConfig) -> None:
        self.model = config.model or "scripted"
        self.profile = ModelProfile(family="scripted", format="gguf", parameter_size="0M",
                                    context_length=4096, embedding_length=8, supports_embeddings=True)

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def embed(self, texts: list[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            digest = hashlib.sha256(text.encode()).digest()
            raw = [b - 127.5 for b in digest[:8]]
            norm = math.sqrt(sum(x * x for x in raw)) or 1.0
            vectors.append([x / norm for x in raw])
        return vectors

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        prompt_tokens = sum(len(m.content.split()) + 1 for m in request.messages)
        last = request.messages[-1] if request.messages else Message(role="user", content="")
        text = last.content.strip()
        if last.role == "tool":
            words = _tool_summary(request.messages).split(" ")
        elif text.startswith("/tool "):
            for index, part in enumerate(text[len("/tool "):].split(" ;; ")):
                name, _, args = part.strip().partition(" ")
                arguments = json.loads(args.translate(_PLAIN_QUOTES)) if args.strip() else {}
                yield ToolCallRequested(ToolCall(id=f"call_script{index}", name=name, arguments=arguments))
            yield Finished("stop", Usage(prompt_tokens=prompt_tokens, completion_tokens=1))
            return
        elif text.startswith("/say "):
            said = text[len("/say "):]
            for start in range(0, len(said), 7):
                yield TextDelta(said[start:start + 7])
            yield Finished("stop", Usage(prompt_tokens=prompt_tokens, completion_tokens=len(said) // 4 + 1))
            return
        elif text.startswith("/error "):
            raise ProviderError(text[len("/error "):], status=500, model=self.model)
        elif text.startswith("/error-after "):
            yield TextDelta("partial")
            raise ProviderError(text[len("/error-after "):], status=500, model=self.model)
        elif text == "/cancelled-after":
            yield TextDelta("partial")
            raise asyncio.CancelledError("a cancellation leaked from a library")
        elif text.startswith("/slow "):
            count, delay = text.split()[1:3]
            for i in range(int(count)):
                await anyio.sleep(float(delay))
                yield TextDelta(f"s{i + 1} ")
            yield Finished("stop", Usage(prompt_tokens=prompt_tokens, completion_tokens=int(count)))
            return
        elif text.startswith("/count "):
            words = [f"w{i + 1}" for i in range(int(text.split()[1]))]
        elif text == "/system":
            words = " | ".join(m.content for m in request.messages if m.role == "system").split(" ")
        elif text == "/options":
            shown = {k: v for k, v in dataclasses.asdict(request.options).items() if v not in (None, {})}
            words = [json.dumps(shown, sort_keys=True)]
        elif text == "/history":
            words = " | ".join(f"{m.role}:{m.content}" for m in request.messages).split(" ")
        else:
            words = f"You said: {text}".split(" ")
        if request.format is not None:
            words = [json.dumps(_fill(request.format, text))]
        async for event in _emit(words, request.options.max_tokens, prompt_tokens):
            yield event


#: Rich-text chat inputs (Open WebUI's) turn typed quotes into typographic ones.
_PLAIN_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


async def _emit(words: list[str], limit: int | None, prompt_tokens: int) -> AsyncIterator[ModelEvent]:
    reason = "stop"
    if limit is not None and len(words) > limit:
        words, reason = words[:limit], "length"
    for i, word in enumerate(words):
        yield TextDelta(word if i == 0 else " " + word)
    yield Finished(reason, Usage(prompt_tokens=prompt_tokens, completion_tokens=len(words),
                                 prompt_eval_duration_ns=1000, eval_duration_ns=1000 * max(1, len(words))))


def _tool_summary(messages: list[Message]) -> str:
    trailing: list[Message] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        trailing.insert(0, message)
    parts = [f"{m.tool_name or 'tool'}={m.content}" for m in trailing]
    return "Tool results: " + "; ".join(parts)


def _fill(schema: Any, text: str) -> Any:
    """A value shaped like ``schema`` ("json" means a small object)."""
    if not isinstance(schema, dict):
        return {"echo": text}
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {key: _fill(sub, text) for key, sub in props.items()} or {"echo": text}
    if kind == "array":
        return [_fill(schema.get("items", {"type": "string"}), text)]
    return {"string": text, "integer": 42, "number": 1.5, "boolean": True, "null": None}.get(kind, text)
