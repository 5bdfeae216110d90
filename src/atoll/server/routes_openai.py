"""The OpenAI-compatible API (``/v1``): a translator in front of the same agent run ``/api/chat`` uses.

A request is translated to the neutral ``RunRequest`` (``openai_wire``), run through ``converse``
exactly as the native routes do, and the agent's events are encoded as OpenAI objects: one
``chat.completion`` when not streaming, or SSE ``chat.completion.chunk`` events (role first,
content deltas, a finish chunk with an empty delta, a usage chunk only when asked for, then
``data: [DONE]``). Streaming reuses ``stream_ndjson`` with an SSE encoder, so errors and client
disconnects behave the same in both dialects. Embeddings live in ``routes_embed``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from atoll.agent.activity import progress
from atoll.agent.events import AgentEvent, ClientToolCalls, RunFinished
from atoll.agent.loop import RunRequest
from atoll.messages import TextDelta, ThinkingDelta, ToolCall
from atoll.server.body import read_body
from atoll.server.context import caller, runtime_of
from atoll.server.conversation import converse
from atoll.server.errors import openai_error_response
from atoll.server.openai_wire import (
    FINGERPRINT,
    ChatCompletionRequest,
    CompletionRequest,
    FunctionCallBody,
    ModelObject,
    ToolCallBody,
    UsageBody,
    chat_run_request,
    completion_run_request,
    openai_error_chunk,
)
from atoll.server.runtime import AgentRuntime
from atoll.server.streaming import collect, stream_ndjson
from atoll.sessions.ids import check_session_id

router = APIRouter()

SSE = "text/event-stream"
#: Marks the end of an SSE stream; encoded as ``data: [DONE]``.
DONE: dict[str, Any] = {"[DONE]": True}


def sse_event(chunk: dict[str, Any]) -> bytes:
    if chunk is DONE:
        return b"data: [DONE]\n\n"
    return b"data: " + json.dumps(chunk, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def _tool_calls(calls: list[ToolCall], first_index: int = 0) -> list[dict[str, Any]]:
    return [ToolCallBody(id=c.id, index=first_index + i,
                         function=FunctionCallBody(name=c.name, arguments=json.dumps(c.arguments))).model_dump()
            for i, c in enumerate(calls)]


def _usage(event: RunFinished) -> dict[str, int]:
    prompt, completion = event.usage.prompt_tokens, event.usage.completion_tokens
    return UsageBody(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion).model_dump()


@dataclass
class _Encoder:
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

    def chunks(self, event: AgentEvent) -> list[dict[str, Any]]:
        """The stream chunks for one agent event."""
        if isinstance(event, TextDelta):
            self.content += event.text
            return [self.delta(content=event.text)]
        if isinstance(event, ThinkingDelta):
            self.reasoning += event.text
            return [self.delta(reasoning=event.text)]
        if isinstance(event, ClientToolCalls):
            first = len(self.tool_calls)
            self.tool_calls.extend(event.calls)
            return [self.delta(tool_calls=_tool_calls(event.calls, first))]
        if isinstance(event, RunFinished):
            return self.closing(event)
        return [{**self.delta(), "atoll": progress(event)}]  # an extension field the openai SDK keeps

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

    def whole(self, event: RunFinished) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning:
            message["reasoning"] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = _tool_calls(self.tool_calls)
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason(event), "logprobs": None}
        return self.envelope(self.whole_object, [choice], _usage(event))


class _TextEncoder(_Encoder):
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

    def closing(self, event: RunFinished) -> list[dict[str, Any]]:
        self.started = True
        return super().closing(event)

    def whole(self, event: RunFinished) -> dict[str, Any]:
        choice = self.choice({"text": self.content}, self.finish_reason(event))
        return self.envelope(self.whole_object, [choice], _usage(event))


async def _encode(encoder: _Encoder, events: AsyncIterator[AgentEvent], *,
                  collected: bool) -> AsyncIterator[dict[str, Any]]:
    async for event in events:
        chunks = encoder.chunks(event)
        if collected and isinstance(event, RunFinished):
            yield encoder.whole(event)
        elif not collected:
            for chunk in chunks:
                yield chunk
    if not collected:
        yield DONE


async def _respond(request: Request, runtime: AgentRuntime, run: RunRequest, encoder: _Encoder, *,
                   streaming: bool) -> Response:
    session_id = check_session_id(request.headers.get("x-session-id"), "X-Session-ID")
    headers = {"X-Session-ID": session_id} if session_id else None
    events = converse(runtime, run, session_id=session_id, owner=caller(request),
                      headers=request.headers)
    chunks = _encode(encoder, events, collected=not streaming)
    if streaming:
        return await stream_ndjson(chunks, headers=headers, encode=sse_event, media_type=SSE,
                                   error_chunk=openai_error_chunk, error_response_for=openai_error_response)
    return JSONResponse(await collect(request, chunks), headers=headers)


def _model_object(runtime: AgentRuntime, model_id: str) -> dict[str, Any]:
    return ModelObject(id=model_id, created=int(runtime.modified_at.timestamp())).model_dump()


@router.get("/v1/models")
async def list_models(runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    return {"object": "list", "data": [_model_object(runtime, runtime.model_tag)]}


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    return _model_object(runtime, runtime.check_model(model_id))


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, runtime: AgentRuntime = Depends(runtime_of)) -> Response:
    body = await read_body(request, ChatCompletionRequest)
    model = runtime.check_model(body.model)
    run = chat_run_request(body)
    runtime.require_ready()
    encoder = _Encoder(model, include_usage=body.include_usage)
    return await _respond(request, runtime, run, encoder, streaming=body.stream)


@router.post("/v1/completions")
async def completions(request: Request, runtime: AgentRuntime = Depends(runtime_of)) -> Response:
    body = await read_body(request, CompletionRequest)
    model = runtime.check_model(body.model)
    runtime.require_ready()
    encoder = _TextEncoder(model, include_usage=body.include_usage)
    return await _respond(request, runtime, completion_run_request(body), encoder, streaming=body.stream)
