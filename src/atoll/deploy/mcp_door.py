"""The front door's ``/mcp``: one MCP tool per running agent, local and remote.

Each agent is itself an MCP server (its own ``/mcp``); the front door lists their tools (only
the agents' own tool, named after the agent) with its own credentials (its per-agent key, a
remote's ``api_key`` or none), as ``/api/tags`` lists them, and relays a call to the one agent it
names with the caller's own ``Authorization`` (a remote with an ``api_key`` gets that key),
passing progress notifications back as they come. Imported on the first ``/mcp`` request only (it loads the MCP SDK).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

import anyio
import httpx2
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel import Server
from starlette.requests import Request

from atoll._version import __version__
from atoll.delegation import META_KEYS
from atoll.deploy.config import RemoteServer
from atoll.deploy.relay import caller_auth
from atoll.deploy.remote import HOP_HEADER, front_door_auth, remote_models, verify_for
from atoll.deploy.runner import RUNNING
from atoll.model_names import model_key

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from atoll.deploy.context import DeployContext

logger = logging.getLogger(__name__)

#: The caller's delegation headers (``atoll.delegation``), passed on to the agent with the ``_meta``
#: keys of the same, so that ``[server] max_delegation_depth`` still bounds a loop through the fleet's ``/mcp``.
DELEGATION_HEADERS = tuple(header.lower() for header in META_KEYS.values())
#: Listing the fleet asks every agent; one that does not answer in time is left out.
LIST_TIMEOUT_S = 5.0


class Target:
    """Where one agent's MCP server is, and the headers to reach it with."""

    def __init__(self, name: str, url: str, headers: dict[str, str], verify: ssl.SSLContext | bool = True) -> None:
        self.name, self.url, self.headers, self.verify = name, url, headers, verify

    @asynccontextmanager
    async def client(self, timeout: float | None = None) -> AsyncIterator[Client]:
        http = httpx2.AsyncClient(headers=self.headers, timeout=httpx2.Timeout(30, read=timeout), trust_env=False,
                                  verify=self.verify)
        async with http, Client(streamable_http_client(self.url, http_client=http)) as client:
            yield client


class FleetMcp:
    def __init__(self, ctx: DeployContext) -> None:
        self.ctx = ctx
        self.server: Server[Any] = Server("atoll", version=__version__, description="Every atoll agent of this "
                                          "deployment server, one tool each.",
                                          on_list_tools=self.list_tools, on_call_tool=self.call_tool)

    def _headers(self, ctx: ServerRequestContext[Any], remote: RemoteServer | None, auth: str | None
                 ) -> dict[str, str]:
        request = ctx.request if isinstance(ctx.request, Request) else None
        headers = {"X-Request-ID": request.scope.get("state", {}).get("request_id", "")} if request else {}
        if request is not None:  # what the caller said about delegation (atoll.delegation) goes on
            headers |= {name: value for name in DELEGATION_HEADERS if (value := request.headers.get(name))}
        if remote is not None:
            headers[HOP_HEADER] = "1"
            auth = front_door_auth(remote, auth)
        if auth:
            headers["Authorization"] = auth
        return {k: v for k, v in headers.items() if v}

    async def _targets(self, ctx: ServerRequestContext[Any], caller: bool) -> list[Target]:
        """Every running agent, local then remote. With ``caller`` (a call to one of them) the
        headers carry the caller's ``Authorization``; otherwise (the listing) this server's own
        credentials only."""
        request = ctx.request if isinstance(ctx.request, Request) else None
        auth = caller_auth(request) if caller and request is not None else None  # never the admin token

        def local_auth(name: str) -> str | None:
            return auth if caller else self.ctx.agent_keys.headers(name)["Authorization"]

        local = [Target(r.spec.name, f"http://127.0.0.1:{r.port}/mcp",
                        self._headers(ctx, None, local_auth(r.spec.name)))
                 for r in self.ctx.supervisor.runners.values() if r.state == RUNNING]
        if request is not None and HOP_HEADER in request.headers:
            return local
        seen = {model_key(t.name) for t in local}
        remotes = [r for r in self.ctx.config.remote_servers if r.enabled]
        listings = await asyncio.gather(*(remote_models(self.ctx.probes, r) for r in remotes))
        for remote, listed in zip(remotes, listings, strict=True):
            for model in listed:
                name = model_key(str(model.get("name", "")))
                if name and name not in seen:
                    seen.add(name)
                    local.append(Target(name, remote.url.rstrip("/") + "/mcp", self._headers(ctx, remote, auth),
                                        verify_for(remote)))
        return local

    async def _agent_tool(self, target: Target) -> tuple[Target, types.Tool | None]:
        try:
            with anyio.fail_after(LIST_TIMEOUT_S):
                async with target.client(LIST_TIMEOUT_S) as client:
                    tools = (await client.list_tools()).tools
        except Exception as exc:  # an agent that refuses or does not answer is not listed
            logger.info("MCP tools of agent %s not listed: %s", target.name, _reason(exc))
            return target, None
        return target, next((t for t in tools if _is_tool_of(target.name, t.name)), None)

    async def list_tools(self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None,
                         ) -> types.ListToolsResult:
        found = await asyncio.gather(*(self._agent_tool(t) for t in await self._targets(ctx, caller=False)))
        return types.ListToolsResult(tools=[tool for _, tool in found if tool is not None])

    async def call_tool(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams,
                        ) -> types.CallToolResult:
        target = next((t for t in await self._targets(ctx, caller=True) if _is_tool_of(t.name, params.name)), None)
        if target is None:
            return _error(f"no running agent offers the tool {params.name!r}")

        async def relay(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        meta = {k: v for k, v in (params.meta or {}).items() if k in META_KEYS}
        try:
            async with target.client() as client:
                return await client.call_tool(params.name, params.arguments or {}, progress_callback=relay,
                                              meta=cast(types.RequestParamsMeta, meta) if meta else None)
        except Exception as exc:
            return _error(f"agent {target.name!r} could not be reached over MCP: {_reason(exc)}")


def _is_tool_of(agent: str, tool: str) -> bool:
    """Whether ``tool`` is the tool ``agent`` names after itself (its ``/`` becomes ``_``), as
    model names match: case-insensitively."""
    return agent.replace("/", "_").lower() == tool.lower()


def _reason(exc: BaseException) -> str:
    """The first real error inside the SDK's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return str(exc) or type(exc).__name__


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def build(ctx: DeployContext) -> Server[Any]:
    return FleetMcp(ctx).server
