"""``McpToolbox``: every configured MCP server behind the :class:`~atoll.tools.Toolbox` interface."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import anyio
from mcp.shared.exceptions import MCPError
from mcp.types import REQUEST_TIMEOUT
from pydantic import ValidationError

from atoll.config import McpServerConfig
from atoll.delegation import delegation_meta
from atoll.mcp_client.connection import McpConnection, ServerUnavailable
from atoll.mcp_client.naming import assign_names
from atoll.mcp_client.results import result_to_text
from atoll.messages import ToolResult, ToolSpec
from atoll.tools import ToolboxContext

logger = logging.getLogger(__name__)

#: Extra time past a call's own timeout before the toolbox gives up on it regardless
#: (covers a reconnect or a server that ignores the SDK's cancellation).
CALL_GRACE = 2.0
#: Ceiling of the backoff between attempts to reach a server that failed at start.
MAX_RETRY_INTERVAL = 600.0


class McpToolbox(ToolboxContext):
    """Tools of all enabled MCP servers, named uniquely across servers.

    ``start()`` connects to every server at once under one overall ``connect_timeout``; a server
    that fails or does not answer in time is left out with a warning, and the rest are served.
    Servers left out are tried again in the background, ``retry_interval`` seconds after start and
    then at doubling intervals (at most :data:`MAX_RETRY_INTERVAL`); their tools appear once they
    connect. A call runs for the ``timeout`` the caller passes (see :func:`atoll.tools.call_timeout`);
    the server's own ``timeout``, when its entry sets one, is on its tools' specs.
    """

    def __init__(self, servers: Mapping[str, McpServerConfig], *, connect_timeout: float = 10.0,
                 retry_interval: float = 30.0) -> None:
        self.connect_timeout = connect_timeout
        self.retry_interval = retry_interval
        self._retrying: asyncio.Task[None] | None = None
        self._connections = {
            name: McpConnection(name, config, connect_timeout=connect_timeout, on_tools_changed=self._rebuild)
            for name, config in servers.items()
        }
        self._specs: list[ToolSpec] = []
        self._routes: dict[str, tuple[McpConnection, str]] = {}

    @property
    def connections(self) -> dict[str, McpConnection]:
        return dict(self._connections)

    async def start(self) -> None:
        enabled = [c for c in self._connections.values() if c.enabled]
        for conn in self._connections.values():
            if not conn.enabled:
                logger.info("MCP server %r is disabled", conn.name)
        async with anyio.create_task_group() as tg:
            for conn in enabled:
                tg.start_soon(conn.connect)
        self._rebuild()
        connected = sum(c.state == "connected" for c in enabled)
        logger.info("MCP: %d of %d servers connected, %d tools", connected, len(enabled), len(self._specs))
        if connected < len(enabled) and self._retrying is None:
            self._retrying = asyncio.create_task(self._retry_failed(), name="mcp-retry")

    async def _retry_failed(self) -> None:
        """Try the servers that failed to connect again, backing off, until all are connected."""
        interval = self.retry_interval
        while failed := [c for c in self._connections.values() if c.enabled and c.state == "failed"]:
            logger.info("MCP server(s) %s not connected; retrying in %g s",
                        ", ".join(repr(c.name) for c in failed), interval)
            await asyncio.sleep(interval)
            results = await asyncio.gather(*(conn.connect() for conn in failed), return_exceptions=True)
            if any(result is True for result in results):
                self._rebuild()
            interval = min(interval * 2, MAX_RETRY_INTERVAL)

    def _rebuild(self) -> None:
        """Recompute the exposed names; called whenever a server's tool list changes."""
        entries = [
            (conn, tool)
            for conn in self._connections.values()
            if conn.enabled
            for tool in conn.tools
        ]
        names = assign_names([(conn.name, tool.name) for conn, tool in entries])
        self._specs = [
            ToolSpec(name=name, description=tool.description or tool.title or "",
                     parameters=tool.input_schema, source=conn.name, timeout=_own_timeout(conn.config))
            for name, (conn, tool) in zip(names, entries, strict=True)
        ]
        self._routes = {name: (conn, tool.name) for name, (conn, tool) in zip(names, entries, strict=True)}

    def specs(self) -> list[ToolSpec]:
        return list(self._specs)

    def status(self) -> dict[str, Any]:
        return {name: conn.status() for name, conn in self._connections.items()}

    async def call(self, name: str, arguments: dict[str, Any], *, timeout: float) -> ToolResult:
        """Run a tool; every failure comes back as ``ToolResult(is_error=True)``."""
        route = self._routes.get(name)
        if route is None:
            return ToolResult(content=f"unknown tool {name!r}", is_error=True)
        conn, tool = route
        started = time.perf_counter()
        content, is_error = await self._run_call(conn, tool, arguments, timeout)
        return ToolResult(content=content, is_error=is_error, source=conn.name,
                          duration_s=time.perf_counter() - started)

    async def _run_call(
        self, conn: McpConnection, tool: str, arguments: dict[str, Any], timeout: float
    ) -> tuple[str, bool]:
        timed_out = f"tool {tool!r} on MCP server {conn.name!r} timed out after {timeout:g} s"
        try:
            with anyio.fail_after(timeout + CALL_GRACE):
                result = await conn.call_tool(tool, arguments, timeout=timeout, meta=delegation_meta())
        except TimeoutError:
            return timed_out, True
        except MCPError as exc:
            if exc.error.code == REQUEST_TIMEOUT:
                return timed_out, True
            return f"MCP error {exc.error.code} from server {conn.name!r}: {exc.error.message}", True
        except ServerUnavailable as exc:
            return str(exc), True
        except ValidationError as exc:
            return f"MCP server {conn.name!r} sent an invalid result for {tool!r}: {exc}", True
        except Exception as exc:  # the boundary where a tool failure must become a result, not a crash
            logger.exception("MCP call %s.%s failed unexpectedly", conn.name, tool)
            return f"tool {tool!r} on MCP server {conn.name!r} failed: {type(exc).__name__}: {exc}", True
        return result_to_text(result), result.is_error

    async def aclose(self) -> None:
        """Close every connection; each stdio server process is ended."""
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
        async with anyio.create_task_group() as tg:
            for conn in self._connections.values():
                tg.start_soon(conn.aclose)


def _own_timeout(config: McpServerConfig) -> float | None:
    return config.timeout if "timeout" in config.model_fields_set else None
