"""The model host's HTTP API: the few Ollama endpoints an agent's ``ollama`` client calls.

    GET  /health        200 once the model is loaded (the deployment server's probe); no token
    GET  /api/version   no token
    POST /api/show      what the model is: details, context and embedding length, capabilities
    POST /api/chat      one chat turn in Ollama's shape: NDJSON chunks (one per token), or with
                        ``stream: false`` one reply
    POST /api/embed     embedding vectors

Every call but the first two needs ``Authorization: Bearer <signed token>`` naming the calling agent
(``atoll.httpkit.bearer.signed_token``; the deployment server hands each agent its own). That name
is what the fair queue rotates over. A chat waits for its turn, then holds the model until its
last chunk is sent or its caller disconnects (which stops the generation between two tokens).
An error before the first token is the status and ``{"error": ...}`` (a template failure or an
over-long prompt stays a 400 for the agent's client); after it, a last ``{"error": ...}`` line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from atoll import fastjson
from atoll._version import __version__
from atoll.dialects._neutral import paired, tool_specs
from atoll.dialects.ollama.parse import messages_from_wire, options_from_wire
from atoll.errors import AtollError, ProviderError, RequestError
from atoll.httpkit import BodyLimit, FrontMiddleware, Refusal, RouteTemplates, signed_holder
from atoll.httpkit.browser import browser_policy
from atoll.httpkit.requests import header
from atoll.messages import Finished, ModelEvent, ModelRequest, TextDelta
from atoll.model_host.fair import FairQueue
from atoll.wire import ChatRequest, EmbedRequest, timestamp

if TYPE_CHECKING:
    from atoll.providers.base import Provider

logger = logging.getLogger(__name__)

#: Requests without a token: the supervisor's probe and version checks.
PUBLIC_PATHS = frozenset({"/health", "/api/version"})
#: A chat body is a conversation; far past what a small local context holds.
MAX_BODY_BYTES = 16 * 1024 * 1024
NDJSON = "application/x-ndjson"
_Body = TypeVar("_Body", ChatRequest, EmbedRequest)


class ModelHost:
    """The loaded model, the queue in front of it, and the secret that checks callers' tokens."""

    def __init__(self, provider: Provider, secret: bytes) -> None:
        self.provider = provider
        self.secret = secret
        self.queue = FairQueue()
        self.loaded = False

    def authorize(self, scope: Scope) -> Refusal | None:
        if scope["path"] in PUBLIC_PATHS:
            return None
        caller = signed_holder(self.secret, header(scope, b"authorization"))
        if caller is None:
            return Refusal(401, "the model host needs its token: 'Authorization: Bearer <token>'", "UNAUTHORIZED")
        scope.setdefault("state", {})["caller"] = caller
        return None

    def show(self) -> dict[str, Any]:
        profile = self.provider.profile
        return {
            "details": {"format": profile.format, "family": profile.family, "families": [profile.family],
                        "parameter_size": profile.parameter_size,
                        "quantization_level": profile.quantization_level},
            "model_info": {"general.architecture": profile.family,
                           f"{profile.family}.context_length": profile.context_length,
                           f"{profile.family}.embedding_length": profile.embedding_length},
            "capabilities": ["completion", "embedding"],
        }


def create_app(host: ModelHost, *, lifespan: Any = None) -> Any:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok" if host.loaded else "loading", "model": host.provider.model,
                             "busy": host.queue.busy, "waiting": host.queue.waiting(),
                             "served": dict(host.queue.served)}, status_code=200 if host.loaded else 503)

    async def version(request: Request) -> JSONResponse:
        return JSONResponse({"version": __version__})

    async def show(request: Request) -> JSONResponse:
        return JSONResponse(host.show())

    async def chat(request: Request) -> Response:
        body = _parse(ChatRequest, await request.body())
        model_request = ModelRequest(paired(messages_from_wire(body.messages or [])), tool_specs(body.tools),
                                     options_from_wire(body.options), body.format, body.think)
        return ChatStream(host, request.scope["state"]["caller"], model_request, stream=body.stream is not False)

    async def embed(request: Request) -> JSONResponse:
        body = _parse(EmbedRequest, await request.body())
        texts = [body.input] if isinstance(body.input, str) else list(body.input or [])
        async with host.queue.turn(request.scope["state"]["caller"]):
            vectors = await host.provider.embed(texts)
        return JSONResponse({"model": host.provider.model, "embeddings": vectors})

    routes = [Route("/health", health), Route("/api/version", version),
              Route("/api/show", show, methods=["POST"]), Route("/api/chat", chat, methods=["POST"]),
              Route("/api/embed", embed, methods=["POST"])]
    app = Starlette(routes=routes, exception_handlers={AtollError: _error_reply}, lifespan=lifespan)
    return FrontMiddleware(_BodyLimited(app), policy=browser_policy([], [], server="model host"),
                           route_template=RouteTemplates(routes), authorize=host.authorize)


