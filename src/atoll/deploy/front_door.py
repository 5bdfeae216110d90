"""The front door: the management port also speaks the Ollama API for every agent it knows.

``/api/tags`` lists every running agent, local and remote; ``/api/chat``, ``/api/generate``,
``/api/show`` and the embedding routes go to the agent named by ``model``, and the answer (NDJSON
stream or one JSON object) is relayed chunk by chunk as it arrives.

Credentials pass through: the front door asks for no key of its own, and relays the caller's
``Authorization`` header to the agent, whose ``[server] api_keys`` decide. ``/api/tags`` leaves out
the agents that refuse the caller's credentials. A remote with an ``api_key`` configured gets that
key instead of the caller's header. The request id (``X-Request-ID``) goes along to the agent.
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

from atoll._version import OLLAMA_COMPAT_VERSION
from atoll.deploy.config import RemoteServer
from atoll.deploy.context import context_of
from atoll.deploy.errors import BodyTooLarge, limited
from atoll.deploy.remote import HOP_HEADER, front_door_auth, remote_models
from atoll.deploy.runner import RUNNING, UNHEALTHY
from atoll.model_names import model_key

if TYPE_CHECKING:
    from atoll.deploy.context import DeployContext

ROUTED = ("/api/chat", "/api/generate", "/api/show", "/api/embed", "/api/embeddings")
#: Headers that belong to one hop of the connection and are not relayed.
HOP_BY_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade",
              "proxy-connection", "te", "trailer"}
#: Agent answers to ``/api/tags`` that mean "not with these credentials": the agent is not listed.
REFUSED = (401, 403)



def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def root(request: Request) -> Response:
    return PlainTextResponse("Ollama is running")


async def version(request: Request) -> JSONResponse:
    return JSONResponse({"version": OLLAMA_COMPAT_VERSION})  # what Ollama clients gate features on


async def tags(request: Request) -> JSONResponse:
    ctx = context_of(request)
    runners = [r for r in ctx.supervisor.runners.values() if r.state == RUNNING]
    auth = request.headers.get("authorization")
    local = await asyncio.gather(*(_local_models(ctx.client, r.spec.name, r.port, auth) for r in runners))
    models = [m for group in local for m in group]
    if HOP_HEADER not in request.headers:
        seen = {model_key(str(m.get("name", ""))) for m in models}
        for remote_cfg, listed in await _remote_listing(ctx, auth):
            for model in listed:
                key = model_key(str(model.get("name", "")))
                if key and key not in seen:
                    seen.add(key)
                    models.append(model)
                    ctx.remote_index[key] = remote_cfg
    return JSONResponse({"models": models})


async def _local_models(client: httpx.AsyncClient, name: str, port: int, auth: str | None
                        ) -> list[dict[str, Any]]:
    try:
        response = await client.get(f"http://127.0.0.1:{port}/api/tags", timeout=2.0,
                                    headers={"Authorization": auth} if auth else None)
        if response.status_code in REFUSED:
            return []
        response.raise_for_status()
        models = response.json().get("models", [])
        if isinstance(models, list) and models:
            return [m for m in models if isinstance(m, dict)]
    except (httpx.HTTPError, ValueError, AttributeError):
        pass
    stamp = datetime.now(UTC).isoformat()
    return [{"name": f"{name}:latest", "model": f"{name}:latest", "modified_at": stamp, "size": 0,
             "digest": "", "details": {}}]


async def _remote_listing(ctx: DeployContext, auth: str | None
                          ) -> list[tuple[RemoteServer, list[dict[str, Any]]]]:
    remotes = [r for r in ctx.config.remote_servers if r.enabled]
    listed = await asyncio.gather(*(remote_models(ctx.client, r, auth) for r in remotes))
    return list(zip(remotes, listed, strict=True))


async def _target(request: Request, model: str) -> str | RemoteServer | JSONResponse:
    """The local agent's base URL or the remote serving ``model``, or the Ollama-style error."""
    ctx = context_of(request)
    name = model_key(model)
    runner = next((r for agent, r in ctx.supervisor.runners.items() if agent.lower() == name), None)
    if runner is not None:
        if runner.state not in (RUNNING, UNHEALTHY):
            return _error(503, f"agent '{runner.spec.name}' is not running (state: {runner.state})")
        return f"http://127.0.0.1:{runner.port}"
    if HOP_HEADER in request.headers:
        return _error(404, f"model '{model}' not found")
    if name not in ctx.remote_index:
        for remote_cfg, listed in await _remote_listing(ctx, request.headers.get("authorization")):
            for entry in listed:
                ctx.remote_index[model_key(str(entry.get("name", "")))] = remote_cfg
    remote = ctx.remote_index.get(name)
    return remote if remote is not None else _error(404, f"model '{model}' not found")


def _upstream_headers(request: Request, remote: RemoteServer | None) -> dict[str, str]:
    """The caller's headers minus hop-by-hop ones, with the request id, and for a remote its key
    and the hop mark (a remote front door must not forward again)."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    headers = {k: v for k, v in headers.items() if k.lower() not in ("x-request-id", "authorization")}
    headers["X-Request-ID"] = request.scope.get("state", {}).get("request_id", "")
    auth = request.headers.get("authorization")
    if remote is not None:
        headers[HOP_HEADER] = "1"
        auth = front_door_auth(remote, auth)
    if auth:
        headers["Authorization"] = auth
    return {k: v for k, v in headers.items() if v}


#: Largest request body the front door relays (an agent's own default limit is the same).
MAX_ROUTED_BODY = 8 * 1024 * 1024


async def routed(request: Request) -> Response:
    try:
        body = await limited(request, MAX_ROUTED_BODY).body()
    except BodyTooLarge as exc:
        return _error(413, exc.message)
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return _error(400, "invalid JSON body")
    model = payload.get("model") or payload.get("name") if isinstance(payload, dict) else None
    if not isinstance(model, str) or not model:
        return _error(400, "model is required")
    request.scope.setdefault("state", {})["model"] = model
    target = await _target(request, model)
    if isinstance(target, Response):
        return target
    remote = target if isinstance(target, RemoteServer) else None
    base = remote.url if remote is not None else str(target)
    client = context_of(request).client
    upstream = client.build_request("POST", base + request.url.path, content=body,
                                    headers=_upstream_headers(request, remote))
    try:
        response = await client.send(upstream, stream=True)
    except httpx.HTTPError as exc:
        return _error(502, f"agent for model '{model}' is unreachable: {exc}")
    relayed = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
    return StreamingResponse(_relay(response), status_code=response.status_code, headers=relayed,
                             background=BackgroundTask(response.aclose))


async def _relay(response: httpx.Response) -> AsyncIterator[bytes]:
    """The agent's bytes as they come. If the agent dies mid-stream, an NDJSON stream ends the way
    an agent's own failing stream does, with an ``{"error": ...}`` line, so clients raise."""
    ends_line = True
    try:
        async for chunk in response.aiter_raw():
            ends_line = chunk.endswith(b"\n")
            yield chunk
    except httpx.HTTPError as exc:
        if response.headers.get("content-type", "").startswith("application/x-ndjson"):
            line = json.dumps({"error": f"the agent stopped answering mid-stream: {exc or type(exc).__name__}"})
            yield (b"" if ends_line else b"\n") + line.encode() + b"\n"
    finally:
        await response.aclose()


def routes() -> list[Route]:
    return [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/api/version", version),
        Route("/api/tags", tags),
        *(Route(path, routed, methods=["POST"]) for path in ROUTED),
    ]
