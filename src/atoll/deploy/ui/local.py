"""The dashboard's view of the local deployment server's agents (:class:`atoll.deploy.ui.context.DashboardAgents`):
the supervisor's processes, the sampler's live columns and rings, and the shared model hosts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.deploy.supervisor import describe

if TYPE_CHECKING:
    from atoll.deploy.model_hosts import ModelHosts
    from atoll.deploy.runner import AgentRunner
    from atoll.deploy.supervisor import Supervisor
    from atoll.deploy.ui.samples import Sampler


class LocalAgents:
    def __init__(self, supervisor: Supervisor, sampler: Sampler, hosts: ModelHosts | None = None) -> None:
        self.supervisor = supervisor
        self.sampler = sampler
        self.hosts = hosts

    def _row(self, runner: AgentRunner, state: str | None = None) -> dict[str, Any]:
        row = describe(runner, self.supervisor.checksums.get(runner.spec.name))
        row.pop("log_tail", None)
        if state is not None:
            row["status"] = state
        row["auto_start"] = runner.spec.auto_start
        row.update(self.sampler.summary(runner.spec.name))
        return row

    async def snapshot(self) -> dict[str, Any]:
        """Every agent, the folders that could not start, and the model hosts the agents share (as
        ``GET /agents`` lists them: state, pid, port, model and which agents run on each)."""
        sup = self.supervisor
        hosts = self.hosts.statuses([r.spec for r in sup.runners.values()]) if self.hosts else []
        return {"agents": [self._row(r) for _, r in sorted(sup.runners.items())],
                "problems": [{"folder": str(p.folder), "name": p.name, "reason": p.reason} for p in sup.problems],
                "model_hosts": hosts}

    def row(self, name: str, state: str) -> dict[str, Any] | None:
        runner = self.supervisor.runners.get(name)
        return None if runner is None else self._row(runner, state)  # None: a model host, or removed

    def agent_file(self, name: str) -> Path:
        return self.supervisor.get(name).spec.agent_file

    def samples(self, name: str) -> dict[str, Any]:
        self.supervisor.get(name)
        return self.sampler.series(name)
