"""The deployment server's start-up: a SIGTERM while agents are still settling stops it (and them)
within stop_timeout, and an agent whose spawn fails is retried with the restart backoff instead of
going straight to ``failed``. Real deployment server and agent processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from atoll.deploy.process import agent_command
from atoll.deploy.runner import RUNNING
from tests.deploy.conftest import alive, child_env, free_base_port, make_config, running_server, write_agent
from tests.support.waiting import wait_until, wait_until_async

# An MCP server that never answers: the agent's start-up (and /health) waits for it. (Appended to
# the conftest agent file, which ends in its [server] table.)
SILENT_MCP = f"""
mcp_connect_timeout = 600
[mcp_servers.silent]
command = "{sys.executable}"
args = ["-c", "import time; time.sleep(600)"]
"""


def test_sigterm_while_agents_settle_stops_within_stop_timeout(tmp_path: Path) -> None:
    agents = tmp_path / "atoll_agents"
    write_agent(agents, "slowpoke", extra=SILENT_MCP)
    home = tmp_path / "deploy_home"
    home.mkdir()
    base = free_base_port()
    stop_timeout = 2.0
    (home / "deployment_servers.json").write_text(json.dumps({
        "api_port": base, "base_port": base + 1, "startup_timeout": 300, "stop_timeout": stop_timeout}))
    process = subprocess.Popen([sys.executable, "-m", "atoll"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env={**child_env(), "ATOLL_HOME": str(home)})
    try:
        leader = psutil.Process(process.pid)
        # the agent and its silent MCP server are up: the server is in the middle of its start-up
        wait_until(lambda: len(leader.children(recursive=True)) >= 2, timeout=60, what="agent and MCP server")
        tree = [leader, *leader.children(recursive=True)]
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0]
    # old code: the signal waited for the agent to settle (startup_timeout, 300 s here)
    assert took < stop_timeout + 15, output
    assert process.returncode == 0, output
    wait_until(lambda: alive(tree) == [], timeout=10, what="every process of the tree gone")


@pytest.mark.anyio
async def test_a_failed_spawn_is_retried_with_backoff(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "flaky")
    spawns: list[str] = []

    def command(spec, launch):  # type: ignore[no-untyped-def]
        spawns.append(spec.name)
        if len(spawns) == 1:  # the first spawn fails: the interpreter is not there
            return [str(tmp_path / "no-such-python"), "-m", "atoll"]
        return agent_command(spec, launch)

    async with running_server(agents, make_config(backoff_initial=0.2), command_for=command) as run:
        runner = run.runner("flaky")
        await wait_until_async(lambda: runner.state == RUNNING, timeout=60, what="flaky running")
        assert len(spawns) == 2 and runner.restarts == 1
        assert runner.error is None
