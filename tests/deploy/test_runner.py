"""The runner's state machine, driven by scripted process histories on a fake clock."""

from __future__ import annotations

import signal

import anyio
import anyio.lowlevel
import pytest

from atoll.deploy.policy import BackoffPolicy, CrashLoopGuard, Timeouts
from atoll.deploy.runner import FAILED, RUNNING, STOPPED, AgentRunner
from tests.deploy.fakes import FakeWorld, Script, spec

pytestmark = pytest.mark.anyio

TIMEOUTS = Timeouts(startup=5.0, stop=10.0, health_interval=0.75, health_threshold=3, ready_poll=0.1)


def make(world: FakeWorld, *, max_restarts: int = 3, window: float = 60.0,
         backoff: BackoffPolicy | None = None) -> AgentRunner:
    return AgentRunner(spec(), 8100, world.deps(), timeouts=TIMEOUTS,
                       backoff=backoff or BackoffPolicy(initial=0.5, cap=4.0, reset_after=30.0),
                       guard=CrashLoopGuard(max_restarts, window))


async def reach(runner: AgentRunner, *states: str) -> str:
    with anyio.fail_after(5):
        return await runner.wait_for(set(states))


def states(runner: AgentRunner) -> list[str]:
    return [state for _, state in runner.history]


async def test_running_only_after_health_answers() -> None:
    world = FakeWorld([Script(ready_after=1.0)])
    runner = make(world)
    runner.start()
    assert await reach(runner, RUNNING, FAILED) == RUNNING
    assert world.clock.now >= 1.0
    assert states(runner) == ["starting", "running"]
    assert runner.last_health_ok is True
    await runner.stop()


async def test_crash_at_start_is_never_running_and_ends_failed_with_exit_code() -> None:
    world = FakeWorld([Script(ready_after=None, exit_after=0.2, exit_code=3)])
    runner = make(world, max_restarts=2)
    runner.start()
    assert await reach(runner, FAILED, RUNNING) == FAILED
    assert RUNNING not in states(runner)
    assert runner.last_exit_code == 3
    assert runner.restarts == 2
    assert len(world.procs) == 3
    assert "exited with code 3 during startup" in (runner.error or "")
    assert runner.log_tail == ["echo: boom"]


async def test_a_foreign_server_on_the_port_is_not_mistaken_for_ours() -> None:
    world = FakeWorld([Script(ready_after=0.0, owns_port=False)])
    runner = make(world, max_restarts=0)
    runner.start()
    assert await reach(runner, FAILED, RUNNING) == FAILED
    assert "startup timeout" in (runner.error or "")


async def test_backoff_doubles_from_half_a_second_and_is_capped() -> None:
    world = FakeWorld([Script(ready_after=0.0, exit_after=0.5, exit_code=1)])
    runner = make(world, max_restarts=5, window=1000.0)
    runner.start()
    assert await reach(runner, FAILED) == FAILED
    backoffs = [s for s in world.clock.sleeps if s not in (TIMEOUTS.ready_poll, TIMEOUTS.health_interval)]
    assert backoffs == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert runner.last_exit_code == 1


async def test_jitter_only_lengthens_the_delay_within_its_fraction() -> None:
    policy = BackoffPolicy(initial=0.5, jitter=0.1)
    assert policy.delay(0, 0.0) == 0.5
    assert 0.5 < policy.delay(0, 0.999) <= 0.55
    assert policy.delay(3, 0.0) == 4.0


async def test_backoff_resets_after_a_healthy_period() -> None:
    world = FakeWorld([
        Script(ready_after=0.0, exit_after=1.0), Script(ready_after=0.0, exit_after=1.0),
        Script(ready_after=0.0, exit_after=40.0), Script(ready_after=0.0, exit_after=1.0),
        Script(ready_after=0.0),
    ])
    runner = make(world, max_restarts=10, window=1.0)
    runner.start()
    with anyio.fail_after(5):
        while len(world.procs) < 5 or runner.state != RUNNING:
            await runner.wait_for({RUNNING, FAILED})
            await anyio.lowlevel.checkpoint()
    backoffs = [s for s in world.clock.sleeps if s not in (TIMEOUTS.ready_poll, TIMEOUTS.health_interval)]
    assert backoffs == [0.5, 1.0, 0.5, 1.0]
    await runner.stop()


async def test_failed_health_checks_restart_the_agent() -> None:
    world = FakeWorld([Script(ready_after=0.0, unhealthy_after=2.0), Script(ready_after=0.0)])
    runner = make(world)
    runner.start()
    with anyio.fail_after(5):
        while len(world.procs) < 2 or runner.state != RUNNING:
            await runner.wait_for({RUNNING})
            await anyio.lowlevel.checkpoint()
    assert states(runner)[:5] == ["starting", "running", "unhealthy", "restarting", "starting"]
    assert (world.procs[0].pid, signal.SIGTERM) in world.signals
    assert runner.restarts == 1
    await runner.stop()


async def test_stop_escalates_to_sigkill_after_the_grace_period() -> None:
    world = FakeWorld([Script(ready_after=0.0, ignores_term=True)])
    runner = make(world)
    runner.start()
    await reach(runner, RUNNING)
    before = len(world.clock.sleeps)
    await runner.stop()
    pid = world.procs[0].pid
    assert world.signals == [(pid, signal.SIGTERM), (pid, signal.SIGKILL)]
    assert TIMEOUTS.stop in world.clock.sleeps[before:]
    assert runner.state == STOPPED
    assert runner.last_exit_code == -9
    assert world.procs[0].stragglers_killed


async def test_graceful_stop_does_not_wait_for_the_grace_period() -> None:
    world = FakeWorld([Script(ready_after=0.0)])
    runner = make(world)
    runner.start()
    await reach(runner, RUNNING)
    before = len(world.clock.sleeps)
    await runner.stop()
    assert TIMEOUTS.stop not in world.clock.sleeps[before:]
    assert runner.last_exit_code == 0
    # The group is still swept with SIGKILL for members that outlived the leader.
    assert world.signals[-1] == (world.procs[0].pid, signal.SIGKILL)


async def test_manual_start_after_failure_resets_the_count() -> None:
    world = FakeWorld([Script(ready_after=None, exit_after=0.1, exit_code=4)] * 3 + [Script(ready_after=0.0)])
    runner = make(world, max_restarts=2)
    runner.start()
    assert await reach(runner, FAILED) == FAILED
    assert runner.restarts == 2
    runner.start()
    assert await reach(runner, RUNNING, FAILED) == RUNNING
    assert runner.restarts == 0
    assert runner.error is None
    await runner.stop()


async def test_crash_loop_window_forgets_old_restarts() -> None:
    guard = CrashLoopGuard(max_restarts=2, window=10.0)
    assert guard.allow(0.0) and guard.allow(1.0)
    assert not guard.allow(2.0)
    assert guard.allow(11.5)
