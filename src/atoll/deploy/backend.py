"""What the management API (:mod:`atoll.deploy.api`) asks of whatever runs the agents: the one seam
between its routes and a backend. :class:`LocalBackend` is the local supervisor's processes; the Ray
Serve backend is :class:`atoll.ray.backend.RayBackend`. The routes, their errors and the admin token
are the same on both.

An agent's status is the dict ``GET /agents/{name}`` answers (see :func:`atoll.deploy.supervisor.describe`);
a backend may add fields of its own (Ray: ``replicas``), and fills the ones it has no value for with None.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from starlette.requests import Request

from atoll.deploy.config import DeploymentConfig
from atoll.deploy.logs import log_paths, tail
from atoll.deploy.metrics import agent_families
from atoll.deploy.middleware import RequestStats

if TYPE_CHECKING:
    from atoll.deploy.deploy_zip import Deployer
    from atoll.deploy.metrics import Family
    from atoll.deploy.model_hosts import ModelHosts
    from atoll.deploy.supervisor import Supervisor


class Backend(Protocol):
    #: Largest agent package ``POST /agents/deploy`` takes.
    max_package_bytes: int

    async def statuses(self) -> list[dict[str, Any]]: ...

    async def status(self, name: str) -> dict[str, Any]:
        """Raises :class:`atoll.deploy.errors.AgentNotFound` for a name it does not know."""
        ...

    def problems(self) -> list[dict[str, Any]]:
        """Agent folders that could not be started: ``{"folder", "name", "reason"}``."""
        ...

    def model_hosts(self) -> list[dict[str, Any]]:
        """The shared embedded-model processes (:mod:`atoll.deploy.model_hosts`) beside the agents."""
        ...

    async def start(self, name: str, *, wait: bool) -> dict[str, Any]:
        """Idempotent; the status after it (``status`` ``failed`` when it could not start)."""
        ...

    async def stop(self, name: str) -> dict[str, Any]: ...

    async def restart(self, name: str, *, wait: bool, graceful: bool) -> dict[str, Any]: ...

    async def remove(self, name: str) -> None: ...

    async def deploy(self, data: bytes, *, name: str | None, force: bool) -> dict[str, Any]: ...

    async def logs(self, name: str, lines: int) -> dict[str, list[str]]:
        """The last ``lines`` lines of each of the agent's log streams (``stdout``, ``stderr``)."""
        ...

    async def agent_metrics(self) -> list[Family]:
        """The per-agent families of ``GET /metrics``."""
        ...


@dataclass
class Management:
    """What the management routes need, reached from the request (``app.state.management``)."""

    backend: Backend
    config: DeploymentConfig
    #: Remote servers' checks (``GET /remote``).
    probes: httpx.AsyncClient
    stats: RequestStats = field(default_factory=RequestStats)
    started: float = field(default_factory=time.monotonic)


def management_of(request: Request) -> Management:
    management: Management = request.app.state.management
    return management


class LocalBackend:
    """The local deployment server's agents: one supervised process each."""

    def __init__(self, supervisor: Supervisor, deployer: Deployer, logs_dir: Path,
                 hosts: ModelHosts | None = None) -> None:
        self.supervisor = supervisor
        self.deployer = deployer
        self.logs_dir = logs_dir
        self.hosts = hosts
        self.max_package_bytes = deployer.limits.max_package_bytes

    async def statuses(self) -> list[dict[str, Any]]:
        return self.supervisor.statuses()

    async def status(self, name: str) -> dict[str, Any]:
        return self.supervisor.status(name)

    def problems(self) -> list[dict[str, Any]]:
        return [{"folder": str(p.folder), "name": p.name, "reason": p.reason} for p in self.supervisor.problems]

    def model_hosts(self) -> list[dict[str, Any]]:
        if self.hosts is None:
            return []
        return self.hosts.statuses([runner.spec for runner in self.supervisor.runners.values()])

    async def start(self, name: str, *, wait: bool) -> dict[str, Any]:
        await self.supervisor.start(name, wait=wait)
        return self.supervisor.status(name)

    async def stop(self, name: str) -> dict[str, Any]:
        await self.supervisor.stop(name)
        return self.supervisor.status(name)

    async def restart(self, name: str, *, wait: bool, graceful: bool) -> dict[str, Any]:
        await self.supervisor.restart(name, wait=wait, graceful=graceful)
        return self.supervisor.status(name)

    async def remove(self, name: str) -> None:
        await self.deployer.remove(name)
        await self._release_hosts()

    async def deploy(self, data: bytes, *, name: str | None, force: bool) -> dict[str, Any]:
        try:
            return await self.deployer.deploy(data, name=name, force=force)
        finally:
            await self._release_hosts()

    async def _release_hosts(self) -> None:
        """The model hosts no agent needs any more stop (``ModelHosts.release_unused``)."""
        if self.hosts is not None:
            await self.hosts.release_unused([runner.spec for runner in self.supervisor.runners.values()])

    async def logs(self, name: str, lines: int) -> dict[str, list[str]]:
        if self.hosts is None or name not in self.hosts.runners:
            self.supervisor.get(name)
        return {stream: tail(path, lines) for stream, path in log_paths(self.logs_dir, name).items()}

    async def agent_metrics(self) -> list[Family]:
        return agent_families(self.supervisor, self.hosts)
