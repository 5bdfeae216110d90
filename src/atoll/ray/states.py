"""Serve's view of the agents (``serve.status()``) in the deployment server's words: one state per
agent, as the management API, ``atoll status`` and the ingress's routing read it.

An agent is an application whose deployment is called ``AGENT_DEPLOYMENT``; other applications on a
shared cluster (and the ingress) are not agents. An application Serve is still deploying is
``running`` as soon as one replica of it runs (a rollout: the old version keeps serving), else
``starting``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from atoll.deploy.runner import FAILED, RUNNING, STARTING, STOPPING, UNHEALTHY
from atoll.ray.serve_config import AGENT_DEPLOYMENT

#: Serve's application status -> the agent's state (``DEPLOYING`` depends on its replicas).
_STATES = {"RUNNING": RUNNING, "UNHEALTHY": UNHEALTHY, "DEPLOY_FAILED": FAILED, "DELETING": STOPPING,
           "NOT_STARTED": STARTING, "DEPLOYING": STARTING}


@dataclass(frozen=True)
class AppState:
    name: str
    state: str
    #: Replicas by Serve's replica state (``RUNNING``, ``STARTING``, ``STOPPING``, ...).
    replicas: dict[str, int] = field(default_factory=dict)
    #: Serve's message for a failed or unhealthy application ("" otherwise).
    message: str = ""
    #: When Serve last deployed it (seconds since the epoch).
    deployed_at: float | None = None

    @property
    def running_replicas(self) -> int:
        return self.replicas.get("RUNNING", 0)

    @property
    def routable(self) -> bool:
        """Requests can reach a replica."""
        return self.state in (RUNNING, UNHEALTHY) and self.running_replicas > 0


def agent_states(status: Any) -> dict[str, AppState]:
    """``serve.status()`` -> the agents' states by application (= agent) name."""
    found = {}
    for name, app in status.applications.items():
        deployment = app.deployments.get(AGENT_DEPLOYMENT)
        if deployment is None:
            continue
        replicas = {str(getattr(k, "value", k)): int(v) for k, v in deployment.replica_states.items() if v}
        serve_state = str(getattr(app.status, "value", app.status))
        state = _STATES.get(serve_state, STARTING)
        if serve_state == "DEPLOYING" and replicas.get("RUNNING", 0):
            state = RUNNING
        message = app.message or deployment.message if state in (FAILED, UNHEALTHY) else ""
        found[name] = AppState(name, state, replicas, message, app.last_deployed_time_s or None)
    return found
