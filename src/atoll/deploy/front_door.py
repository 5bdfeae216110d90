"""The front door: the management port also speaks the Ollama API for every agent it knows.

``/api/tags`` lists every running agent, local and remote; ``/api/chat``, ``/api/generate``,
``/api/show`` and the embedding routes go to the agent named by ``model``, and the answer (NDJSON
stream or one JSON object) is relayed chunk by chunk as it arrives.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from atoll._version import __version__
from atoll.deploy.remote import HOP_HEADER, remote_models
from atoll.deploy.runner import RUNNING, UNHEALTHY

if TYPE_CHECKING:
    from atoll.deploy.app import DeployContext

ROUTED = ("/api/chat", "/api/generate", "/api/show", "/api/embed", "/api/embeddings")
#: Headers that belong to one hop of the connection and are not relayed.
HOP_BY_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade",
              "proxy-connection", "te", "trailer"}


def base_name(model: str) -> str:
    """Agents are listed as ``name:latest``; clients may ask for either spelling."""
    return model[: -len(":latest")] if model.endswith(":latest") else model


def _ctx(request: Request) -> DeployContext:
    return request.app.state.ctx


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def root(request: Request) -> Response:
    return PlainTextResponse("Ollama is running")


async def version(request: Request) -> JSONResponse:
    return JSONResponse({"version": __version__})


async def tags(request: Request) -> JSONResponse:
    ctx = _ctx(request)
    runners = [r for r in ctx.supervisor.runners.values() if r.state == RUNNING]
    local = await asyncio.gather(*(_local_models(ctx.client, r.spec.name, r.port) for r in runners))
    models = [m for group in local for m in group]
    if HOP_HEADER not in request.headers:
        seen = {base_name(str(m.get("name", ""))) for m in models}
        for remote_cfg, listed in await _remote_listing(ctx):
            for model in listed:
                key = base_name(str(model.get("name", "")))
                if key and key not in seen:
                    seen.add(key)
                    models.append(model)
                    ctx.remote_index[key] = remote_cfg.url
    return JSONResponse({"models": models})


async def _local_models(client: httpx.AsyncClient, name: str, port: int) -> list[dict[str, Any]]:
    try:
        response = await client.get(f"http://127.0.0.1:{port}/api/tags", timeout=2.0)
        response.raise_for_status()
        models = response.json().get("models", [])
        if isinstance(models, list) and models:
            return [m for m in models if isinstance(m, dict)]
    except (httpx.HTTPError, ValueError, AttributeError):
        pass
    stamp = datetime.now(UTC).isoformat()
    return [{"name": f"{name}:latest", "model": f"{name}:latest", "modified_at": stamp, "size": 0,
             "digest": "", "details": {}}]


async def _remote_listing(ctx: DeployContext) -> list[tuple[Any, list[dict[str, Any]]]]:
    remotes = [r for r in ctx.config.remote_servers if r.enabled]
    listed = await asyncio.gather(*(remote_models(ctx.client, r) for r in remotes))
    return list(zip(remotes, listed, strict=True))


async def _target(request: Request, model: str) -> str | JSONResponse:
    """The base URL serving ``model``, or the Ollama-style error to answer with."""
    ctx = _ctx(request)
    name = base_name(model)
    runner = ctx.supervisor.runners.get(name)
    if runner is not None:
        if runner.state not in (RUNNING, UNHEALTHY):
            return _error(503, f"agent '{name}' is not running (state: {runner.state})")
        return f"http://127.0.0.1:{runner.port}"
    if HOP_HEADER in request.headers:
        return _error(404, f"model '{model}' not found")
    if name not in ctx.remote_index:
        for remote_cfg, listed in await _remote_listing(ctx):
            for entry in listed:
                ctx.remote_index[base_name(str(entry.get("name", "")))] = remote_cfg.url
    url = ctx.remote_index.get(name)
    return url if url else _error(404, f"model '{model}' not found")


async def routed(request: Request) -> Response:
    body = await request.body()
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return _error(400, "invalid JSON body")
    model = payload.get("model") or payload.get("name") if isinstance(payload, dict) else None
    if not isinstance(model, str) or not model:
        return _error(400, "model is required")
    target = await _target(request, model)
    if isinstance(target, Response):
        return target
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    if base_name(model) not in _ctx(request).supervisor.runners:
        headers[HOP_HEADER] = "1"  # a remote front door: it must not forward again
    client = _ctx(request).client
    upstream = client.build_request("POST", target + request.url.path, content=body, headers=headers)
    try:
        response = await client.send(upstream, stream=True)
    except httpx.HTTPError as exc:
        return _error(502, f"agent for model '{model}' is unreachable: {exc}")
    relayed = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
    return StreamingResponse(_relay(response), status_code=response.status_code, headers=relayed,
                             background=BackgroundTask(response.aclose))


async def _relay(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        await response.aclose()


def routes() -> list[Route]:
    return [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/api/version", version),
        Route("/api/tags", tags),
        *(Route(path, routed, methods=["POST"]) for path in ROUTED),
    ]
