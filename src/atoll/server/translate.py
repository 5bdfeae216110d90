"""Ollama wire types <-> the neutral types the agent loop uses, and agent events -> wire chunks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from atoll.agent.activity import progress
from atoll.agent.events import AgentEvent, ClientToolCalls, RunFinished
from atoll.errors import RequestError
from atoll.messages import GenerationOptions, Message, TextDelta, ThinkingDelta, ToolCall, ToolSpec, Usage
from atoll.wire import WireMessage, WireTool, timestamp

_ROLES = ("system", "user", "assistant", "tool")

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


def _message(wire: WireMessage, index: int) -> Message:
    if wire.role not in _ROLES:
        raise RequestError(f"messages[{index}].role: unknown role '{wire.role}' "
                           "(expected system, user, assistant or tool)")
    calls = [ToolCall(id=c.id or f"call_{index}_{n}", name=c.function.name, arguments=c.function.arguments)
             for n, c in enumerate(wire.tool_calls or [])]
    return Message(role=wire.role, content=wire.content or "", thinking=wire.thinking,  # type: ignore[arg-type]
                   images=wire.images or None, tool_calls=calls or None,
                   tool_name=wire.tool_name, tool_call_id=wire.tool_call_id)


def messages_from_wire(messages: list[WireMessage]) -> list[Message]:
    """Convert, then give tool results the tool name the client left out (langchain sends neither
    ``tool_name`` nor ``tool_call_id``): match by id, else by order after the calling turn."""
    result = [_message(m, i) for i, m in enumerate(messages)]
    pending: list[ToolCall] = []
    for message in result:
        if message.role == "assistant":
            pending = list(message.tool_calls or [])
        elif message.role == "tool" and pending:
            match = next((c for c in pending if c.id == message.tool_call_id), None) or pending[0]
            pending.remove(match)
            message.tool_name = message.tool_name or match.name
            message.tool_call_id = message.tool_call_id or match.id
    return result


def tools_from_wire(tools: list[WireTool] | None) -> list[ToolSpec]:
    return [
        ToolSpec(name=t.function.name, description=t.function.description or "",
                 parameters=t.function.parameters or {"type": "object", "properties": {}}, source="client")
        for t in tools or []
    ]


def metrics(usage: Usage) -> dict[str, int]:
    """The six metrics of a final chunk (:class:`~atoll.wire.Metrics`)."""
    return {
        "total_duration": usage.total_duration_ns,
        "load_duration": usage.load_duration_ns,
        "prompt_eval_count": usage.prompt_tokens,
        "prompt_eval_duration": usage.prompt_eval_duration_ns,
        "eval_count": usage.completion_tokens,
        "eval_duration": usage.eval_duration_ns,
    }


def wire_tool_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """Native tool calls (:class:`~atoll.wire.OutToolCall`): arguments stay an object."""
    return [{"id": c.id, "function": {"index": i, "name": c.name, "arguments": c.arguments}}
            for i, c in enumerate(calls)]


@dataclass
class ChunkEncoder:
    """Turns agent events into ``/api/chat`` or ``/api/generate`` chunks. One producer, two
    encodings: streaming returns a chunk per event; ``collecting`` (``stream:false``) only
    accumulates, and the final chunk carries the whole reply.

    Chunks are built as plain dicts on this hot path; their shape is the contract in
    :mod:`atoll.wire` (``ChatChunk``, ``GenerateChunk``), which the tests hold them to.
    """

    model: str
    generate: bool = False
    context: list[int] | None = None
    collecting: bool = False
    content: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    #: Without a session, ``/api/generate``'s ``context`` carries the conversation itself: the
    #: messages of this turn (earlier context included), to which the reply is added.
    conversation: list[Message] | None = None

    def chunk(self, event: AgentEvent) -> dict[str, Any] | None:
        if isinstance(event, RunFinished):
            return self.final(event)
        if isinstance(event, TextDelta):
            self.content += event.text
            return None if self.collecting else self._chunk(content=event.text)
        if isinstance(event, ThinkingDelta):
            self.thinking += event.text
            return None if self.collecting else self._chunk(thinking=event.text)
        if isinstance(event, ClientToolCalls):
            self.tool_calls.extend(event.calls)
            return None if self.collecting or self.generate else self._chunk(tool_calls=event.calls)
        return None if self.collecting else self._chunk(atoll=progress(event))

    def final(self, event: RunFinished) -> dict[str, Any]:
        """The one ``done:true`` chunk; collecting, it carries the whole reply."""
        whole = self.collecting
        body = self._chunk(content=self.content if whole else "", thinking=self.thinking if whole else None,
                           tool_calls=self.tool_calls if whole else None, done=True)
        body["done_reason"] = event.reason
        if self.generate and self.context is not None:
            body["context"] = self.context
        elif self.generate and self.conversation is not None:
            body["context"] = context_for_conversation(
                [*self.conversation, Message(role="assistant", content=self.content)])
        body.update(metrics(event.usage))
        return body

    def _chunk(self, *, content: str = "", thinking: str | None = None, tool_calls: list[ToolCall] | None = None,
               atoll: dict[str, Any] | None = None, done: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "created_at": timestamp()}
        if self.generate:
            body["response"] = content
            if thinking:
                body["thinking"] = thinking
        else:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            if tool_calls:
                message["tool_calls"] = wire_tool_calls(tool_calls)
            body["message"] = message
        body["done"] = done
        if atoll is not None:
            body["atoll"] = atoll
        return body


SESSION_CONTEXT_MARK = 0x61746F6C  # "atol": marks a generate ``context`` that carries a session id


def context_for_session(session_id: str) -> list[int]:
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
        turns = json.loads(bytes(context[1:]))
    except (ValueError, TypeError):
        return []
    if not isinstance(turns, list):
        return []
    return [Message(role=turn[0], content=turn[1]) for turn in turns
            if isinstance(turn, list) and len(turn) == 2 and turn[0] in _CONTEXT_ROLES and isinstance(turn[1], str)]
