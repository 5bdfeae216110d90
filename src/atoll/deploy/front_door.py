"""The front door: the management port also speaks the Ollama and OpenAI APIs for every agent it knows.

* Listings merge every running agent (and the remotes' agents): ``GET /api/tags``, ``GET /api/ps``,
  ``GET /v1/models``. They are asked with this server's own credentials (its per-agent key, a
  remote's ``api_key`` or none), never the caller's.
* Requests naming a model go to the agent (or remote) serving it, and the answer (NDJSON, server-sent
  events or one JSON object) is relayed chunk by chunk: ``/api/chat``, ``/api/generate``,
  ``/api/show``, ``/api/embed``, ``/api/embeddings``, ``/api/pull``, ``/api/push``, ``/api/create``,
  ``/api/copy``, ``DELETE /api/delete``, ``/v1/chat/completions``, ``/v1/completions``,
  ``/v1/embeddings`` and ``GET /v1/models/{model}``.
* ``/agent/{name}/...`` reaches any path of one agent (see :mod:`atoll.deploy.passthrough`).

Credentials pass through to one target only: the front door asks for no key of its own, and relays
the caller's ``Authorization`` header to the one agent a request is routed to, whose ``[server]
api_keys`` decide. A remote with an ``api_key`` configured gets that key instead. An unknown model
name is looked up in the remotes' listings (asked with their own keys), never sent to them all. The
request id (``X-Request-ID``) goes along.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from atoll._version import OLLAMA_COMPAT_VERSION
from atoll.client_json import parse_json
from atoll.deploy.config import RemoteServer
from atoll.deploy.directory import AgentAddress, Unavailable
from atoll.deploy.front_context import front_of
from atoll.deploy.relay import error, forward, read_body
from atoll.deploy.remote import HOP_HEADER, LISTING_TIMEOUT, remote_models
from atoll.model_names import model_key

if TYPE_CHECKING:
    from atoll.deploy.front_context import FrontContext

#: POST routes relayed to the agent named by the body's ``model`` (or ``name``, or ``source``).
ROUTED = ("/api/chat", "/api/generate", "/api/show", "/api/embed", "/api/embeddings", "/api/pull",
          "/api/push", "/api/create", "/api/copy", "/v1/chat/completions", "/v1/completions", "/v1/embeddings")
#: Agent answers to listings that mean "not with these credentials": the agent is not listed.
REFUSED = (401, 403)


async def root(request: Request) -> Response:
    return PlainTextResponse("Ollama is running")


async def version(request: Request) -> JSONResponse:
    return JSONResponse({"version": OLLAMA_COMPAT_VERSION})  # what Ollama clients gate features on


async def cloud_status(request: Request) -> JSONResponse:
    return JSONResponse({"cloud": {"disabled": True, "source": "atoll"}})  # as every agent answers


async def tags(request: Request) -> JSONResponse:
    return JSONResponse({"models": await _all_models(request)})


async def ps(request: Request) -> JSONResponse:
    """The running agents as Ollama's loaded models (local ones: remotes have their own front door)."""
    ctx = front_of(request)
    listed = await asyncio.gather(*(_listing(ctx, agent, "/api/ps") for agent in ctx.directory.listed()))
    return JSONResponse({"models": [m for group in listed if group for m in group]})


async def openai_models(request: Request) -> JSONResponse:
    models = await _all_models(request)
    return JSONResponse({"object": "list", "data": [
        {"id": str(m.get("name")), "object": "model", "created": _epoch(m.get("modified_at")), "owned_by": "atoll"}
        for m in models]})


def _epoch(stamp: Any) -> int:
    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp())
    except ValueError:
        return int(datetime.now(UTC).timestamp())


async def _all_models(request: Request) -> list[dict[str, Any]]:
    """Every running local agent's ``/api/tags`` entries, then the remotes' (first name wins)."""
    ctx = front_of(request)
    agents = ctx.directory.listed()
    local = await asyncio.gather(*(_listing(ctx, agent, "/api/tags") for agent in agents))
    models = [m for name, group in zip((a.name for a in agents), local, strict=True)
              for m in (_placeholder(name) if group is None else group)]
    if HOP_HEADER not in request.headers:
        seen = {model_key(str(m.get("name", ""))) for m in models}
        for remote_cfg, listed in await _remote_listing(ctx):
            for model in listed:
                key = model_key(str(model.get("name", "")))
                if key and key not in seen:
                    seen.add(key)
                    models.append(model)
                    ctx.remote_index[key] = remote_cfg
    return models


