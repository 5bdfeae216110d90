"""An agent whose configuration is invalid exits 2: the supervisor does not restart it, and shows
the agent's own error; the same code on a non-Linux-style exit watcher (polling) works alike."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from atoll.deploy.runner import FAILED, RUNNING
from tests.deploy.conftest import running_server, write_agent
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio


async def test_discovered_agent_with_a_config_error_fails_at_once_with_its_message(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "fine")
    broken = write_agent(agents, "broken")
    toml = (broken / "agent.toml").read_text().replace("tests.support.scripted:ScriptedProvider", "gpt-magic")
    (broken / "agent.toml").write_text(toml)
    async with running_server(agents) as run:
        await wait_until_async(lambda: run.runner("broken").state == FAILED, timeout=60)
        body = (await run.client.get("/agents/broken")).json()
        assert body["status"] == "failed" and body["restarts"] == 0 and body["last_exit_code"] == 2
        assert body["error_message"].startswith("configuration error, not restarted (exit code 2): ")
        assert "unknown provider 'gpt-magic'" in body["error_message"] and "llm.provider" in body["error_message"]
        assert "restart_count" not in body  # one restarts field
        assert run.runner("fine").state == RUNNING


async def test_exit_is_seen_without_pidfd_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS has no pidfd_open: the supervisor falls back to polling and still restarts a killed agent."""
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    agents = tmp_path / "agents"
    write_agent(agents, "polled")
    async with running_server(agents) as run:
        runner = run.runner("polled")
        assert runner.state == RUNNING and runner.proc is not None
        os.kill(runner.proc.pid, signal.SIGKILL)
        await wait_until_async(lambda: runner.restarts == 1 and runner.state == RUNNING, timeout=60)
        assert runner.last_exit_code == -signal.SIGKILL


async def test_supervisor_probes_are_counted_not_logged(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "quiet")
    async with running_server(agents) as run:
        runner = run.runner("quiet")
        checks: set[object] = set()
        await wait_until_async(lambda: checks.add(runner.last_health_check) or len(checks) >= 4, timeout=30)
        assert (await run.client.get("/agent/quiet/api/tags")).status_code == 200

        async def logged() -> list[str]:
            return list((await run.client.get("/agents/quiet/logs", params={"lines": "200"})).json()["stderr"])

        lines: list[str] = []

        async def tags_logged() -> bool:
            lines[:] = await logged()
            return any("GET /api/tags 200" in line for line in lines)

        for _ in range(100):
            if await tags_logged():
                break
            await anyio.sleep(0.1)
        assert any("GET /api/tags 200" in line for line in lines), lines
        assert not any("/health" in line for line in lines), lines
        metrics = (await run.client.get("/agent/quiet/metrics")).text
        probes = [line for line in metrics.splitlines()
                  if line.startswith("atoll_http_requests_total") and 'route="/health"' in line]
        assert probes and float(probes[0].rsplit(" ", 1)[1]) >= 3
