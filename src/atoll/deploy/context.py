"""What the deployment server's app is built from (:func:`atoll.deploy.app.create_app`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from atoll.deploy.agent_keys import AgentKeys
from atoll.deploy.config import DeploymentConfig
from atoll.deploy.deploy_zip import Deployer
from atoll.deploy.middleware import AdminToken, RequestStats
from atoll.deploy.model_hosts import ModelHosts
from atoll.deploy.relay_client import RelayClient
from atoll.deploy.supervisor import Supervisor
from atoll.deploy.ui.events import StateFeed
from atoll.deploy.ui.samples import Sampler
from atoll.deploy.ui.signin import DashboardSessions

#: No read timeout on relayed generations: the agent's own request_timeout bounds them.
PROXY_TIMEOUT = httpx.Timeout(connect=5.0, read=None, write=30.0, pool=None)


@dataclass
class DeployContext:
    supervisor: Supervisor
    deployer: Deployer
    config: DeploymentConfig
    logs_dir: Path
    #: Relays: the front door's and the dashboard's chat.
    client: RelayClient
    sampler: Sampler
    agent_keys: AgentKeys
    #: Probes, listings and management calls: not the relays' pool (``client``).
    probes: httpx.AsyncClient
    feed: StateFeed = field(default_factory=StateFeed)
    dashboard: DashboardSessions = field(default_factory=DashboardSessions)
    stats: RequestStats = field(default_factory=RequestStats)
    started: float = field(default_factory=time.monotonic)
    #: The shared model hosts (``atoll.deploy.model_hosts``), listed with the agents.
    model_hosts: ModelHosts | None = None

    @property
    def admin_token(self) -> AdminToken:
        return AdminToken(self.config.admin_token)
