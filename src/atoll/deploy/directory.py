"""Where the front door finds an agent: the one seam between the front door's routing and whatever
runs the agents (the local supervisor's processes here, Ray Serve applications in
:mod:`atoll.ray.ingress`). The front door's behaviour (listings, routing by model name, errors,
relaying) is written once, in :mod:`atoll.deploy.front_door` and :mod:`atoll.deploy.relay`, on top of
an :class:`AgentDirectory`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from atoll.deploy.runner import RUNNING, UNHEALTHY

if TYPE_CHECKING:
    from atoll.deploy.agent_keys import AgentKeys
    from atoll.deploy.supervisor import Supervisor


@dataclass(frozen=True)
class AgentAddress:
    """One agent the front door can reach."""

    name: str
    #: Where the agent's own API is (its ``/api/tags`` is ``url + "/api/tags"``).
    url: str
    #: The deployment server's own key for this agent (``ATOLL_DEPLOY_AGENT_KEY`` in the agent):
    #: listings are asked with it, and it proves the caller's address the front door passes on.
    key: str


@dataclass(frozen=True)
class Unavailable:
    """An agent the front door knows but cannot send requests to now (a 503 naming ``state``)."""

    name: str
    state: str


class AgentDirectory(Protocol):
    def listed(self) -> list[AgentAddress]:
        """The agents whose models the listings (``/api/tags``, ``/v1/models``, ``/api/ps``) show."""
        ...

    async def find(self, name: str) -> AgentAddress | Unavailable | None:
        """The agent called ``name`` (already lower-cased: model names match case-insensitively),
        or why it cannot be reached, or None when there is no such agent here."""
        ...

    def names(self) -> list[str]:
        """Every agent's name, for "not found" messages."""
        ...


class LocalDirectory:
    """The local deployment server's agents: processes on ``http://127.0.0.1:<port>``."""

    def __init__(self, supervisor: Supervisor, agent_keys: AgentKeys) -> None:
        self.supervisor = supervisor
        self.agent_keys = agent_keys

    def _address(self, name: str, port: int) -> AgentAddress:
        return AgentAddress(name, f"http://127.0.0.1:{port}", self.agent_keys.key_for(name))

    def listed(self) -> list[AgentAddress]:
        return [self._address(r.spec.name, r.port) for r in self.supervisor.runners.values() if r.state == RUNNING]

    async def find(self, name: str) -> AgentAddress | Unavailable | None:
        runner = next((r for agent, r in self.supervisor.runners.items() if agent.lower() == name), None)
        if runner is None:
            return None
        if runner.state not in (RUNNING, UNHEALTHY):
            return Unavailable(runner.spec.name, runner.state)
        return self._address(runner.spec.name, runner.port)

    def names(self) -> list[str]:
        return [r.spec.name for r in self.supervisor.runners.values()]
