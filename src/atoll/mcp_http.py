"""An MCP server over streamable HTTP, as an ASGI app that costs nothing until it is used.

Both servers mount one at ``/mcp`` (the agent server: the agent; the deployment server: one tool
per agent). The MCP SDK is imported, and the server built, on the first request; the SDK's
session manager then runs in a task of its own until :meth:`LazyMcpEndpoint.aclose`. Requests
reach it through the host app's middleware (keys, limits, metrics, access lines), so the SDK's own
Host/Origin check is off. This module imports nothing heavy: the deployment server's memory is
budgeted.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Scope, Send

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"


class LazyMcpEndpoint:
    """``build`` returns the SDK's low-level ``Server`` (and does the heavy imports itself)."""

    def __init__(self, build: Callable[[], Any], *, max_body_bytes: int) -> None:
        self.build = build
        self.max_body_bytes = max_body_bytes
        self._ready: asyncio.Future[Any] | None = None
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
            # A context of its own: the sessions outlive the request that happened to start them.
            self._runner = asyncio.create_task(self._run(self._ready), context=contextvars.Context())
        handle = await asyncio.shield(self._ready)
        await handle(scope, receive, send)

    async def _run(self, ready: asyncio.Future[Any]) -> None:
        """Own the session manager's task group until :meth:`aclose`."""
        try:
            from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
            from mcp.server.transport_security import TransportSecuritySettings

            manager = StreamableHTTPSessionManager(
                self.build(), max_request_body_size=self.max_body_bytes,
                security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False))
            async with manager.run():
                ready.set_result(manager.handle_request)
                await asyncio.Event().wait()
        except Exception as exc:
            logger.exception("the MCP endpoint failed")
            if not ready.done():
                ready.set_exception(exc)

    async def aclose(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
