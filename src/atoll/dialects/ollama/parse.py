"""Ollama requests (:mod:`atoll.wire`) -> the neutral :class:`~atoll.agent.loop.RunRequest`."""

from __future__ import annotations

import json
from typing import Any

from atoll.agent.loop import RunRequest
from atoll.client_json import TooDeep, parse_json
from atoll.dialects._neutral import neutral_message, paired, tool_specs
from atoll.errors import RequestError
from atoll.messages import GenerationOptions, Message
from atoll.wire import ChatRequest, GenerateRequest, WireMessage

# Ollama option -> (GenerationOptions field, accepted types)
_OPTIONS: dict[str, tuple[str, tuple[type, ...]]] = {
    "temperature": ("temperature", (int, float)),
    "top_p": ("top_p", (int, float)),
    "top_k": ("top_k", (int,)),
    "num_predict": ("max_tokens", (int,)),
    "stop": ("stop", (list, str)),
    "seed": ("seed", (int,)),
    "num_ctx": ("num_ctx", (int,)),
    "presence_penalty": ("presence_penalty", (int, float)),
    "frequency_penalty": ("frequency_penalty", (int, float)),
    "repeat_penalty": ("repeat_penalty", (int, float)),
}


def options_from_wire(options: dict[str, Any] | None) -> GenerationOptions:
    """Map Ollama ``options``. Nulls are skipped, unknown keys pass through, wrong types are 400."""
    result = GenerationOptions()
    for key, value in (options or {}).items():
        if value is None:
            continue
        if key not in _OPTIONS:
            result.extra[key] = value
            continue
        name, types = _OPTIONS[key]
        if isinstance(value, bool) or not isinstance(value, types):
            expected = "a list of strings" if key == "stop" else "an integer" if types == (int,) else "a number"
            raise RequestError(f"invalid option '{key}': expected {expected}, got {value!r}")
        if key == "stop" and isinstance(value, str):
            value = [value]
        if key == "num_predict" and value < 0:
            continue  # -1 (infinite) and -2 (fill context) mean "no limit"
        setattr(result, name, value)
    return result


def messages_from_wire(messages: list[WireMessage]) -> list[Message]:
    return paired([neutral_message(i, m.role, m.content, thinking=m.thinking, images=m.images,
                                   tool_calls=m.tool_calls, tool_name=m.tool_name, tool_call_id=m.tool_call_id)
                   for i, m in enumerate(messages)])


def chat_run_request(body: ChatRequest) -> RunRequest:
    return RunRequest(messages_from_wire(body.messages or []), tool_specs(body.tools),
                      options_from_wire(body.options), body.format, body.think)


def generate_run_request(body: GenerateRequest, history: list[Message] | None = None) -> RunRequest:
    """One user turn (after ``history``, the conversation a stateless ``context`` carried, and the
    request's ``system``, if any)."""
    if body.raw and (body.system or body.template or body.context):
        raise RequestError("raw mode does not support template, system, or context")
    messages = list(history or [])
    if body.system:
        messages.append(Message(role="system", content=body.system))
    messages.append(Message(role="user", content=body.prompt or "", images=body.images or None))
    return RunRequest(messages, [], options_from_wire(body.options), body.format, body.think)


#: Marks a generate ``context`` that carries a session id ("atol").
SESSION_CONTEXT_MARK = 0x61746F6C


def context_for_session(session_id: str) -> list[int]:
    """The ``context`` a generate reply carries, so the client's next request continues the session."""
    return [SESSION_CONTEXT_MARK, *(ord(ch) for ch in session_id)]


def session_from_context(context: list[int] | None) -> str | None:
    if not context or context[0] != SESSION_CONTEXT_MARK or len(context) > 200:
        return None
    try:
        return "".join(chr(n) for n in context[1:])
    except (ValueError, OverflowError):
        return None


CONVERSATION_CONTEXT_MARK = 0x61746F63  # "atoc": a generate ``context`` that carries the conversation
_CONTEXT_ROLES = ("system", "user", "assistant")


def context_for_conversation(messages: list[Message]) -> list[int]:
    """The conversation as Ollama-style context integers (the bytes of a compact JSON list of
    ``[role, content]``): a client that echoes ``context`` continues it, no server-side state."""
    turns = [[m.role, m.content] for m in messages if m.role in _CONTEXT_ROLES]
    return [CONVERSATION_CONTEXT_MARK, *json.dumps(turns, separators=(",", ":")).encode()]


def conversation_from_context(context: list[int] | None) -> list[Message]:
    """The messages a ``context`` from :func:`context_for_conversation` carries; [] for any other
    context (another server's token ids, or a session context)."""
    if not context or context[0] != CONVERSATION_CONTEXT_MARK:
        return []
    try:
        turns = parse_json(bytes(context[1:]))
    except TooDeep as exc:
        raise RequestError("invalid request: context: its JSON is nested too deeply") from exc
    except (ValueError, TypeError):
        return []
    if not isinstance(turns, list):
        return []
    return [Message(role=turn[0], content=turn[1]) for turn in turns
            if isinstance(turn, list) and len(turn) == 2 and turn[0] in _CONTEXT_ROLES and isinstance(turn[1], str)]
