"""What the front door's handlers (:mod:`atoll.deploy.front_door`, :mod:`atoll.deploy.passthrough`,
:mod:`atoll.deploy.relay`) need, whichever backend runs the agents: reached from the request."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from starlette.requests import Request

from atoll.deploy.config import DeploymentConfig, RemoteServer
from atoll.deploy.directory import AgentDirectory
from atoll.deploy.relay_client import RelayClient
from atoll.deploy.relay_slots import RelaySlots


@dataclass
class FrontContext:
    directory: AgentDirectory
    #: The deployment config: its admin token (never relayed), remotes and ``max_relays_per_agent``.
    config: DeploymentConfig
    #: Relays: long streams, capped per agent (aiohttp, imported by the first relay).
    client: RelayClient
    #: Listings: a pool of their own, so relays held open cannot starve them.
    probes: httpx.AsyncClient
    #: Model name -> the remote whose front door listed it.
    remote_index: dict[str, RemoteServer] = field(default_factory=dict)
    relays: RelaySlots = field(default_factory=RelaySlots)


def front_of(request: Request) -> FrontContext:
    front: FrontContext = request.app.state.front
    return front
