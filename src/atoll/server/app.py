"""``create_app``: the FastAPI application for one agent, and its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp

from atoll._version import __version__
from atoll.dialects.a2a import A2A_PATH, CARD_PATH
from atoll.mcp_http import MCP_PATH, LazyMcpEndpoint
from atoll.server import (
    routes_approvals,
    routes_atoll,
    routes_embed,
    routes_manage,
    routes_ollama,
    routes_openai,
    routes_sessions,
)
from atoll.server.errors import install_error_handlers
from atoll.server.lazy import LazyApp
from atoll.server.observability import install_observability
from atoll.server.openapi import document_request_bodies
from atoll.server.runtime import AgentRuntime
from atoll.server.security import install_security

logger = logging.getLogger(__name__)



async def _start(runtime: AgentRuntime) -> None:
    """Bring the agent up in the background, so ``/health`` can say "starting" meanwhile."""
    try:
        await runtime.start()
        logger.info("agent %s is ready", runtime.name)
    except Exception as exc:
        runtime.state = "unhealthy"
        runtime.error = str(exc)
        logger.exception("agent %s failed to start", runtime.name)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime: AgentRuntime = app.state.runtime
    starting = asyncio.create_task(_start(runtime))
    cleanup = asyncio.create_task(
        runtime.sessions.cleanup_forever(runtime.config.server.session_cleanup_interval_s))
    try:
        yield
    finally:
        cleanup.cancel()
        starting.cancel()
        for task in (cleanup, starting):
            with suppress(asyncio.CancelledError):
                await task
        try:
            await app.state.mcp.aclose()
        finally:
            await runtime.aclose()


def _agent_mcp(runtime: AgentRuntime) -> Callable[[], Any]:
    def build() -> Any:
        from atoll.server.mcp_server import AgentMcp

        return AgentMcp(runtime).server

    return build


def _a2a_app(runtime: AgentRuntime) -> Callable[[], ASGIApp]:
    def build() -> ASGIApp:
        from atoll.server.a2a_server import build_app

        return build_app(runtime)

    return build


def create_app(runtime: AgentRuntime) -> FastAPI:
    app = FastAPI(title=f"atoll agent {runtime.name}", version=__version__, lifespan=lifespan,
                  docs_url="/atoll/docs", redoc_url=None, openapi_url="/atoll/openapi.json")
    app.state.runtime = runtime
    install_error_handlers(app)
    app.router.routes[:0] = [*routes_ollama.plain_routes, *routes_openai.plain_routes]
    app.state.mcp = LazyMcpEndpoint(_agent_mcp(runtime), max_body_bytes=runtime.config.server.max_body_bytes)
    app.router.routes.append(Route(MCP_PATH, app.state.mcp))
    a2a = LazyApp(_a2a_app(runtime))
    app.router.routes += [Route(CARD_PATH, a2a, methods=["GET"]), Route(A2A_PATH, a2a, methods=["POST"])]
    for module in (routes_ollama, routes_embed, routes_manage, routes_openai, routes_sessions, routes_atoll,
                   routes_approvals):
        app.include_router(module.router)
    install_security(app, runtime.config.server)
    install_observability(app, runtime)
    document_request_bodies(app)
    return app
