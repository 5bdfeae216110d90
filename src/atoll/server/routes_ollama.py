"""The Ollama-native API: liveness, model listing, chat and generate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from atoll._version import OLLAMA_COMPAT_VERSION
from atoll.agent.events import AgentEvent
from atoll.dialects.ollama.parse import (
    chat_run_request,
    context_for_session,
    conversation_from_context,
    generate_run_request,
    session_from_context,
)
from atoll.dialects.ollama.render import ChunkEncoder
from atoll.server.body import read_body
from atoll.server.context import caller, runtime_from, runtime_of
from atoll.server.conversation import converse
from atoll.server.models import model_entry, show_response
from atoll.server.runtime import AgentRuntime
from atoll.server.streaming import JSONReply, collect, rendered, stream_ndjson
from atoll.sessions.ids import check_session_id
from atoll.wire import ChatRequest, GenerateRequest, ModelNameRequest, timestamp

router = APIRouter()


async def respond(request: Request, encoder: ChunkEncoder, events: AsyncIterator[AgentEvent], *,
                  streaming: bool, session_id: str | None) -> Response:
    headers = {"X-Session-ID": session_id} if session_id else None
    if streaming:
        return await stream_ndjson(rendered(encoder, events), headers=headers)
    return JSONReply(await collect(request, encoder, events), headers=headers)


def _load_reply(model: str, *, unload: bool, generate: bool) -> JSONResponse:
    """What Ollama answers to an empty prompt: the model is (un)loaded, nothing generated."""
    body: dict[str, Any] = {"model": model, "created_at": timestamp()}
    if generate:
        body["response"] = ""
    else:
        body["message"] = {"role": "assistant", "content": ""}
    body |= {"done": True, "done_reason": "unload" if unload else "load"}
    return JSONResponse(body)


async def chat(request: Request) -> Response:
    runtime = runtime_from(request)
    body = await read_body(request, ChatRequest)
    model = runtime.check_model(body.model)
    if not body.messages:
        return _load_reply(model, unload=body.unload, generate=False)
    runtime.require_ready()
    run = chat_run_request(body)
    session_id = check_session_id(request.headers.get("x-session-id") or body.session_id)
    events = converse(runtime, run, session_id=session_id, owner=caller(request),
                      headers=request.headers)
    return await respond(request, ChunkEncoder(model), events, streaming=body.streaming, session_id=session_id)


async def generate(request: Request) -> Response:
    runtime = runtime_from(request)
    body = await read_body(request, GenerateRequest)
    model = runtime.check_model(body.model, missing_status=404)
    if not body.prompt:
        return _load_reply(model, unload=body.unload, generate=True)
    runtime.require_ready()
    # A session only when the client names one (header, field, or a context naming it); otherwise
    # stateless, as the README says: the returned context carries the conversation itself.
    session_id = None
    if not body.raw:
        given = check_session_id(request.headers.get("x-session-id") or body.session_id)
        session_id = given or check_session_id(session_from_context(body.context), "context")
    history = [] if body.raw or session_id else conversation_from_context(body.context)
    run = generate_run_request(body, history)
    messages = run.messages
    encoder = ChunkEncoder(model, generate=True, context=context_for_session(session_id) if session_id else None,
                           conversation=None if body.raw or session_id else list(messages))
    events = converse(runtime, run, session_id=session_id, owner=caller(request),
                      headers=request.headers)
    return await respond(request, encoder, events, streaming=body.streaming, session_id=session_id)


#: The hot paths, as plain Starlette routes that ``create_app`` puts first on the app's own router:
#: a FastAPI APIRoute inside an included router costs ~60 us more per request (dependency solving,
#: router wrappers), which the benchmark against a bare app shows. They read their bodies
#: themselves; ``openapi.py`` documents them.
plain_routes = [
    Route("/api/chat", chat, methods=["POST"]),
    Route("/api/generate", generate, methods=["POST"]),
]


# Listed after chat and generate: routes are matched in order, and chat is the hot path.
@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def root() -> Response:
    return PlainTextResponse("Ollama is running")


@router.api_route("/api/version", methods=["GET", "HEAD"])
async def version() -> dict[str, str]:
    return {"version": OLLAMA_COMPAT_VERSION}


@router.api_route("/api/tags", methods=["GET", "HEAD"])
async def tags(runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    return {"models": [model_entry(runtime).model_dump(exclude_none=True)]}


@router.get("/api/ps")
async def ps(runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    running = runtime.state == "healthy"
    return {"models": [model_entry(runtime, loaded=True).model_dump(exclude_none=True)] if running else []}


@router.post("/api/show")
async def show(request: Request, runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    body = await read_body(request, ModelNameRequest)
    runtime.check_model(body.requested)
    return show_response(runtime).model_dump(exclude_none=True)
