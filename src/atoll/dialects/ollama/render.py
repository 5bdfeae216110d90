"""Agent events -> ``/api/chat`` and ``/api/generate`` chunks (NDJSON lines when streamed).

Chunks are built as plain dicts on this hot path; their shape is the contract in :mod:`atoll.wire`
(``ChatChunk``, ``GenerateChunk``), which the tests hold them to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from atoll.agent.activity import progress
from atoll.agent.events import AgentEvent, ClientToolCalls, RunFinished
from atoll.dialects.ollama.parse import context_for_conversation
from atoll.messages import Message, TextDelta, ThinkingDelta, ToolCall, Usage
from atoll.wire import error_body, timestamp


def ollama_error_body(message: str, status: int) -> dict[str, Any]:
    """``{"error", "detail"}``, whatever the status (it travels in the status line)."""
    return error_body(message)


def ollama_error_chunk(message: str) -> dict[str, Any]:
    """The last line of a stream that failed after it started."""
    return {"error": message}


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
    """One reply's chunks: a chunk per event when streaming; collecting (``stream: false``), the
    events are taken in and the final chunk carries the whole reply. ``generate`` shapes them for
    ``/api/generate`` (``response`` instead of ``message``, no tool calls, the session ``context``)."""

    model: str
    generate: bool = False
    context: list[int] | None = None
    content: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    #: Without a session, ``/api/generate``'s ``context`` carries the conversation itself: the
    #: messages of this turn (earlier context included), to which the reply is added.
    conversation: list[Message] | None = None

    def chunks(self, event: AgentEvent) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            return [self._chunk(content=event.text)]
        if isinstance(event, RunFinished):
            return [self.final(event, whole=False)]
        if isinstance(event, ThinkingDelta):
            return [self._chunk(thinking=event.text)]
        if isinstance(event, ClientToolCalls):
            return [] if self.generate else [self._chunk(tool_calls=event.calls)]
        return [self._chunk(atoll=progress(event))]

    def take(self, event: AgentEvent) -> None:
        if isinstance(event, TextDelta):
            self.content += event.text
        elif isinstance(event, ThinkingDelta):
            self.thinking += event.text
        elif isinstance(event, ClientToolCalls):
            self.tool_calls.extend(event.calls)

    def reply(self, event: RunFinished) -> dict[str, Any]:
        return self.final(event, whole=True)

    def final(self, event: RunFinished, *, whole: bool) -> dict[str, Any]:
        """The one ``done: true`` chunk; ``whole``, it carries the whole reply."""
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
