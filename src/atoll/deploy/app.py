"""The deployment server's HTTP app: management API + Ollama front door on one port."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from atoll.deploy import api, front_door, passthrough
from atoll.deploy.backend import LocalBackend, Management
from atoll.deploy.config import RemoteServer
from atoll.deploy.context import PROXY_TIMEOUT, DeployContext
from atoll.deploy.directory import LocalDirectory
from atoll.deploy.errors import ManagementError
from atoll.deploy.front_context import FrontContext
from atoll.deploy.middleware import ManagementGuard
from atoll.deploy.relay import MAX_ROUTED_BODY
from atoll.deploy.remote import verify_for
from atoll.deploy.ui import api as dashboard_api
from atoll.deploy.ui import pages
from atoll.deploy.ui.context import DashboardContext
from atoll.deploy.ui.local import LocalAgents
from atoll.httpkit import FrontMiddleware, RouteTemplates
from atoll.httpkit.browser import browser_policy
from atoll.mcp_http import MCP_PATH, LazyMcpEndpoint

logger = logging.getLogger(__name__)

async def management_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ManagementError)
    return JSONResponse({"detail": exc.message, "error_code": exc.error_code}, status_code=exc.status)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    return JSONResponse({"detail": exc.detail, "error_code": code}, status_code=exc.status_code)


def _fleet_mcp(ctx: DeployContext) -> Callable[[], Any]:
    def build() -> Any:
        from atoll.deploy.mcp_door import build

        return build(ctx)

    return build


def create_app(ctx: DeployContext) -> Starlette:
    mcp = LazyMcpEndpoint(_fleet_mcp(ctx), max_body_bytes=MAX_ROUTED_BODY)
    routes = [*dashboard_api.routes(), *api.routes(), *front_door.routes(), *passthrough.routes(),
              *pages.routes(), Route(MCP_PATH, mcp)]
    if not ctx.config.admin_token:
        raise ValueError("the deployment server's app needs an admin token (see deploy/admin_token.py)")
    policy = browser_policy(ctx.config.cors_origins, ctx.config.allowed_hosts, server="deployment server")
    guard = Middleware(FrontMiddleware, policy=policy, route_template=RouteTemplates(routes),
                       record=ctx.stats.observe, authorize=ManagementGuard(ctx.admin_token, ctx.dashboard).authorize)
    app = Starlette(
        routes=routes,
        middleware=[guard],
        exception_handlers={ManagementError: management_error, HTTPException: http_error},
    )
    directory = LocalDirectory(ctx.supervisor, ctx.agent_keys)
    app.state.front = FrontContext(directory, ctx.config, ctx.client, ctx.probes)
    app.state.dashboard = DashboardContext(LocalAgents(ctx.supervisor, ctx.sampler, ctx.model_hosts), directory,
                                           ctx.admin_token, ctx.client, ctx.probes, ctx.feed, ctx.dashboard)
    app.state.management = Management(LocalBackend(ctx.supervisor, ctx.deployer, ctx.logs_dir, ctx.model_hosts),
                                      ctx.config, ctx.probes, ctx.stats, ctx.started)
    app.state.mcp = mcp  # closed by whoever serves the app (DeploymentService.run)
    return app


def make_client(remotes: list[RemoteServer]) -> httpx.AsyncClient:
    """One client for agents and remotes; an HTTPS remote with a ``ca_bundle`` gets a transport of
    its own that trusts that bundle (others verify against the system's CAs)."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=40)
    mounts = {r.url: httpx.AsyncHTTPTransport(verify=verify_for(r), trust_env=False, limits=limits)
              for r in remotes if r.tls and r.ca_bundle is not None}
    # trust_env=False: agents and remotes are addressed directly, never through a proxy.
    return httpx.AsyncClient(timeout=PROXY_TIMEOUT, trust_env=False, limits=limits, mounts=mounts)
