"""Fakes for the supervisor: a clock that ``sleep`` advances, and scripted processes.

A ``Script`` says how one spawned process behaves, measured from its spawn on the fake clock.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from atoll.deploy.discover import AgentSpec
from atoll.deploy.runner import Health, RunnerDeps


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.now)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class Script:
    ready_after: float | None = 0.0
    exit_after: float | None = None
    exit_code: int = 1
    ignores_term: bool = False
    unhealthy_after: float | None = None
    owns_port: bool = True


@dataclass
class FakeProc:
    pid: int
    script: Script
    clock: FakeClock
    spawned_at: float
    signalled: int | None = None
    stragglers_killed: bool = False
    probe_port: int | None = None
    create_time: float = 0.0

    @property
    def returncode(self) -> int | None:
        if self.signalled is not None:
            return self.signalled
        exit_after = self.script.exit_after
        if exit_after is not None and self.clock.now >= self.spawned_at + exit_after:
            return self.script.exit_code
        return None

    async def wait(self) -> int:
        while self.returncode is None:  # noqa: ASYNC110 - exits follow the fake clock, not events
            await asyncio.sleep(0)
        return self.returncode

    def descendants(self) -> list[Any]:
        return []

    def kill_stragglers(self, snapshot: list[Any]) -> None:
        self.stragglers_killed = True

    def owns_port(self, port: int) -> bool:
        return self.script.owns_port

    def healthy(self) -> bool:
        age = self.clock.now - self.spawned_at
        ready = self.script.ready_after
        sick = self.script.unhealthy_after
        return (self.returncode is None and ready is not None and age >= ready
                and (sick is None or age < sick))


@dataclass
class FakeWorld:
    """Processes follow ``scripts`` in order (the last one repeats)."""

    scripts: list[Script]
    clock: FakeClock = field(default_factory=FakeClock)
    procs: list[FakeProc] = field(default_factory=list)
    signals: list[tuple[int, int]] = field(default_factory=list)

    async def spawn(self, spec: AgentSpec, port: int) -> FakeProc:
        script = self.scripts[min(len(self.procs), len(self.scripts) - 1)]
        proc = FakeProc(pid=1000 + len(self.procs), script=script, clock=self.clock,
                        spawned_at=self.clock.now)
        self.procs.append(proc)
        return proc

    async def probe(self, port: int) -> Health:
        return Health(ok=bool(self.procs) and self.procs[-1].healthy())

    def signal_group(self, pgid: int, sig: int) -> None:
        self.signals.append((pgid, sig))
        proc = next(p for p in self.procs if p.pid == pgid)
        if proc.returncode is not None:
            return
        if sig == signal.SIGKILL:
            proc.signalled = -9
        elif sig == signal.SIGTERM and not proc.script.ignores_term:
            proc.signalled = 0

    def deps(self) -> RunnerDeps:
        return RunnerDeps(spawn=self.spawn, probe=self.probe, signal_group=self.signal_group,
                          clock=self.clock, sleep=self.clock.sleep, rand=lambda: 0.0,
                          wall=self.clock.wall, log_tail=lambda name, n: [f"{name}: boom"])


def spec(name: str = "echo") -> AgentSpec:
    return AgentSpec(name=name, folder=Path("/nonexistent") / name,
                     agent_file=Path("/nonexistent") / name / "agent.toml")
