"""``atoll --backend ray``: the deployment server with its agents on Ray Serve.

1. the cluster: ``--ray-address`` joins one; without it a local single-node head starts
   (:class:`atoll.ray.cluster.LocalHead`, 127.0.0.1 only, token auth) and stops on exit;
2. Serve's HTTP proxy on 127.0.0.1:``--http-port``: the ingress application at ``/`` (the Ollama and
   OpenAI APIs for every agent) and each agent's application at ``/agent/<name>``;
3. the management API (same routes, same admin token as the local backend) and the dashboard at
   ``/ui`` (:mod:`atoll.ray.dashboard`) on ``--api-port``, on a :class:`atoll.ray.backend.RayBackend`;
4. on SIGINT/SIGTERM: every application this server deployed is deleted, the local head stopped.
   SIGHUP (``atoll restart-server``, ``systemctl reload``) is logged and ignored: this backend
   cannot hand its agents over to a re-executed server, and SIGHUP's default would end it without
   that cleanup.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from atoll._version import __version__
from atoll.config import atoll_home
from atoll.deploy import api
from atoll.deploy.admin_token import admin_token_path, ensure_admin_token
from atoll.deploy.app import http_error, make_client, management_error
from atoll.deploy.backend import Management
from atoll.deploy.config import STATE_FILE_NAME, DeploymentConfig
from atoll.deploy.errors import ManagementError
from atoll.deploy.middleware import AdminToken, ManagementGuard
from atoll.deploy.relay_client import RelayClient
from atoll.deploy.restart import RAY_REFUSAL
from atoll.deploy.service import QuietServer, bind_api_socket
from atoll.deploy.state import StateFile, other_live_server, read_state
from atoll.deploy.ui import api as dashboard_api
from atoll.deploy.ui import pages
from atoll.deploy.ui.context import DashboardContext
from atoll.httpkit import FrontMiddleware, RouteTemplates
from atoll.httpkit.browser import browser_policy
from atoll.httpkit.serving import UVICORN_OPTIONS, tls_options
from atoll.ray.cluster import LocalHead, connect

if TYPE_CHECKING:
    from atoll.ray.backend import RayBackend

logger = logging.getLogger(__name__)

#: The resource only Ray's head node has.
HEAD_NODE = "node:__internal_head__"


@dataclass(frozen=True)
class RayOptions:
    #: ``auto`` or ``HOST:PORT`` of an existing cluster; None starts a local head.
    address: str | None
    http_port: int


def management_app(management: Management, dashboard: DashboardContext, config: DeploymentConfig) -> Starlette:
    """The management API and the dashboard (the front door is the Serve ingress on this backend)."""
    routes = [*dashboard_api.routes(), *api.routes(), *pages.routes()]
    policy = browser_policy(config.cors_origins, config.allowed_hosts, server="deployment server")
    guard = Middleware(FrontMiddleware, policy=policy, route_template=RouteTemplates(routes),
                       record=management.stats.observe,
                       authorize=ManagementGuard(dashboard.admin_token, dashboard.sessions).authorize)
    app = Starlette(routes=routes, middleware=[guard],
                    exception_handlers={ManagementError: management_error, HTTPException: http_error})
    app.state.management = management
    app.state.dashboard = dashboard
    return app


async def start_serve(options: RayOptions, config: DeploymentConfig, secret: str) -> None:
    """Serve's HTTP proxy on the head node's 127.0.0.1, then the ingress application on the head node
    too (it sends requests on to the agents through that proxy, which reaches replicas on any node)."""
    from ray import serve

    from atoll.ray.apps import application
    from atoll.ray.serve_config import INGRESS_APP, ingress_application, ingress_settings

    await asyncio.to_thread(serve.start, proxy_location="HeadOnly",
                            http_options={"host": "127.0.0.1", "port": options.http_port})
    spec = ingress_application(ray_actor_options={"num_cpus": 0.1, "resources": {HEAD_NODE: 0.001}})
    target = application(spec, front=ingress_settings(config, options.http_port, secret))
    await asyncio.to_thread(serve.run, target, name=INGRESS_APP, route_prefix="/")


async def run(config: DeploymentConfig, agents_dir: Path, options: RayOptions,
              on_ready: Callable[[str, RayBackend, Path | None], Awaitable[None]] | None = None) -> None:
    home = atoll_home()
    token_file = None
    if not config.admin_token:
        config = config.model_copy(update={"admin_token": ensure_admin_token(home)})
        token_file = admin_token_path(home)
    assert config.admin_token
    sock = bind_api_socket(config)
    head = None
    stop = asyncio.Event()
    _handle_signals(stop)
    backend = None
    try:
        address = options.address
        if address is None:
            head = LocalHead(home / "run")
            os.environ.update(head.driver_env())  # before ray is imported (connect imports it)
            address = head.start()  # in this (the main) thread: see LocalHead.start
        connect(address)  # the main thread too: Ray sets its signal handlers there
        _handle_signals(stop)  # again: Ray's driver installs handlers of its own
        from atoll.ray.backend import RayBackend

        secret = secrets.token_urlsafe(32)
        await start_serve(options, config, secret)
        backend = RayBackend(agents_dir, http_port=options.http_port, secret=secret,
                             session_url=os.environ.get("ATOLL_SESSION_URL") or None,
                             startup_timeout=config.startup_timeout, keep_old_versions=config.keep_old_versions,
                             max_agents=config.max_agents)
        await backend.start_all()
        await _serve_management(config, backend, sock, stop, token_file, on_ready)
    finally:
        await _shut_down(backend, head)


def _handle_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, logger.warning, "SIGHUP ignored: %s", RAY_REFUSAL)


async def _serve_management(config: DeploymentConfig, backend: RayBackend, sock: socket.socket,
                            stop: asyncio.Event, token_file: Path | None,
                            on_ready: Callable[[str, RayBackend, Path | None], Awaitable[None]] | None) -> None:
    from atoll.ray.dashboard import CurrentServeDirectory, RayAgents

    probes, client = make_client(config.remote_servers), RelayClient([])
    assert config.admin_token
    dashboard = DashboardContext(RayAgents(backend), CurrentServeDirectory(backend.http_port, backend.secret),
                                 AdminToken(config.admin_token), client, probes)
    app = management_app(Management(backend, config, probes), dashboard, config)
    tls = tls_options(config.tls_cert, config.tls_key, where="deployment config")
    server = QuietServer(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                         **UVICORN_OPTIONS, **tls,
                                         timeout_graceful_shutdown=math.ceil(config.drain_timeout)))
    url = f"{'https' if tls else 'http'}://{config.bind_host}:{sock.getsockname()[1]}"
    state = StateFile(home_state())
    if other_live_server(read_state(state.path), set()) is None:
        state.server = {"pid": os.getpid(), "instance": uuid.uuid4().hex, "create_time": psutil.Process().create_time(),
                        "url": url, "agents_dir": str(backend.agents_dir), "started": time.time(),
                        "atoll_version": __version__, "backend": "ray", "ready": True}
        state.save([])
    else:
        state.enabled = False
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        if on_ready is not None:
            await on_ready(url, backend, token_file)
        await stop.wait()
    finally:
        dashboard.feed.close()  # the dashboard's live streams end, so the server can stop
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        await client.aclose()
        await probes.aclose()
        sock.close()
        state.clear()


def home_state() -> Path:
    return atoll_home() / STATE_FILE_NAME


async def _shut_down(backend: RayBackend | None, head: LocalHead | None) -> None:
    """Delete what this server deployed, leave the cluster, stop the local head."""
    import ray

    if ray.is_initialized():
        from ray import serve

        from atoll.ray.serve_config import INGRESS_APP

        if backend is not None:
            await backend.stop_all()
        try:
            await asyncio.to_thread(serve.delete, INGRESS_APP)
            if head is not None:
                await asyncio.to_thread(serve.shutdown)
        except Exception:  # the cluster may already be gone: nothing left to delete
            logger.exception("cannot delete the Serve applications")
        ray.shutdown()
    if head is not None:
        await asyncio.to_thread(head.stop)
