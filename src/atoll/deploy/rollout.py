"""Zero-downtime rollout of one agent (a redeploy, or ``POST /agents/{name}/restart``):

1. start the new version beside the old one: its own probe port, and the agent's stable-port
   socket, on which it accepts only once it is healthy (``atoll.server.supervised``);
2. wait for its health (startup timeout); if it exits or never gets healthy, stop it and raise
   ``RolloutFailed`` with its reason and log tail: the old version never stopped serving;
3. supervise the new process from now on (the front door routes to the stable port, so it needs
   no switch), and record it in the state file;
4. drain the old one, in the background (the rollout answers once the new version serves): SIGTERM
   makes it stop accepting and finish its requests and streams (``[server] drain_timeout``); after
   ``drain_timeout`` + ``stop_timeout`` it is killed. Stopping the agent waits for it.
"""

from __future__ import annotations

import asyncio
import logging

from atoll.deploy.discover import AgentSpec
from atoll.deploy.errors import ManagementError
from atoll.deploy.runner import CONFIG_ERROR_EXIT, RESTARTING, RUNNING, STARTING, UNHEALTHY, AgentRunner

logger = logging.getLogger(__name__)


class RolloutFailed(ManagementError):
    def __init__(self, message: str, log_tail: list[str], exit_code: int | None) -> None:
        super().__init__(message, error_code="NEW_VERSION_FAILED", status=500)
        self.log_tail = log_tail
        #: The new version's exit code when it exited (2: its configuration is invalid).
        self.exit_code = exit_code


async def roll(runner: AgentRunner, spec: AgentSpec, *, drain_timeout: float) -> None:
    """Replace the running process of ``runner`` by one of ``spec`` without a gap."""
    if runner.state not in (RUNNING, UNHEALTHY) or runner.proc is None:
        raise ManagementError(f"agent {spec.name} is not running (state: {runner.state})",
                              error_code="AGENT_NOT_RUNNING", status=409)
    # The runner stays "running" (the old version serves on); watchers such as the dashboard are
    # told of the rollout's steps all the same.
    announce = runner.deps.on_state
    announce(spec.name, RESTARTING)
    new = await runner.deps.spawn(spec, runner.port)
    announce(spec.name, STARTING)
    try:
        failure = await runner.await_ready(new, spec)
    except asyncio.CancelledError:  # the deployment server stops meanwhile: the old version serves on
        await runner.terminate(new)
        raise
    if failure is not None:
        if new.returncode == CONFIG_ERROR_EXIT:
            failure = runner.config_error_reason(failure)
        await runner.terminate(new)
        announce(spec.name, runner.state)
        tail = runner.deps.log_tail(spec.name, 20)
        logger.error("agent %s: the new version failed (%s); the old one keeps serving", spec.name, failure)
        raise RolloutFailed(f"the new version of {spec.name} failed: {failure}; the previous version "
                            f"keeps serving. Log tail: {tail[-5:]}", tail, new.returncode)
    old = await runner.detach()
    runner.switch_to(new, spec)
    announce(spec.name, runner.state)
    logger.info("agent %s: new version pid %s serving; draining pid %s", spec.name, new.pid,
                old.pid if old else None)
    if old is not None:  # in the background: the agent is free for its next command meanwhile
        runner.retire(old, grace=drain_timeout + runner.timeouts.stop)