async def _listing(ctx: FrontContext, agent: AgentAddress, path: str) -> list[dict[str, Any]] | None:
    """An agent's ``{"models": [...]}`` answer at ``path``, asked with this server's own key for it
    (never a caller's): [] when it refuses, None when it could not be asked."""
    try:
        response = await ctx.probes.get(agent.url + path, timeout=LISTING_TIMEOUT,
                                        headers={"Authorization": f"Bearer {agent.key}"})
        if response.status_code in REFUSED:
            return []
        response.raise_for_status()
        models = response.json().get("models", [])
        return [m for m in models if isinstance(m, dict)] if isinstance(models, list) else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None


def _placeholder(name: str) -> list[dict[str, Any]]:
    stamp = datetime.now(UTC).isoformat()
    return [{"name": f"{name}:latest", "model": f"{name}:latest", "modified_at": stamp, "size": 0,
             "digest": "", "details": {}}]


async def _remote_listing(ctx: FrontContext) -> list[tuple[RemoteServer, list[dict[str, Any]]]]:
    """Every enabled remote's models, each asked with its own ``api_key`` (or none)."""
    remotes = [r for r in ctx.config.remote_servers if r.enabled]
    listed = await asyncio.gather(*(remote_models(ctx.probes, r) for r in remotes))
    return list(zip(remotes, listed, strict=True))


def served_names(ctx: FrontContext) -> list[str]:
    """The model names this front door serves, for "not found" messages."""
    return sorted({*ctx.directory.names(), *ctx.remote_index})


def not_found(request: Request, model: str) -> JSONResponse:
    names = served_names(front_of(request))
    serves = f"; this server serves: {', '.join(names)}" if names else "; this server serves no models yet"
    return error(request, 404, f"model '{model}' not found{serves}")


async def target(request: Request, model: str) -> AgentAddress | RemoteServer | Response:
    """The agent (here) or the remote serving ``model``, or the error to answer."""
    ctx = front_of(request)
    name = model_key(model)
    found = await ctx.directory.find(name)
    if isinstance(found, Unavailable):
        return error(request, 503, f"agent '{found.name}' is not running (state: {found.state})")
    if found is not None:
        return found
    if HOP_HEADER in request.headers:
        return error(request, 404, f"model '{model}' not found")
    if name not in ctx.remote_index:
        for remote_cfg, listed in await _remote_listing(ctx):
            for entry in listed:
                ctx.remote_index[model_key(str(entry.get("name", "")))] = remote_cfg
    remote = ctx.remote_index.get(name)
    return remote if remote is not None else not_found(request, model)


async def _to_model(request: Request, model: str, body: bytes, path: str) -> Response:
    request.scope.setdefault("state", {})["model"] = model
    where = await target(request, model)
    if isinstance(where, Response):
        return where
    return await forward(request, where.url + path, body, where, f"agent for model '{model}'")


async def routed(request: Request) -> Response:
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    try:
        payload = parse_json(body or b"{}")
    except ValueError:
        return error(request, 400, "invalid JSON body")
    model = next((payload.get(k) for k in ("model", "name", "source") if payload.get(k)), None) \
        if isinstance(payload, dict) else None
    if not isinstance(model, str) or not model:
        return error(request, 400, "model is required")
    return await _to_model(request, model, body, request.url.path)


async def openai_model(request: Request) -> Response:
    model = request.path_params["model"]
    return await _to_model(request, model, b"", request.url.path)


def routes() -> list[Route]:
    return [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/api/version", version, methods=["GET", "HEAD"]),
        Route("/api/status", cloud_status),
        Route("/api/tags", tags, methods=["GET", "HEAD"]),
        Route("/api/ps", ps),
        Route("/api/delete", routed, methods=["DELETE"]),
        *(Route(path, routed, methods=["POST"]) for path in ROUTED),
        Route("/v1/models", openai_models),
        Route("/v1/models/{model:path}", openai_model),
    ]
