"""The Serve applications the Ray backend runs, by the builders :mod:`atoll.ray.serve_config` names
(``AGENT_BUILDER``, ``INGRESS_BUILDER``):

* an agent: each replica runs the unchanged agent server app (:func:`atoll.server.app.create_app`,
  its MCP stdio servers started inside the replica) and marks every answer ``X-Atoll-Replica``;
* the ingress: the front door (:mod:`atoll.ray.ingress`) at ``/``.

The apps are built inside the replicas (Serve's late-bound ``__serve_build_asgi_app__``), so nothing
of an agent is pickled but its arguments. This module imports ``ray``: only replicas and the
deployment server started with ``--backend ray`` import it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import serve
from ray.serve import Application
from ray.serve.deployment import Deployment
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atoll.deploy.agent_keys import AGENT_KEY_ENV
from atoll.ray.serve_config import AGENT_BUILDER, AGENT_DEPLOYMENT, INGRESS_BUILDER, INGRESS_DEPLOYMENT

if TYPE_CHECKING:
    from atoll.server.runtime import AgentRuntime

#: The response header naming the replica that answered.
REPLICA_HEADER = "X-Atoll-Replica"
#: How often a starting replica looks whether its agent is up.
READY_POLL_S = 0.05


def agent_key(secret: str, name: str) -> str:
    """The deployment's own key for agent ``name`` (``ATOLL_DEPLOY_AGENT_KEY`` in its replicas): one
    secret for the whole deployment, so the ingress knows the key of an agent deployed after it."""
    return hmac.new(secret.encode(), name.encode(), hashlib.sha256).hexdigest()


class ReplicaHeader:
    """Adds ``X-Atoll-Replica: <replica id>`` to every HTTP answer of ``app``."""

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app = app
        self.header = (REPLICA_HEADER.lower().encode(), replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, marked)


class ReadyAtStartup:
    """Finishes the ASGI lifespan startup only once the agent is up (provider and MCP servers
    connected), or after ``timeout`` seconds: Serve runs a replica's lifespan startup before it sends
    the replica any request, so none meets an agent still starting (a 503)."""

    def __init__(self, app: ASGIApp, runtime: AgentRuntime, timeout: float) -> None:
        self.app = app
        self.runtime = runtime
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def started(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                deadline = time.monotonic() + self.timeout
                # polled: the runtime leaves "starting" healthy or failed, and signals neither
                while self.runtime.state == "starting" and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(READY_POLL_S)
            await send(message)

        await self.app(scope, receive, started)


class AgentReplica:
    """One replica of one agent. ``secret``: the deployment's (see :func:`agent_key`); ``session_url``:
    the deployment server's ``ATOLL_SESSION_URL`` (an agent whose file names no session store then
    keeps its sessions in that Redis). Both reach the replica as arguments, not in its runtime_env,
    which Serve shows to anyone who can read its API."""

    def __init__(self, agent_file: str, secret: str = "", session_url: str = "") -> None:
        self.agent_file = agent_file
        self.secret = secret
        self.session_url = session_url

    def __serve_build_asgi_app__(self) -> ASGIApp:
        from atoll.config import load_agent_config
        from atoll.server.app import create_app
        from atoll.server.runtime import AgentRuntime

        if self.session_url:
            os.environ["ATOLL_SESSION_URL"] = self.session_url
        # [deployment] env, as the local deployment server sets it in an agent's process, before the
        # agent file is read for good (its $VARs may name these variables). mcp.json is read beside the
        # agent file, as an agent the local deployment server starts in its folder reads it.
        agent_file = Path(self.agent_file)
        os.environ.update(load_agent_config(agent_file, cwd=agent_file.parent).deployment.env)
        config = load_agent_config(agent_file, cwd=agent_file.parent)
        if self.secret:
            os.environ[AGENT_KEY_ENV] = agent_key(self.secret, config.agent.name)
        replica = serve.get_replica_context().replica_id.unique_id
        runtime = AgentRuntime(config)
        ready = ReadyAtStartup(create_app(runtime), runtime, config.deployment.startup_timeout)
        return ReplicaHeader(ready, replica)


class Ingress:
    """The front door at ``/``. ``front``: the settings it needs (see :func:`atoll.ray.ingress.build`)."""

    def __init__(self, front: dict[str, Any]) -> None:
        self.front = front

    def __serve_build_asgi_app__(self) -> ASGIApp:
        from atoll.ray.ingress import build

        return build(self.front)


AGENT: Deployment = serve.deployment(name=AGENT_DEPLOYMENT)(serve.ingress()(AgentReplica))
INGRESS: Deployment = serve.deployment(name=INGRESS_DEPLOYMENT)(serve.ingress()(Ingress))


def agent_app(args: dict[str, Any]) -> Application:
    """``AGENT_BUILDER``: ``args`` are :class:`AgentReplica`'s."""
    return AGENT.bind(**args)


def ingress_app(args: dict[str, Any]) -> Application:
    """``INGRESS_BUILDER``: ``args`` are :class:`Ingress`'s."""
    return INGRESS.bind(**args)


_DEPLOYMENTS = {AGENT_BUILDER: AGENT, INGRESS_BUILDER: INGRESS}


def application(spec: dict[str, Any], **extra_args: Any) -> Application:
    """One application of a Serve config (``ServeApplicationSchema``, from :mod:`atoll.ray.serve_config`)
    built here, with its deployment options and runtime_env applied, as Serve would build it from a
    declarative config: for ``serve.run``, which deploys one application without touching the others.
    ``extra_args``: arguments the config does not show (secrets)."""
    deployment = _DEPLOYMENTS[spec["import_path"]]
    (options,) = spec["deployments"]
    options = dict(options)
    if spec.get("runtime_env"):
        options["ray_actor_options"] = {**options.get("ray_actor_options", {}), "runtime_env": spec["runtime_env"]}
    return deployment.options(**options).bind(**spec["args"], **extra_args)
