"""Agent events -> OpenAI objects: one ``chat.completion`` when collected, or the
``chat.completion.chunk`` events of an SSE stream (role first, content deltas, a finish chunk with
an empty delta, a usage chunk only when asked for; the stream adds ``data: [DONE]``).
``/v1/completions`` gets the same as ``text_completion`` objects."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from atoll.agent.activity import progress
from atoll.agent.events import AgentEvent, ClientToolCalls, RunFinished
from atoll.dialects.openai.wire import FunctionCallBody, ToolCallBody, UsageBody
from atoll.messages import TextDelta, ThinkingDelta, ToolCall

#: What Ollama puts in ``system_fingerprint``; some clients log it, none check it.
FINGERPRINT = "fp_ollama"

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error"}


def openai_error_body(message: str, status: int) -> dict[str, Any]:
    """The error object the OpenAI SDK turns into its exception text (mid-stream: status 500)."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _tool_calls(calls: list[ToolCall], first_index: int = 0) -> list[dict[str, Any]]:
    return [ToolCallBody(id=c.id, index=first_index + i,
                         function=FunctionCallBody(name=c.name, arguments=json.dumps(c.arguments))).model_dump()
            for i, c in enumerate(calls)]


def _usage(event: RunFinished) -> dict[str, int]:
    prompt, completion = event.usage.prompt_tokens, event.usage.completion_tokens
    return UsageBody(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion).model_dump()


@dataclass
class ChatRenderer:
    """Shared state of one OpenAI response: id, timestamp (the same on every chunk), what was said."""

    model: str
    include_usage: bool = False
    created: int = field(default_factory=lambda: int(time.time()))
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    started: bool = False
    prefix = "chatcmpl"
    chunk_object = "chat.completion.chunk"
    whole_object = "chat.completion"

    def __post_init__(self) -> None:
        self.id = f"{self.prefix}-{uuid.uuid4().hex[:24]}"

    def envelope(self, obj: str, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                                "system_fingerprint": FINGERPRINT, "choices": choices}
        if usage is not None:
            body["usage"] = usage
        return body

    def finish_reason(self, event: RunFinished) -> str:
        return "tool_calls" if self.tool_calls else event.reason

    def take(self, event: AgentEvent) -> None:
        if isinstance(event, TextDelta):
            self.content += event.text
        elif isinstance(event, ThinkingDelta):
            self.reasoning += event.text
        elif isinstance(event, ClientToolCalls):
            self.tool_calls.extend(event.calls)

    def chunks(self, event: AgentEvent) -> list[dict[str, Any]]:
        """The stream chunks for one agent event; the agent's own tool progress rides in an ``atoll``
        extension field of an empty delta (which the openai SDK keeps)."""
        if isinstance(event, TextDelta):
            return [self.delta(content=event.text)]
        if isinstance(event, ThinkingDelta):
            return [self.delta(reasoning=event.text)]
        if isinstance(event, ClientToolCalls):
            first = len(self.tool_calls)
            self.tool_calls.extend(event.calls)
            return [self.delta(tool_calls=_tool_calls(event.calls, first))]
        if isinstance(event, RunFinished):
            return self.closing(event)
        return [{**self.delta(), "atoll": progress(event)}]

    def closing(self, event: RunFinished) -> list[dict[str, Any]]:
        """The finish chunk, then the usage chunk only when asked for (VS Code breaks on an
        unrequested chunk with empty ``choices``); the role goes first even for an empty reply."""
        chunks = [] if self.started else [self.delta(content="")]
        chunks.append(self.envelope(self.chunk_object, [self.choice({}, self.finish_reason(event))]))
        if self.include_usage:
            chunks.append(self.envelope(self.chunk_object, [], _usage(event)))
        return chunks

    def delta(self, **fields: Any) -> dict[str, Any]:
        delta: dict[str, Any] = {} if self.started else {"role": "assistant"}
        self.started = True
        delta.update(fields)
        return self.envelope(self.chunk_object, [self.choice(delta, None)])

    def choice(self, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "finish_reason": finish_reason}

    def reply(self, event: RunFinished) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning:
            message["reasoning"] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = _tool_calls(self.tool_calls)
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason(event), "logprobs": None}
        return self.envelope(self.whole_object, [choice], _usage(event))


class TextRenderer(ChatRenderer):
    """``/v1/completions``: the same stream, shaped as ``text_completion`` objects."""

    prefix = "cmpl"
    chunk_object = whole_object = "text_completion"

    def delta(self, **fields: Any) -> dict[str, Any]:
        self.started = True
        return self.envelope(self.chunk_object, [self.choice({"text": fields.get("content", "")}, None)])

    def choice(self, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        return {"text": delta.get("text", ""), "index": 0, "logprobs": None, "finish_reason": finish_reason}

    def chunks(self, event: AgentEvent) -> list[dict[str, Any]]:
        return [] if isinstance(event, ThinkingDelta | ClientToolCalls) else super().chunks(event)

    def take(self, event: AgentEvent) -> None:
        if isinstance(event, TextDelta):
            self.content += event.text

    def closing(self, event: RunFinished) -> list[dict[str, Any]]:
        self.started = True
        return super().closing(event)

    def reply(self, event: RunFinished) -> dict[str, Any]:
        choice = self.choice({"text": self.content}, self.finish_reason(event))
        return self.envelope(self.whole_object, [choice], _usage(event))
