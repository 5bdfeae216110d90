"""The dashboard on Ray Serve (:class:`atoll.deploy.ui.context.DashboardAgents`, and where it finds an
agent): the same page and routes as on the local backend, on :class:`atoll.ray.backend.RayBackend`.

* the table: the backend's statuses (Serve's states and replicas; no pid, health or request rates:
  Serve keeps those), as a snapshot every few seconds (Serve tells of no change as it happens);
* tools, sessions, approvals and the chat playground: through Serve's proxy to ``/agent/<name>``,
  with the key the agent's replicas accept from this deployment (:func:`atoll.ray.apps.agent_key`),
  so Serve picks the replica (a session on shared storage continues on any of them);
* no metrics ring: Serve's replicas are not this server's to scrape (Ray's own metrics have them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.deploy.directory import AgentAddress, Unavailable
from atoll.ray.ingress import ServeDirectory

if TYPE_CHECKING:
    from atoll.ray.backend import RayBackend

NO_SAMPLES = "No metrics ring on the Ray backend: Ray's own metrics and dashboard show the replicas'."


class RayAgents:
    def __init__(self, backend: RayBackend) -> None:
        self.backend = backend

    async def snapshot(self) -> dict[str, Any]:
        agents = await self.backend.statuses()
        for agent in agents:
            agent.pop("log_tail", None)
        return {"agents": agents, "problems": self.backend.problems(), "model_hosts": self.backend.model_hosts()}

    def row(self, name: str, state: str) -> dict[str, Any] | None:
        return None  # nothing publishes changes on this backend

    def agent_file(self, name: str) -> Path:
        return self.backend.agent_file(name)

    def samples(self, name: str) -> dict[str, Any]:
        self.backend.agent_file(name)
        return {"interval_s": None, "t": [], "requests_per_s": [], "tokens_per_s": [], "p50_ms": [], "p95_ms": [],
                "note": NO_SAMPLES}


class CurrentServeDirectory(ServeDirectory):
    """Reads Serve's states at every lookup: the dashboard asks now and then, and a stopped agent must
    answer 409 (not running), not a 404 from Serve's proxy."""

    async def find(self, name: str) -> AgentAddress | Unavailable | None:
        await self.refresh()
        return await super().find(name)
