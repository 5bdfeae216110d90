"""The OpenAI-compatible API (``/v1``): a translator in front of the same agent run ``/api/chat`` uses.

A request is parsed into the neutral ``RunRequest`` (:mod:`atoll.dialects.openai.parse`), run
through ``converse`` exactly as the native routes do, and the agent's events are rendered as OpenAI
objects (:mod:`atoll.dialects.openai.render`), collected or streamed as SSE; errors and client
disconnects behave the same in both dialects. Embeddings live in ``routes_embed``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from starlette.routing import Route

from atoll.agent.loop import RunRequest
from atoll.dialects.openai.parse import chat_run_request, completion_run_request
from atoll.dialects.openai.render import ChatRenderer, TextRenderer, openai_error_body
from atoll.dialects.openai.wire import ChatCompletionRequest, CompletionRequest, ModelObject
from atoll.server.body import read_body
from atoll.server.context import caller, runtime_from, runtime_of
from atoll.server.conversation import converse
from atoll.server.runtime import AgentRuntime
from atoll.server.streaming import JSONReply, collect, rendered, stream_sse
from atoll.sessions.ids import check_session_id

router = APIRouter()


async def _respond(request: Request, runtime: AgentRuntime, run: RunRequest, renderer: ChatRenderer, *,
                   streaming: bool) -> Response:
    session_id = check_session_id(request.headers.get("x-session-id"), "X-Session-ID")
    headers = {"X-Session-ID": session_id} if session_id else None
    events = converse(runtime, run, session_id=session_id, owner=caller(request), headers=request.headers)
    if streaming:
        return await stream_sse(rendered(renderer, events), error_body=openai_error_body, headers=headers)
    return JSONReply(await collect(request, renderer, events), headers=headers)


def _model_object(runtime: AgentRuntime, model_id: str) -> dict[str, Any]:
    return ModelObject(id=model_id, created=int(runtime.modified_at.timestamp())).model_dump()


@router.get("/v1/models")
async def list_models(runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    return {"object": "list", "data": [_model_object(runtime, runtime.model_tag)]}


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    return _model_object(runtime, runtime.check_model(model_id))


async def chat_completions(request: Request) -> Response:
    runtime = runtime_from(request)
    body = await read_body(request, ChatCompletionRequest)
    model = runtime.check_model(body.model)
    run = chat_run_request(body)
    runtime.require_ready()
    renderer = ChatRenderer(model, include_usage=body.include_usage)
    return await _respond(request, runtime, run, renderer, streaming=body.stream)


async def completions(request: Request) -> Response:
    runtime = runtime_from(request)
    body = await read_body(request, CompletionRequest)
    model = runtime.check_model(body.model)
    runtime.require_ready()
    renderer = TextRenderer(model, include_usage=body.include_usage)
    return await _respond(request, runtime, completion_run_request(body), renderer, streaming=body.stream)


#: The hot paths as plain Starlette routes, like ``routes_ollama.plain_routes`` (and for the same reason).
plain_routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
]
