"""The Ray backend's ingress: the local front door's routes (:mod:`atoll.deploy.front_door`: the Ollama
and OpenAI APIs for every agent, listings, routing by model name, the same errors), on a directory of
the agents Serve runs. Requests go on to an agent through Serve's own HTTP proxy at
``http://127.0.0.1:<http port>/agent/<name>``, the prefix Serve routes to the agent's application
(replica choice, queueing and autoscaling are Serve's).

The caller's ``Authorization`` goes to the one agent a request is routed to, whose ``[server]
api_keys`` decide, as on the local front door. Remote servers are not listed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from atoll.deploy import front_door
from atoll.deploy.app import http_error, make_client
from atoll.deploy.config import DeploymentConfig
from atoll.deploy.directory import AgentAddress, Unavailable
from atoll.deploy.front_context import FrontContext
from atoll.deploy.passthrough import PREFIX
from atoll.deploy.relay_client import RelayClient
from atoll.httpkit import FrontMiddleware, RouteTemplates
from atoll.httpkit.browser import browser_policy
from atoll.ray.apps import agent_key
from atoll.ray.states import AppState, agent_states

logger = logging.getLogger(__name__)

#: How often the ingress reads the agents' states from Serve (an unknown name is asked at once).
REFRESH_INTERVAL_S = 1.0


class ServeDirectory:
    """The agents Serve runs, read from ``serve.status()``."""

    def __init__(self, http_port: int, secret: str) -> None:
        self.base = f"http://127.0.0.1:{http_port}{PREFIX}"
        self.secret = secret
        self.apps: dict[str, AppState] = {}

    def _address(self, name: str) -> AgentAddress:
        return AgentAddress(name, self.base + quote(name, safe=""), agent_key(self.secret, name))

    def listed(self) -> list[AgentAddress]:
        return [self._address(app.name) for app in self.apps.values() if app.routable]

    async def find(self, name: str) -> AgentAddress | Unavailable | None:
        app = self._named(name)
        if app is None or not app.routable:  # deployed or started since the last reading?
            await self.refresh()
            app = self._named(name)
        if app is None:
            return None
        return self._address(app.name) if app.routable else Unavailable(app.name, app.state)

    def _named(self, name: str) -> AppState | None:
        return next((app for key, app in self.apps.items() if key.lower() == name), None)

    def names(self) -> list[str]:
        return list(self.apps)

    async def refresh(self) -> None:
        from ray import serve

        self.apps = agent_states(await asyncio.to_thread(serve.status))

    async def refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # the controller restarting: keep the last reading, try again
                logger.exception("cannot read the agents' states from Serve")
            await asyncio.sleep(REFRESH_INTERVAL_S)


def build(front: dict[str, Any]) -> Starlette:
    """The ingress app from :func:`atoll.ray.serve_config.ingress_settings`."""
    config = DeploymentConfig(max_relays_per_agent=front["max_relays_per_agent"],
                              cors_origins=front["cors_origins"], allowed_hosts=front["allowed_hosts"])
    directory = ServeDirectory(front["http_port"], front["secret"])
    client, probes = RelayClient([]), make_client([])

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        refreshing = asyncio.create_task(directory.refresh_forever())
        try:
            yield
        finally:
            refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refreshing
            await client.aclose()
            await probes.aclose()

    routes = front_door.routes()
    policy = browser_policy(config.cors_origins, config.allowed_hosts, server="Ray ingress")
    guard = Middleware(FrontMiddleware, policy=policy, route_template=RouteTemplates(routes))
    app = Starlette(routes=routes, middleware=[guard], lifespan=lifespan,
                    exception_handlers={HTTPException: http_error})
    app.state.front = FrontContext(directory, config, client, probes)
    return app
