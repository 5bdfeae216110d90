"""The management routes the dashboard adds: a live stream of agent states, and per agent its
configuration (secrets redacted), tools, sessions, metrics samples, a chat playground and the tool
calls waiting for approval.

They sit in the management API (``/agents/...``), so the same admin token or dashboard cookie,
origin and Host checks, limits and metrics apply. Calls to an agent carry the per-agent credential
the deployment server holds (``deploy/agent_keys.py``); it is never sent to the page. They are written
once, on the seams of :mod:`atoll.deploy.ui.context`, for every backend.
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
from atoll.deploy.directory import AgentAddress, Unavailable
from atoll.deploy.errors import AgentNotFound, BadRequest, ManagementError, limited
from atoll.deploy.relay import _relay as relay
from atoll.deploy.ui.context import DashboardContext, dashboard_of
from atoll.errors import ConfigError

#: Seconds between full snapshots on the live stream (uptimes, rates) when no state changes.
SNAPSHOT_EVERY = 2.0
MAX_CHAT_BODY = 256 * 1024
#: Keys whose values never reach the page (matched anywhere in the key, case-insensitively).
SECRET_KEY = re.compile(r"key|token|secret|password|passwd|authorization|credential|cookie|env|headers", re.I)
REDACTED = "[redacted]"
#: The password of a URL with credentials in it (``https://user:secret@host``).
URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):[^/@\s]*@")


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def events(request: Request) -> Response:
    """``text/event-stream``: ``snapshot`` (every agent and model host) at once and every few seconds,
    one ``agent`` event per state change of an agent, in order, and a new snapshot when a model host
    changes state."""
    dash = dashboard_of(request)
    dash.feed.check_room()

    async def stream() -> AsyncIterator[bytes]:
        with dash.feed.subscribe() as queue:
            yield _sse("snapshot", await dash.agents.snapshot())
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), SNAPSHOT_EVERY)
                except TimeoutError:
                    yield _sse("snapshot", await dash.agents.snapshot())
                    continue
                if change is None:
                    return
                row = dash.agents.row(*change)
                yield _sse("agent", row) if row is not None else _sse("snapshot", await dash.agents.snapshot())

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
    name = request.path_params["name"]
    agent_file = dashboard_of(request).agents.agent_file(name)
    try:
        config = load_agent_file(agent_file)
    except ConfigError as exc:
        raise ManagementError(f"the agent's configuration cannot be read: {exc}", error_code="INVALID_CONFIG",
                              status=409) from exc
    return JSONResponse({"name": name, "file": str(agent_file), "config": redact(config.model_dump(mode="json"))})


async def _running(dash: DashboardContext, name: str) -> AgentAddress:
    """Where agent ``name`` answers, and the deployment server's key for it."""
    dash.agents.agent_file(name)  # AgentNotFound for an unknown name (with the folder's hint)
    found = await dash.directory.find(name.lower())
    if found is None:
        raise AgentNotFound(name)
    if isinstance(found, Unavailable):
        raise ManagementError(f"agent {name} is not running (state: {found.state})",
                              error_code="AGENT_NOT_RUNNING", status=409)
    return found


async def _ask_agent(dash: DashboardContext, name: str, method: str, path: str, body: Any = None) -> httpx.Response:
    agent = await _running(dash, name)
    try:
        return await dash.probes.request(method, agent.url + path, json=body,
                                         headers={"Authorization": f"Bearer {agent.key}"}, timeout=10.0)
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
    return _relayed_json(await _ask_agent(dashboard_of(request), request.path_params["name"], "GET", "/atoll/tools"))


async def agent_sessions(request: Request) -> JSONResponse:
    """The agent's ``/api/sessions``: the count, and the newest sessions of the key the dashboard uses
    (the playground's; on an agent without keys, every session)."""
    return _relayed_json(await _ask_agent(dashboard_of(request), request.path_params["name"], "GET",
                                          "/api/sessions?limit=100"))


def _session_path(request: Request) -> str:
    session_id = request.path_params["session_id"]
    if not re.fullmatch(r"[A-Za-z0-9._:\-]{1,128}", session_id):
        raise BadRequest("invalid session id")
    return "/api/sessions/" + quote(session_id, safe="")


async def agent_session(request: Request) -> Response:
    name = request.path_params["name"]
    response = await _ask_agent(dashboard_of(request), name, request.method, _session_path(request))
    if response.status_code == 204:
        return Response(status_code=204)
    return _relayed_json(response)


async def agent_samples(request: Request) -> JSONResponse:
    name = request.path_params["name"]
    return JSONResponse({"name": name, **dashboard_of(request).agents.samples(name)})


MAX_DECISION_BODY = 8192


async def agent_approvals(request: Request) -> JSONResponse:
    """The agent's pending approvals that the dashboard may decide: those of the playground's
    conversations (approvals belong to the key that caused them), or all of them on an agent without keys."""
    return _relayed_json(await _ask_agent(dashboard_of(request), request.path_params["name"], "GET",
                                          "/atoll/approvals"))


async def decide_approval(request: Request) -> JSONResponse:
    """``{"approve": true|false, "reason": "..."}``; it takes effect with the conversation's next message."""
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
    return _relayed_json(await _ask_agent(dashboard_of(request), request.path_params["name"], "POST",
                                          f"/atoll/approvals/{approval_id}", decision))


async def agent_chat(request: Request) -> Response:
    """``{"message": "...", "session_id": "..."}`` -> the agent's ``/api/chat`` NDJSON stream, relayed
    as it comes, tool calls and results (``atoll`` progress chunks) included."""
    dash = dashboard_of(request)
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
    agent = await _running(dash, name)
    request.scope.setdefault("state", {})["model"] = name
    # The page draws tool calls from the stream's ``atoll`` chunks, so no tool text in the answer.
    headers = {"Authorization": f"Bearer {agent.key}", "X-Session-ID": session_id, "Content-Type": "application/json",
               "X-Atoll-Tool-Activity": "off",
               "X-Request-ID": request.scope.get("state", {}).get("request_id", "")}
    payload = {"model": name, "messages": [{"role": "user", "content": message}], "stream": True}
    import aiohttp  # the relays' pool (atoll.deploy.relay_client) has imported it, or does now

    session = dash.client.session()
    try:
        response = await session.post(agent.url + "/api/chat",
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
