"""The caller's ``Authorization`` reaches only the one target its request is routed to: listings
(``/api/tags``, ``/v1/models``, ``/api/ps``, the front door's ``/mcp`` tools) and unknown model
names ask remotes with their own ``api_key`` or none. The remotes here are real HTTP servers that
record every ``Authorization`` they receive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from atoll.deploy.config import RemoteServer
from tests.deploy.conftest import make_config, running_server, write_agent
from tests.support.servers import free_port
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio

CALLER = "Bearer caller-secret"
REMOTE_KEY = "remote-own-key"


@contextlib.asynccontextmanager
async def recording_remote(model: str) -> AsyncIterator[tuple[int, list[tuple[str, str | None]]]]:
    """A remote front door serving ``model``: it lists it, answers a chat, and records (path,
    Authorization) for every request."""
    seen: list[tuple[str, str | None]] = []

    async def any_path(request: Request) -> Response:
        seen.append((request.url.path, request.headers.get("authorization")))
        if request.url.path == "/api/tags":
            return JSONResponse({"models": [{"name": f"{model}:latest", "model": f"{model}:latest",
                                             "modified_at": "2026-01-01T00:00:00+00:00", "size": 0,
                                             "digest": "", "details": {}}]})
        if request.url.path == "/api/chat":
            return JSONResponse({"model": model, "message": {"role": "assistant", "content": "far"}, "done": True})
        return JSONResponse({"error": "not here"}, status_code=404)

    app = Starlette(routes=[Route("/{path:path}", any_path, methods=["GET", "POST", "DELETE"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        await wait_until_async(lambda: server.started, timeout=10, what="the recording remote")
        yield port, seen
    finally:
        server.should_exit = True
        await task


async def test_callers_credentials_go_only_to_the_routed_target(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "alpha")
    async with recording_remote("bare") as (bare_port, bare_seen), \
            recording_remote("keyed") as (keyed_port, keyed_seen):
        remotes = [RemoteServer(name="bare", host="127.0.0.1", port=bare_port),
                   RemoteServer(name="keyed", host="127.0.0.1", port=keyed_port, api_key=REMOTE_KEY)]
        async with running_server(agents, make_config(remote_servers=remotes)) as run:
            caller = {"Authorization": CALLER}
            tags = await run.bare.get("/api/tags", headers=caller)
            assert sorted(m["name"] for m in tags.json()["models"]) == ["alpha:latest", "bare:latest",
                                                                        "keyed:latest"]
            models = await run.bare.get("/v1/models", headers=caller)
            assert len(models.json()["data"]) == 3
            assert (await run.bare.get("/api/ps", headers=caller)).status_code == 200
            unknown = await run.bare.post("/api/chat", headers=caller,
                                          json={"model": "nowhere", "messages": [{"role": "user", "content": "x"}]})
            assert unknown.status_code == 404
            async with httpx2.AsyncClient(headers=caller, timeout=httpx2.Timeout(30, read=60),
                                          trust_env=False) as http, \
                    Client(streamable_http_client(f"{run.url}/mcp", http_client=http)) as mcp:
                assert "alpha" in [t.name for t in (await mcp.list_tools()).tools]

            assert bare_seen and all(auth is None for _, auth in bare_seen), bare_seen
            assert keyed_seen and all(auth == f"Bearer {REMOTE_KEY}" for _, auth in keyed_seen), keyed_seen

            routed = await run.bare.post("/api/chat", headers=caller, json={
                "model": "bare", "messages": [{"role": "user", "content": "x"}], "stream": False})
            assert routed.status_code == 200 and routed.json()["message"]["content"] == "far"
            assert ("/api/chat", CALLER) in bare_seen  # the one target the request was routed to
            assert all(auth != CALLER for _, auth in keyed_seen)


async def test_the_admin_token_sent_to_the_front_doors_mcp_reaches_no_agent(tmp_path: Path) -> None:
    """A caller that sends the admin token to ``/mcp`` (it is accepted there as any bearer) must not
    have it relayed: it is for the management API only, like on every other front-door route."""
    agents = tmp_path / "agents"
    agents.mkdir()
    async with recording_remote("far") as (port, seen):
        remotes = [RemoteServer(name="far", host="127.0.0.1", port=port)]
        async with running_server(agents, make_config(remote_servers=remotes)) as run:
            admin = run.client.headers["Authorization"]
            async with httpx2.AsyncClient(headers={"Authorization": admin}, timeout=httpx2.Timeout(30, read=60),
                                          trust_env=False) as http, \
                    Client(streamable_http_client(f"{run.url}/mcp", http_client=http)) as mcp:
                result = await mcp.call_tool("far", {"message": "hi"})
            assert result.is_error  # the recording remote is no MCP server
            relayed = [auth for path, auth in seen if path == "/mcp"]
            assert relayed, seen
            assert admin not in relayed and all(auth is None for auth in relayed), relayed
