"""What the dashboard's routes (:mod:`atoll.deploy.ui.api`, :mod:`atoll.deploy.ui.pages`) need,
whichever backend runs the agents: reached from the request (``app.state.dashboard``).

The page reads three seams: the management API's :class:`atoll.deploy.backend.Backend` (the actions
and logs, in :mod:`atoll.deploy.api`), the front door's :class:`atoll.deploy.directory.AgentDirectory`
(where an agent answers and the deployment server's own key for it: its tools, sessions, approvals
and the chat playground), and :class:`DashboardAgents` below (the table, an agent's file, its metrics
ring). The local backend's are :mod:`atoll.deploy.ui.local`; Ray Serve's :mod:`atoll.ray.dashboard`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from starlette.requests import Request

from atoll.deploy.directory import AgentDirectory
from atoll.deploy.middleware import AdminToken
from atoll.deploy.relay_client import RelayClient
from atoll.deploy.ui.events import StateFeed
from atoll.deploy.ui.signin import DashboardSessions


class DashboardAgents(Protocol):
    async def snapshot(self) -> dict[str, Any]:
        """``{"agents": [...], "problems": [...], "model_hosts": [...]}``: what the table shows."""
        ...

    def row(self, name: str, state: str) -> dict[str, Any] | None:
        """Agent ``name``'s row after the feed announced ``state``; None: send a whole snapshot."""
        ...

    def agent_file(self, name: str) -> Path:
        """Raises :class:`atoll.deploy.errors.AgentNotFound` for a name it does not know."""
        ...

    def samples(self, name: str) -> dict[str, Any]:
        """The metrics ring as the charts draw it (:meth:`atoll.deploy.ui.samples.Sampler.series`)."""
        ...


@dataclass
class DashboardContext:
    agents: DashboardAgents
    directory: AgentDirectory
    admin_token: AdminToken
    #: The chat playground's relays (the front door's pool).
    client: RelayClient
    #: Calls to agents (tools, sessions, approvals): not the relays' pool.
    probes: httpx.AsyncClient
    #: State changes as they happen; a backend without it sends snapshots alone.
    feed: StateFeed = field(default_factory=StateFeed)
    sessions: DashboardSessions = field(default_factory=DashboardSessions)


def dashboard_of(request: Request) -> DashboardContext:
    dashboard: DashboardContext = request.app.state.dashboard
    return dashboard
