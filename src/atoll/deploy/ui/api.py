"""The management routes the dashboard adds: a live stream of agent states, and per agent its
configuration (secrets redacted), tools, sessions, metrics samples, a chat playground and the tool
calls waiting for approval.

They sit in the management API (``/agents/...``), so the same admin token or dashboard cookie,
origin and Host checks, limits and metrics apply. Calls to an agent carry the per-agent credential
the deployment server holds (``deploy/agent_keys.py``); it is never sent to the page.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from atoll.client_json import parse_json
from atoll.config import load_agent_file
from atoll.deploy.context import DeployContext, context_of
from atoll.deploy.errors import BadRequest, ManagementError, limited
from atoll.deploy.relay import _relay as relay
from atoll.deploy.runner import RUNNING, UNHEALTHY, AgentRunner
from atoll.deploy.supervisor import describe
from atoll.errors import ConfigError

#: Seconds between full snapshots on the live stream (uptimes, rates) when no state changes.
SNAPSHOT_EVERY = 2.0
MAX_CHAT_BODY = 256 * 1024
#: Keys whose values never reach the page (matched anywhere in the key, case-insensitively).
SECRET_KEY = re.compile(r"key|token|secret|password|passwd|authorization|credential|cookie|env|headers", re.I)
REDACTED = "[redacted]"
#: The password of a URL with credentials in it (``https://user:secret@host``).
URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):[^/@\s]*@")


def _row(ctx: DeployContext, runner: AgentRunner, state: str | None = None) -> dict[str, Any]:
    row = describe(runner, ctx.supervisor.checksums.get(runner.spec.name))
    row.pop("log_tail", None)
    if state is not None:
        row["status"] = state
    row["auto_start"] = runner.spec.auto_start
    row.update(ctx.sampler.summary(runner.spec.name))
    return row


def snapshot(ctx: DeployContext) -> dict[str, Any]:
    """Every agent, the folders that could not start, and the model hosts the agents share (as
    ``GET /agents`` lists them: state, pid, port, model and which agents run on each)."""
    sup = ctx.supervisor
    hosts = ctx.model_hosts.statuses([r.spec for r in sup.runners.values()]) if ctx.model_hosts else []
    return {"agents": [_row(ctx, r) for _, r in sorted(sup.runners.items())],
            "problems": [{"folder": str(p.folder), "name": p.name, "reason": p.reason} for p in sup.problems],
            "model_hosts": hosts}


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def events(request: Request) -> Response:
    """``text/event-stream``: ``snapshot`` (every agent and model host) at once and every few seconds,
    one ``agent`` event per state change of an agent, in order, and a new snapshot when a model host
    changes state."""
    ctx = context_of(request)
    ctx.feed.check_room()

    async def stream() -> AsyncIterator[bytes]:
        with ctx.feed.subscribe() as queue:
            yield _sse("snapshot", snapshot(ctx))
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), SNAPSHOT_EVERY)
                except TimeoutError:
                    yield _sse("snapshot", snapshot(ctx))
                    continue
                if change is None:
                    return
                name, state = change
                runner = ctx.supervisor.runners.get(name)
                if runner is not None:
                    yield _sse("agent", _row(ctx, runner, state))
                else:  # a model host's change, or an agent just removed
                    yield _sse("snapshot", snapshot(ctx))

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def redact(value: Any, key: str = "") -> Any:
    if key and SECRET_KEY.search(key) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return URL_PASSWORD.sub(rf"\1:{REDACTED}@", value)
    return value


async def agent_config(request: Request) -> JSONResponse:
    ctx = context_of(request)
    runner = ctx.supervisor.get(request.path_params["name"])
    try:
        config = load_agent_file(runner.spec.agent_file)
    except ConfigError as exc:
        raise ManagementError(f"the agent's configuration cannot be read: {exc}", error_code="INVALID_CONFIG",
                              status=409) from exc
    return JSONResponse({"name": runner.spec.name, "file": str(runner.spec.agent_file),
                         "config": redact(config.model_dump(mode="json"))})


def _running(ctx: DeployContext, name: str) -> AgentRunner:
    runner = ctx.supervisor.get(name)
    if runner.state not in (RUNNING, UNHEALTHY):
        raise ManagementError(f"agent {name} is not running (state: {runner.state})",
                              error_code="AGENT_NOT_RUNNING", status=409)
    return runner


async def _ask_agent(ctx: DeployContext, name: str, method: str, path: str, body: Any = None) -> httpx.Response:
    runner = _running(ctx, name)
    try:
        return await ctx.probes.request(method, f"http://127.0.0.1:{runner.port}{path}", json=body,
                                        headers=ctx.agent_keys.headers(name), timeout=10.0)
    except httpx.HTTPError as exc:
        raise ManagementError(f"agent {name} did not answer: {exc or type(exc).__name__}",
                              error_code="AGENT_UNREACHABLE", status=502) from exc


def _relayed_json(response: httpx.Response) -> JSONResponse:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500]}
    return JSONResponse(body, status_code=response.status_code)


async def agent_tools(request: Request) -> JSONResponse:
    ctx = context_of(request)
    return _relayed_json(await _ask_agent(ctx, request.path_params["name"], "GET", "/atoll/tools"))


async def agent_sessions(request: Request) -> JSONResponse:
    """The agent's ``/api/sessions``: the count, and the newest sessions of the key the dashboard uses
    (the playground's; on an agent without keys, every session)."""
    ctx = context_of(request)
    return _relayed_json(await _ask_agent(ctx, request.path_params["name"], "GET", "/api/sessions?limit=100"))


def _session_path(request: Request) -> str:
    session_id = request.path_params["session_id"]
    if not re.fullmatch(r"[A-Za-z0-9._:\-]{1,128}", session_id):
        raise BadRequest("invalid session id")
    return "/api/sessions/" + quote(session_id, safe="")


async def agent_session(request: Request) -> Response:
    ctx = context_of(request)
    name = request.path_params["name"]
    response = await _ask_agent(ctx, name, request.method, _session_path(request))
    if response.status_code == 204:
        return Response(status_code=204)
    return _relayed_json(response)


async def agent_samples(request: Request) -> JSONResponse:
    ctx = context_of(request)
    name = request.path_params["name"]
    ctx.supervisor.get(name)
    return JSONResponse({"name": name, **ctx.sampler.series(name)})


MAX_DECISION_BODY = 8192


async def agent_approvals(request: Request) -> JSONResponse:
    """The agent's pending approvals that the dashboard may decide: those of the playground's
    conversations (approvals belong to the key that caused them), or all of them on an agent without keys."""
    ctx = context_of(request)
    return _relayed_json(await _ask_agent(ctx, request.path_params["name"], "GET", "/atoll/approvals"))


async def decide_approval(request: Request) -> JSONResponse:
    """``{"approve": true|false, "reason": "..."}``; it takes effect with the conversation's next message."""
    ctx = context_of(request)
    approval_id = request.path_params["approval_id"]
    if not re.fullmatch(r"[a-z0-9]{1,32}", approval_id):
        raise BadRequest("invalid approval id")
    try:
        body = parse_json(await limited(request, MAX_DECISION_BODY).body() or b"{}")
    except ValueError as exc:
        raise BadRequest("expected a JSON body {\"approve\": true or false, \"reason\": ...}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("approve"), bool):
        raise BadRequest("'approve' must be true or false")
    decision = {"approve": body["approve"], "reason": str(body.get("reason") or "")[:1000]}
    return _relayed_json(await _ask_agent(ctx, request.path_params["name"], "POST",
                                          f"/atoll/approvals/{approval_id}", decision))


async def agent_chat(request: Request) -> Response:
    """``{"message": "...", "session_id": "..."}`` -> the agent's ``/api/chat`` NDJSON stream, relayed
    as it comes, tool calls and results (``atoll`` progress chunks) included."""
    ctx = context_of(request)
    name = request.path_params["name"]
    try:
        body = parse_json(await limited(request, MAX_CHAT_BODY).body() or b"{}")
    except ValueError as exc:
        raise BadRequest("expected a JSON body {\"message\": ..., \"session_id\": ...}") from exc
    message = body.get("message") if isinstance(body, dict) else None
    session_id = body.get("session_id") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message.strip():
        raise BadRequest("missing 'message' (the text to send)")
    if not isinstance(session_id, str) or not re.fullmatch(r"[A-Za-z0-9._:\-]{1,128}", session_id):
        raise BadRequest("'session_id' must be 1-128 letters, digits or ._:-")
    runner = _running(ctx, name)
    request.scope.setdefault("state", {})["model"] = name
    # The page draws tool calls from the stream's ``atoll`` chunks, so no tool text in the answer.
    headers = {**ctx.agent_keys.headers(name), "X-Session-ID": session_id, "Content-Type": "application/json",
               "X-Atoll-Tool-Activity": "off",
               "X-Request-ID": request.scope.get("state", {}).get("request_id", "")}
    payload = {"model": name, "messages": [{"role": "user", "content": message}], "stream": True}
    import aiohttp  # the relays' pool (atoll.deploy.relay_client) has imported it, or does now

    session = ctx.client.session()
    try:
        response = await session.post(f"http://127.0.0.1:{runner.port}/api/chat",
                                      data=json.dumps(payload).encode(), headers=headers)
    except aiohttp.ClientError as exc:
        raise ManagementError(f"agent {name} did not answer: {exc or type(exc).__name__}",
                              error_code="AGENT_UNREACHABLE", status=502) from exc
    return StreamingResponse(relay(response), status_code=response.status,
                             media_type=response.headers.get("content-type", "application/x-ndjson"),
                             background=BackgroundTask(response.release))


def routes() -> list[Route]:
    return [
        Route("/agents/events", events),
        Route("/agents/{name}/config", agent_config),
        Route("/agents/{name}/tools", agent_tools),
        Route("/agents/{name}/sessions", agent_sessions),
        Route("/agents/{name}/sessions/{session_id}", agent_session, methods=["GET", "DELETE"]),
        Route("/agents/{name}/samples", agent_samples),
        Route("/agents/{name}/chat", agent_chat, methods=["POST"]),
        Route("/agents/{name}/approvals", agent_approvals),
        Route("/agents/{name}/approvals/{approval_id}", decide_approval, methods=["POST"]),
    ]