class ChatStream(Response):
    """One chat turn as an ASGI response: wait for the turn, then stream; a disconnect ends both."""

    def __init__(self, host: ModelHost, caller: str, request: ModelRequest, *, stream: bool = True) -> None:
        self.host, self.caller, self.request, self.stream = host, caller, request, stream
        self.model = host.provider.model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:
            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch_disconnect)
            await self._turn(send)
            group.cancel_scope.cancel()

    async def _turn(self, send: Send) -> None:
        # The provider's stream is an async generator (typed as an iterator): closing it is what
        # stops the generation when the caller goes away.
        stream = cast(AsyncGenerator[ModelEvent, None], self.host.provider.stream(self.request))
        async with self.host.queue.turn(self.caller), aclosing(stream) as events:
            try:
                first = await anext(events)
                if not self.stream:
                    await _send_whole(send, 200, _collected(self.model, [first, *[e async for e in events]]))
                    return
            except ProviderError as exc:
                await _send_whole(send, exc.status, {"error": str(exc)})
                return
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", NDJSON.encode())]})
            try:
                await self._send_chunk(send, first)
                async for event in events:
                    await self._send_chunk(send, event)
            except ProviderError as exc:
                await send({"type": "http.response.body", "body": _line({"error": str(exc)}), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_chunk(self, send: Send, event: ModelEvent) -> None:
        chunk = _chunk(self.model, event)
        if chunk is not None:
            await send({"type": "http.response.body", "body": _line(chunk), "more_body": True})


def _chunk(model: str, event: ModelEvent) -> dict[str, Any] | None:
    """Ollama's chat chunk for one event (the local model yields text and the end, nothing else)."""
    if isinstance(event, TextDelta):
        return {"model": model, "created_at": timestamp(), "message": {"role": "assistant", "content": event.text},
                "done": False}
    if isinstance(event, Finished):
        usage = event.usage
        return {"model": model, "created_at": timestamp(), "message": {"role": "assistant", "content": ""},
                "done": True, "done_reason": event.reason, "total_duration": usage.total_duration_ns,
                "load_duration": usage.load_duration_ns, "prompt_eval_count": usage.prompt_tokens,
                "prompt_eval_duration": usage.prompt_eval_duration_ns, "eval_count": usage.completion_tokens,
                "eval_duration": usage.eval_duration_ns}
    return None


def _collected(model: str, events: list[ModelEvent]) -> dict[str, Any]:
    """``stream: false``: the final chunk, carrying the whole reply."""
    final = next((e for e in events if isinstance(e, Finished)), Finished())
    reply = _chunk(model, final) or {}
    reply["message"]["content"] = "".join(e.text for e in events if isinstance(e, TextDelta))
    return reply


def _line(chunk: dict[str, Any]) -> bytes:
    return fastjson.dumps(chunk) + b"\n"


async def _send_whole(send: Send, status: int, body: dict[str, Any]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": fastjson.dumps(body)})


def _parse(model: type[_Body], raw: bytes) -> _Body:
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise RequestError(f"invalid request body: {exc.errors(include_url=False)[0]['msg']}") from exc


async def _error_reply(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status", 500)
    if status >= 500:
        logger.error("model host request failed: %s", exc)
    return JSONResponse({"error": str(exc)}, status_code=status)


class _BodyLimited:
    """Bodies past :data:`MAX_BODY_BYTES` are refused (413), counted as they arrive."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, BodyLimit(receive, MAX_BODY_BYTES), send)
