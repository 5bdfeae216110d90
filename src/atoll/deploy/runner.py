"""One agent's life: start, wait for readiness, watch health, restart with backoff, give up, stop.

    stopped --start--> starting --/health 200--> running <--> unhealthy
                          |                         |             | (threshold)
                          +--exit / timeout---------+--exit-------+--> restarting --backoff--> starting
                                                                  \\--> failed (crash loop)

Everything with side effects is injected (``RunnerDeps``): the process factory, the health probe,
the signal functions, the clock, ``sleep`` and the random source. Tests drive it with fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from atoll._version import __version__
from atoll.deploy.discover import AgentSpec
from atoll.deploy.policy import BackoffPolicy, CrashLoopGuard, Timeouts

logger = logging.getLogger(__name__)

#: State changes kept per agent for ``history``.
HISTORY_LENGTH = 200

STARTING, RUNNING, UNHEALTHY, RESTARTING, FAILED, STOPPED, STOPPING = (
    "starting", "running", "unhealthy", "restarting", "failed", "stopped", "stopping",
)
SETTLED = frozenset({RUNNING, FAILED, STOPPED})
#: The exit code of an agent whose configuration is invalid (``atoll --server`` exits 2): restarting
#: cannot help, so the runner gives up at once with the agent's own error line.
CONFIG_ERROR_EXIT = 2


class ChildProcess(Protocol):
    """A started agent process; the leader of its own process group (``pgid == pid``)."""

    pid: int
    #: The port this very process answers on (probed for health), when it is not the agent's port.
    probe_port: int | None
    #: The process's start time (``psutil``), which with the pid names it in the state file.
    create_time: float

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def descendants(self) -> list[Any]:
        """A snapshot of the process tree under the leader, for the sweep after a stop."""
        ...

    def kill_stragglers(self, snapshot: list[Any]) -> None:
        """SIGKILL whatever in ``snapshot`` is still alive (children that left the group)."""
        ...

    def owns_port(self, port: int) -> bool:
        """True when this process tree listens on ``port`` (so a 200 is really ours)."""
        ...


@dataclass(frozen=True)
class Health:
    """What one health probe learned: ``ok`` when ``/health`` answered 200, and while it serves, the
    reasons it gave for answering ``"degraded"`` (an MCP server down, its LLM backend unreachable)."""

    ok: bool
    degraded: tuple[str, ...] = ()


#: The health probe: the port to ask, and its answer.
Probe = Callable[[int], Awaitable[Health]]


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunnerDeps:
    spawn: Callable[[AgentSpec, int], Awaitable[ChildProcess]]
    probe: Probe
    signal_group: Callable[[int, int], None] = _signal_group
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    rand: Callable[[], float] = random.random
    wall: Callable[[], datetime] = _utcnow
    log_tail: Callable[[str, int], list[str]] = field(default=lambda name, lines: [])
    #: Told of every state change (agent name, new state): the dashboard's live stream.
    on_state: Callable[[str, str], None] = field(default=lambda name, state: None)
    #: Called after every state change and spawn (the supervisor records its state file then).
    changed: Callable[[], None] = field(default=lambda: None)


class AgentRunner:
    def __init__(
        self,
        spec: AgentSpec,
        port: int,
        deps: RunnerDeps,
        *,
        timeouts: Timeouts | None = None,
        backoff: BackoffPolicy | None = None,
        guard: CrashLoopGuard | None = None,
        restart_on_failure: bool = True,
    ) -> None:
        self.spec = spec
        self.port = port
        self.deps = deps
        self.timeouts = timeouts or Timeouts()
        self.backoff = backoff or BackoffPolicy()
        self.guard = guard or CrashLoopGuard()
        self.restart_on_failure = restart_on_failure
        self.state = STOPPED
        #: Recent state changes (clock, state): bounded, as an agent may flap for months.
        self.history: deque[tuple[float, str]] = deque(maxlen=HISTORY_LENGTH)
        self.proc: ChildProcess | None = None
        self.restarts = 0
        #: Never reset (a manual start resets ``restarts``): for ``/metrics`` counters.
        self.restarts_total = 0
        self.health_failures = 0
        self.last_exit_code: int | None = None
        self.error: str | None = None
        self.log_tail: list[str] = []
        self.last_health_check: datetime | None = None
        self.last_health_ok: bool | None = None
        #: Why the last health check said "degraded" (empty when it said healthy, or failed).
        self.degraded_reasons: tuple[str, ...] = ()
        self.started_at: datetime | None = None
        #: True while the process running was started by an earlier supervisor (adopted).
        self.adopted = False
        #: The atoll version that started the running process (an adopted one may be older).
        self.atoll_version = __version__
        self._running_since: float | None = None
        self._attempt = 0
        self._task: asyncio.Task[None] | None = None
        #: Old versions draining after a rollout (``retire``); a stop waits for them.
        self._retiring: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    # ---- commands -----------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, running: ChildProcess | None = None) -> None:
        """Start (or restart after "failed"): a manual start forgets earlier crashes. With
        ``running``, supervise that healthy process instead of spawning one (adoption, rollout)."""
        if self.active:
            return
        self.guard.reset()
        self._attempt = 0
        self.restarts = 0
        self.error = None
        self.log_tail = []
        # A process handed over healthy keeps taking requests: no "starting" gap at the front door.
        self._set(STARTING if running is None else RUNNING)
        self._task = asyncio.create_task(self._lifecycle(running), name=f"agent:{self.spec.name}")

    def adopt(self, proc: ChildProcess, started_at: datetime) -> None:
        """Supervise a healthy agent process an earlier supervisor started; its uptime goes on."""
        self.adopted = True
        self.started_at = started_at
        self._running_since = self.deps.clock() - max(0.0, (self.deps.wall() - started_at).total_seconds())
        self.start(proc)

    async def detach(self) -> ChildProcess | None:
        """Stop supervising, leaving the process running (for a successor to adopt, or a rollout)."""
        proc = self.proc
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.proc = None
        return proc

    def retire(self, proc: ChildProcess, grace: float) -> None:
        """Drain ``proc`` (an old version) in the background: SIGTERM, ``grace``, SIGKILL."""
        task = asyncio.create_task(self.terminate(proc, grace=grace), name=f"retire:{self.spec.name}:{proc.pid}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def switch_to(self, proc: ChildProcess, spec: AgentSpec) -> None:
        """Supervise ``proc`` (a healthy new version, from ``atoll.deploy.rollout``) from now on."""
        self.spec = spec
        self.adopted, self.atoll_version = False, __version__
        self.started_at = self.deps.wall()
        self._running_since = None
        self.proc = proc  # at once, not when the lifecycle task first runs: the answer names its pid
        self.start(proc)

    async def stop(self, *, restarting: bool = False) -> None:
        """SIGTERM the process group, wait ``timeouts.stop``, then SIGKILL; no descendant survives.
        ``restarting``: a restart by hand follows, so the agent shows ``restarting``, not ``stopped``."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.proc is not None:
            self._set(RESTARTING if restarting else STOPPING)
            await self.terminate(self.proc)
            self._record_exit(self.proc)
            self.proc = None
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        self._running_since = None
        self._set(RESTARTING if restarting else STOPPED)

    async def wait_for(self, states: frozenset[str] | set[str]) -> str:
        """Wait until the state is one of ``states``; returns the state reached. Callers bound it."""
        while self.state not in states:
            await self._changed.wait()
        return self.state

    def uptime(self) -> float | None:
        if self._running_since is None or self.state not in (RUNNING, UNHEALTHY):
            return None
        return self.deps.clock() - self._running_since

    # ---- the loop -------------------------------------------------------------------------------

    async def _lifecycle(self, running: ChildProcess | None = None) -> None:
        try:
            while True:
                reason = await self._run_once(running)
                running = None
                if self.last_exit_code == CONFIG_ERROR_EXIT:
                    self._give_up(self.config_error_reason(reason), restartable=False)
                    return
                if not self.restart_on_failure or not self.guard.allow(self.deps.clock()):
                    self._give_up(reason)
                    return
                self.restarts += 1
                self.restarts_total += 1
                delay = self.backoff.delay(self._attempt, self.deps.rand())
                self._attempt += 1
                logger.warning("agent %s %s; restarting in %.2fs", self.spec.name, reason, delay)
                self._set(RESTARTING)
                await self.deps.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("agent %s: supervisor error", self.spec.name)
            self._give_up(f"supervisor error: {exc}")

    async def _run_once(self, running: ChildProcess | None) -> str:
        """Run one process from spawn (or adoption) to its end; returns why it ended."""
        if running is None:
            self._set(STARTING)
            self.adopted, self.atoll_version = False, __version__
            try:
                self.proc = proc = await self.deps.spawn(self.spec, self.port)
            except Exception as exc:  # no interpreter, no file handles...: retried like a crash
                self.last_exit_code = None
                return f"could not be started ({type(exc).__name__}: {exc})"
            self.started_at = self.deps.wall()
        else:
            self.proc = proc = running
        self.deps.changed()
        try:
            failure = await self.await_ready(proc)
            if failure is None:
                if self._running_since is None:
                    self._running_since = self.deps.clock()
                self._set(RUNNING)
                failure = await self._monitor(proc)
        finally:
            if self.proc is proc and not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                await self.terminate(proc)
        self._record_exit(proc)
        self.proc = None
        self._running_since = None
        return failure

    def probe_port(self, proc: ChildProcess) -> int:
        return proc.probe_port or self.port

    async def await_ready(self, proc: ChildProcess, spec: AgentSpec | None = None) -> str | None:
        """None once ``proc`` answers its health check, else why not (exit, startup timeout)."""
        timeout = (spec or self.spec).startup_timeout or self.timeouts.startup
        deadline = self.deps.clock() + timeout
        port = self.probe_port(proc)
        while True:
            if proc.returncode is not None:
                return f"exited with code {proc.returncode} during startup"
            health = await self.deps.probe(port)
            if health.ok and proc.returncode is None and proc.owns_port(port):
                self._note_health(health)
                return None
            if self.deps.clock() >= deadline:
                return f"not ready after {timeout:g}s (startup timeout)"
            await self._exit_or_sleep(proc, self.timeouts.ready_poll)

    async def _monitor(self, proc: ChildProcess) -> str:
        failures = 0
        while True:
            await self._exit_or_sleep(proc, self.timeouts.health_interval)
            if proc.returncode is not None:
                return f"exited with code {proc.returncode}"
            health = await self.deps.probe(self.probe_port(proc))
            self._note_health(health)
            if health.ok:
                failures = 0
                self._set(RUNNING)
                if self._running_since is not None and \
                        self.deps.clock() - self._running_since >= self.backoff.reset_after:
                    self._attempt = 0
                continue
            failures += 1
            self._set(UNHEALTHY)
            if failures >= self.timeouts.health_threshold:
                return f"failed {failures} health checks in a row"

    async def _exit_or_sleep(self, proc: ChildProcess, seconds: float) -> None:
        """Return when the process exits or ``seconds`` pass, whichever is first."""
        if proc.returncode is not None:
            return
        waiter = asyncio.ensure_future(proc.wait())
        sleeper = asyncio.ensure_future(self.deps.sleep(seconds))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, sleeper):
                task.cancel()
            await asyncio.gather(waiter, sleeper, return_exceptions=True)

    async def terminate(self, proc: ChildProcess, grace: float | None = None) -> None:
        """SIGTERM the group -> grace -> SIGKILL the group, then kill any descendant that left it."""
        snapshot = proc.descendants() if proc.returncode is None else []
        if proc.returncode is None:
            self.deps.signal_group(proc.pid, signal.SIGTERM)
            await self._exit_or_sleep(proc, self.timeouts.stop if grace is None else grace)
        # The leader may be gone while members of its group (MCP servers) linger: kill the group.
        self.deps.signal_group(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()
        proc.kill_stragglers(snapshot)

    # ---- bookkeeping ----------------------------------------------------------------------------

    def _record_exit(self, proc: ChildProcess) -> None:
        if proc.returncode is not None:
            self.last_exit_code = proc.returncode

    def _note_health(self, health: Health) -> None:
        self.last_health_check = self.deps.wall()
        self.last_health_ok = health.ok
        self.degraded_reasons = health.degraded
        if not health.ok:
            self.health_failures += 1

    @property
    def degraded(self) -> list[str]:
        """Why the running agent serves degraded, as its last health check said; empty otherwise."""
        return list(self.degraded_reasons) if self.state == RUNNING else []

    @property
    def config_error(self) -> bool:
        """True when the agent stopped because its configuration is invalid (not restarted)."""
        return self.state == FAILED and self.last_exit_code == CONFIG_ERROR_EXIT

    def config_error_reason(self, reason: str) -> str:
        """The agent's own ``error: ...`` line from its log, else ``reason``."""
        lines = self.deps.log_tail(self.spec.name, 20)
        said = next((line.split("error: ", 1)[1].strip() for line in reversed(lines) if "error: " in line), None)
        return f"configuration error, not restarted (exit code {CONFIG_ERROR_EXIT}): {said or reason}"

    def _give_up(self, reason: str, *, restartable: bool = True) -> None:
        if self.restart_on_failure and restartable:
            self.error = f"{reason}; gave up after {self.guard.max_restarts} restarts " \
                         f"within {self.guard.window:g}s"
        else:
            self.error = reason
        self.log_tail = self.deps.log_tail(self.spec.name, 20)
        logger.error("agent %s failed: %s", self.spec.name, self.error)
        self._set(FAILED)

    def _set(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        self.history.append((self.deps.clock(), state))
        logger.info("agent %s -> %s", self.spec.name, state)
        self.deps.on_state(self.spec.name, state)
        self._changed.set()
        self._changed = asyncio.Event()
        self.deps.changed()
