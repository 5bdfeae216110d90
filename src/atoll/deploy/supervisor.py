"""The supervisor: one ``AgentRunner`` per agent, ports handed out once, and commands serialised per
agent. A command arriving while another runs on the same agent is a ``Conflict`` (409), never a
silent failure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from atoll.deploy.discover import AgentSpec, Problem
from atoll.deploy.errors import AgentNotFound, Conflict
from atoll.deploy.policy import BackoffPolicy, CrashLoopGuard, Timeouts
from atoll.deploy.ports import PortAllocator
from atoll.deploy.rollout import roll
from atoll.deploy.runner import FAILED, RUNNING, SETTLED, UNHEALTHY, AgentRunner, RunnerDeps
from atoll.deploy.state import AgentRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SupervisorSettings:
    timeouts: Timeouts = field(default_factory=Timeouts)
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    max_restarts: int = 5
    restart_window: float = 60.0
    restart_on_failure: bool = True
    #: How long an old version may take to finish its requests after a rollout (then SIGKILL).
    drain_timeout: float = 30.0


class Supervisor:
    def __init__(self, deps: RunnerDeps, ports: PortAllocator, settings: SupervisorSettings | None = None,
                 *, max_agents: int = 50) -> None:
        self.deps = deps
        self.ports = ports
        self.settings = settings or SupervisorSettings()
        self.max_agents = max_agents
        self.runners: dict[str, AgentRunner] = {}
        self.problems: list[Problem] = []
        self.checksums: dict[str, str] = {}
        self._busy: set[str] = set()
        #: New agents a deploy is installing: they count against ``max_agents`` already.
        self._arriving: set[str] = set()
        #: Called with an agent's port when the agent is forgotten (its stable-port socket closes).
        self.on_port_released: Callable[[int], None] = lambda port: None

    # ---- registry -------------------------------------------------------------------------------

    def add(self, spec: AgentSpec) -> AgentRunner:
        if spec.name in self.runners:
            raise Conflict(f"Agent already exists: {spec.name}", error_code="AGENT_EXISTS")
        self._check_room(spec.name)
        port = self.ports.assign(spec.name, spec.preferred_port)
        settings = self.settings
        runner = AgentRunner(
            spec, port, self.deps, timeouts=settings.timeouts, backoff=settings.backoff,
            guard=CrashLoopGuard(settings.max_restarts, settings.restart_window),
            restart_on_failure=settings.restart_on_failure,
        )
        self.runners[spec.name] = runner
        return runner

    @contextlib.contextmanager
    def room_for(self, spec: AgentSpec) -> Iterator[None]:
        """Hold a slot and a port for a new agent while a deploy installs it, so that past
        ``max_agents`` or without a free port the deploy is a 409 before anything is written. Both
        are given back if the agent was not added by the end."""
        self._check_room(spec.name)
        self.ports.assign(spec.name, spec.preferred_port)
        self._arriving.add(spec.name)
        try:
            yield
        finally:
            self._arriving.discard(spec.name)
            if spec.name not in self.runners:
                self.ports.release(spec.name)

    def _check_room(self, name: str) -> None:
        if len(self.runners) + len(self._arriving - {name}) >= self.max_agents:
            raise Conflict(f"max_agents ({self.max_agents}) reached", error_code="MAX_AGENTS")

    def get(self, name: str) -> AgentRunner:
        try:
            return self.runners[name]
        except KeyError:
            raise AgentNotFound(name, self._named_by_folder(name)) from None

    def _named_by_folder(self, folder: str) -> str | None:
        """The name of the agent whose folder is called ``folder``, for a "did you mean" hint."""
        return next((r.spec.name for r in self.runners.values() if r.spec.folder.name == folder), None)

    def replace_spec(self, spec: AgentSpec) -> None:
        """Point an existing (stopped) agent at a new version of its folder; it keeps its port."""
        self.get(spec.name).spec = spec

    @contextlib.asynccontextmanager
    async def command(self, name: str) -> AsyncIterator[AgentRunner]:
        """Hold the agent for one command; a second command meanwhile is a 409."""
        runner = self.get(name)
        if name in self._busy:
            raise Conflict(f"Another command is in progress for agent {name}", error_code="AGENT_BUSY")
        self._busy.add(name)
        try:
            yield runner
        finally:
            self._busy.discard(name)

    @contextlib.asynccontextmanager
    async def reserve(self, name: str) -> AsyncIterator[None]:
        """Like ``command`` for a name that may not exist yet (a deploy)."""
        if name in self._busy:
            raise Conflict(f"Another command is in progress for agent {name}", error_code="AGENT_BUSY")
        self._busy.add(name)
        try:
            yield
        finally:
            self._busy.discard(name)

    # ---- commands --------------------------------------------------------------------------------

    async def start(self, name: str, *, wait: bool = True) -> AgentRunner:
        """Idempotent, as :meth:`stop` is: starting an agent that is already up (or starting up)
        answers with its state instead of a conflict."""
        async with self.command(name) as runner:
            runner.start()  # a no-op while its lifecycle runs
            if wait:
                await self.settle(runner)
            return runner

    async def stop(self, name: str) -> AgentRunner:
        async with self.command(name) as runner:
            await runner.stop()
            return runner

    async def restart(self, name: str, *, wait: bool = True, graceful: bool = True) -> AgentRunner:
        """Graceful (the default) when the agent runs: the new process starts beside the old one,
        which drains once the new one is healthy (``atoll.deploy.rollout``). Otherwise stop, start."""
        async with self.command(name) as runner:
            if graceful and runner.state in (RUNNING, UNHEALTHY) and runner.proc is not None:
                await roll(runner, runner.spec, drain_timeout=self.settings.drain_timeout)
                return runner
            await runner.stop(restarting=True)
            runner.start()
            if wait:
                await self.settle(runner)
            return runner

    async def remove(self, name: str) -> AgentRunner:
        async with self.command(name) as runner:
            await runner.stop()
            self.forget(name)
            return runner

    def forget(self, name: str) -> None:
        runner = self.runners.pop(name, None)
        self.ports.release(name)
        self.checksums.pop(name, None)
        if runner is not None:
            self.on_port_released(runner.port)

    async def settle(self, runner: AgentRunner) -> str:
        """Wait until the agent is running, failed or stopped (bounded by its startup budget)."""
        timeouts = self.settings.timeouts
        budget = (runner.spec.startup_timeout or timeouts.startup) + timeouts.stop + 5
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(budget):
                await runner.wait_for(SETTLED)
        return runner.state

    # ---- all agents -----------------------------------------------------------------------------

    async def start_all(self, *, wait: bool = True) -> None:
        chosen = [r for r in self.runners.values() if r.spec.auto_start and not r.active]
        for runner in chosen:
            runner.start()
        if wait:
            await asyncio.gather(*(self.settle(r) for r in chosen))

    async def stop_all(self) -> None:
        await asyncio.gather(*(r.stop() for r in self.runners.values()), return_exceptions=True)

    async def detach_all(self) -> None:
        """Stop supervising every agent but leave them running (``atoll restart-server``)."""
        await asyncio.gather(*(r.detach() for r in self.runners.values()), return_exceptions=True)

    def records(self, checksum_of: Callable[[AgentRunner], str]) -> list[AgentRecord]:
        """The state file's view of every agent process alive now."""
        out = []
        for name, runner in sorted(self.runners.items()):
            proc = runner.proc
            if proc is None or proc.returncode is not None:
                continue
            out.append(AgentRecord(name=name, pid=proc.pid, create_time=proc.create_time, port=runner.port,
                                   probe_port=runner.probe_port(proc), checksum=checksum_of(runner),
                                   folder=str(runner.spec.folder), atoll_version=runner.atoll_version))
        return out

    def status(self, name: str) -> dict[str, Any]:
        return describe(self.get(name), self.checksums.get(name))

    def statuses(self) -> list[dict[str, Any]]:
        return [describe(r, self.checksums.get(n)) for n, r in sorted(self.runners.items())]


def describe(runner: AgentRunner, checksum: str | None = None) -> dict[str, Any]:
    """The public view of one agent, as ``GET /agents/{name}`` and ``atoll status`` show it."""
    uptime = runner.uptime()
    proc = runner.proc
    return {
        "name": runner.spec.name,
        "status": runner.state,
        "port": runner.port,
        "pid": proc.pid if proc is not None and proc.returncode is None else None,
        "restarts": runner.restarts,
        "uptime_s": round(uptime, 3) if uptime is not None else None,
        "start_time": runner.started_at.isoformat() if runner.started_at else None,
        "last_health_check": runner.last_health_check.isoformat() if runner.last_health_check else None,
        "last_health_ok": runner.last_health_ok,
        "degraded_reasons": runner.degraded,
        "last_exit_code": runner.last_exit_code,
        "error_message": runner.error,
        "log_tail": runner.log_tail if runner.state == FAILED else [],
        "checksum": checksum,
        "adopted": runner.adopted,
        "atoll_version": runner.atoll_version,
        "folder": str(runner.spec.folder),
        "url": f"http://127.0.0.1:{runner.port}",
    }

