"""The deployment server as a real process (``python -m atoll``) killed with SIGKILL: started again,
it adopts its agents (same pids, same ports, sessions intact, no second copy); never started
again, its agents and their MCP servers shut down by themselves after ``orphan_grace``; and
``atoll restart-server`` re-executes it under streaming load without a failed request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from atoll.deploy.config import STATE_FILE_NAME
from atoll.deploy.state import folder_checksum, read_records
from tests.deploy.conftest import AGENT_TOML, alive, child_env, free_base_port, write_agent
from tests.deploy.test_deploy_zip import package
from tests.deploy.test_rollout import more_answers, streaming
from tests.support.waiting import wait_until, wait_until_async

pytestmark = [pytest.mark.anyio, pytest.mark.zero_downtime]

REPO = Path(__file__).resolve().parents[2]
TIME_SERVER = REPO / ".mcp-servers/py/bin/mcp-server-time"


@dataclass
class Fleet:
    """One deployment server process on an agents folder and an ``ATOLL_HOME``."""

    home: Path
    agents: Path
    api_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        return {**child_env(), "ATOLL_HOME": str(self.home)}

    def start(self) -> None:
        log = (self.home / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "atoll", "--agents-dir", str(self.agents), "--api-port", str(self.api_port),
             "--base-port", str(self.api_port + 1)],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def headers(self) -> dict[str, str]:
        token = self.home / "admin_token"
        return {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}

    def agents_now(self) -> dict[str, dict[str, Any]]:
        response = httpx.get(f"{self.url}/agents", headers=self.headers(), timeout=10, trust_env=False)
        response.raise_for_status()
        return {a["name"]: a for a in response.json()["agents"]}

    def wait_running(self, names: set[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
        def running() -> dict[str, dict[str, Any]] | None:
            try:
                now = self.agents_now()
            except httpx.HTTPError:
                return None
            ok = set(now) == names and all(a["status"] == "running" for a in now.values())
            return now if ok else None

        wait_until(running, timeout=timeout, what=f"agents {sorted(names)} running ({self.log()[-400:]})")
        return running() or {}

    def log(self) -> str:
        path = self.home / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def deploy(self, data: bytes) -> httpx.Response:
        return httpx.post(f"{self.url}/agents/deploy", headers=self.headers(), timeout=120, trust_env=False,
                          files={"file": ("agent.zip", data, "application/zip")}, data={"force": "true"})

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@contextmanager
def fleet(tmp_path: Path, settings: dict[str, Any], agents: dict[str, str]) -> Iterator[Fleet]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "deployment_servers.json").write_text(json.dumps(
        {"health_check_interval": 0.5, "stop_timeout": 3, "drain_timeout": 5, **settings}))
    folder = tmp_path / "agents"
    for name, extra in agents.items():
        write_agent(folder, name, extra=extra)
    running = Fleet(home, folder, free_base_port())
    try:
        yield running
    finally:
        if running.proc is not None and running.proc.poll() is None:
            running.proc.send_signal(signal.SIGTERM)
            running.proc.wait(timeout=60)
        # Whatever a test left behind (orphans by design) does not outlive it.
        for proc in agent_processes(folder):
            with_tree = [proc, *proc.children(recursive=True)]
            for member in with_tree:
                member.kill()
            psutil.wait_procs(with_tree, timeout=10)


def agent_processes(agents: Path) -> list[psutil.Process]:
    """Every agent server process running an agent file from ``agents`` (by command line)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "--server" in cmdline and any(str(agents) in part for part in cmdline):
            found.append(proc)
    return found


def processes_of(agents: Path, name: str) -> list[psutil.Process]:
    return [p for p in agent_processes(agents) if any(str(agents / name) in part for part in p.cmdline())]


def runs_mcp_time(leader: psutil.Process) -> bool:
    return any("mcp-server-time" in " ".join(p.cmdline()) for p in leader.children(recursive=True))


def chat(fleet: Fleet, model: str, text: str, session: str) -> str:
    response = httpx.post(f"{fleet.url}/api/chat", timeout=30, trust_env=False, headers={"X-Session-ID": session},
                          json={"model": model, "stream": False, "messages": [{"role": "user", "content": text}]})
    assert response.status_code == 200, response.text
    return str(response.json()["message"]["content"])


async def test_sigkilled_server_adopts_its_agents_and_restart_server_drops_nothing(tmp_path: Path) -> None:
    with fleet(tmp_path, {"orphan_grace": 60}, {"alpha": "", "beta": ""}) as run:
        run.start()
        before = run.wait_running({"alpha", "beta"})
        started = time.monotonic()
        assert chat(run, "alpha", "remember the lighthouse", "s-1").startswith("You said")
        pids = {n: a["pid"] for n, a in before.items()}

        run.kill()
        assert sorted(p.pid for p in agent_processes(run.agents)) == sorted(pids.values())
        run.start()
        after = run.wait_running({"alpha", "beta"})
        assert {n: (a["pid"], a["port"]) for n, a in after.items()} == \
            {n: (a["pid"], a["port"]) for n, a in before.items()}
        assert all(a["adopted"] for a in after.values())
        assert sorted(p.pid for p in agent_processes(run.agents)) == sorted(pids.values())  # no second copy
        assert psutil.Process(run.proc.pid).children() == []  # type: ignore[union-attr]
        assert all(a["uptime_s"] >= time.monotonic() - started - 1 for a in after.values())
        assert "user:remember the lighthouse" in chat(run, "alpha", "/history", "s-1")

        # restart-server under load: front door and the agent's own port, streaming all along.
        server_pid = run.proc.pid  # type: ignore[union-attr]
        async with streaming(run.url, f"http://127.0.0.1:{after['alpha']['port']}") as tallies:
            await more_answers(tallies)
            restart = await asyncio.to_thread(  # the streams go on meanwhile
                subprocess.run, [sys.executable, "-m", "atoll", "restart-server"], env=run.env(),
                capture_output=True, text=True, timeout=120)
            assert restart.returncode == 0, restart.stderr + run.log()[-2000:]
            assert "2 agent(s) kept running" in restart.stdout and "alpha: pid" in restart.stdout
            await more_answers(tallies)
        assert [t.failed for t in tallies] == [[], []]
        assert run.proc.poll() is None and run.proc.pid == server_pid  # type: ignore[union-attr]
        again = run.wait_running({"alpha", "beta"})
        assert {n: a["pid"] for n, a in again.items()} == pids
        assert "user:remember the lighthouse" in chat(run, "alpha", "/history", "s-1")

        trees = [psutil.Process(pid) for pid in pids.values()]
        run.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        run.proc.wait(timeout=60)  # type: ignore[union-attr]
        assert alive(trees) == []  # a deliberate stop still stops every agent


MCP_TIME = f"""
[mcp_servers.time]
command = "{TIME_SERVER}"
args = ["--local-timezone", "UTC"]
"""


@pytest.mark.mcp
async def test_agents_of_a_dead_server_shut_down_after_orphan_grace(tmp_path: Path) -> None:
    grace = 3.0
    with fleet(tmp_path, {"orphan_grace": grace}, {"lonely": MCP_TIME}) as run:
        run.start()
        agent = run.wait_running({"lonely"})["lonely"]
        leader = psutil.Process(agent["pid"])
        await wait_until_async(partial(runs_mcp_time, leader), timeout=30, what="the MCP server")
        tree = [leader, *leader.children(recursive=True)]

        run.kill()
        killed = time.monotonic()
        await wait_until_async(lambda: alive(tree) == [], timeout=grace + 15, what="the orphaned agent tree gone")
        assert time.monotonic() - killed <= grace + 8
        assert json.loads((run.home / "run" / "lonely.exit").read_text())["code"] == 0  # a clean shutdown
        stderr = (run.home / "logs" / "lonely" / "stderr.log").read_text()
        assert "has not renewed its lease" in stderr  # the agent wrote its own log after the supervisor died


@pytest.mark.mcp
async def test_live_agents_that_cannot_be_adopted_are_stopped_with_their_group_not_duplicated(
        tmp_path: Path) -> None:
    with fleet(tmp_path, {"orphan_grace": 60}, {"alpha": "", "beta": MCP_TIME, "gamma": MCP_TIME}) as run:
        run.start()
        before = run.wait_running({"alpha", "beta", "gamma"})
        groups = {}
        for name in ("beta", "gamma"):
            leader = psutil.Process(before[name]["pid"])
            await wait_until_async(partial(runs_mcp_time, leader), timeout=30, what=f"{name}'s MCP server")
            groups[name] = [leader, *leader.children(recursive=True)]

        run.kill()
        shutil.rmtree(run.agents / "beta")  # its agent is gone from the folder
        os.kill(before["gamma"]["pid"], signal.SIGSTOP)  # alive, but it answers no health check
        run.start()
        after = run.wait_running({"alpha", "gamma"})

        assert (after["alpha"]["pid"], after["alpha"]["adopted"]) == (before["alpha"]["pid"], True)
        assert alive(groups["beta"]) == [] and alive(groups["gamma"]) == []  # leaders and their MCP servers
        assert processes_of(run.agents, "beta") == []
        assert after["gamma"]["pid"] != before["gamma"]["pid"] and not after["gamma"]["adopted"]
        assert [p.pid for p in processes_of(run.agents, "gamma")] == [after["gamma"]["pid"]]  # one gamma
        log = run.log()
        beta, gamma = before["beta"]["pid"], before["gamma"]["pid"]
        assert f"agent beta (pid {beta}) not adopted: its agent is no longer in the agents folder" in log
        assert f"agent gamma (pid {gamma}) not adopted: it does not answer its health check" in log


async def test_an_agent_whose_files_changed_while_no_server_ran_is_adopted_then_rolled_over(tmp_path: Path) -> None:
    with fleet(tmp_path, {"orphan_grace": 60}, {"alpha": "", "beta": ""}) as run:
        run.start()
        before = run.wait_running({"alpha", "beta"})
        old = psutil.Process(before["alpha"]["pid"])
        run.kill()
        toml = run.agents / "alpha" / "agent.toml"
        toml.write_text(toml.read_text().replace("[llm]\n", '[llm]\nsystem_prompt = "version two"\n'))

        run.start()
        await wait_until_async(lambda: alive([old]) == [], timeout=60,
                               what=f"alpha's old version rolled over and drained ({run.log()[-600:]})")
        after = run.wait_running({"alpha", "beta"})
        assert (after["beta"]["pid"], after["beta"]["adopted"]) == (before["beta"]["pid"], True)  # unchanged
        assert after["alpha"]["pid"] != old.pid and after["alpha"]["port"] == before["alpha"]["port"]
        assert [p.pid for p in processes_of(run.agents, "alpha")] == [after["alpha"]["pid"]]
        assert "version two" in chat(run, "alpha", "/system", "s-3")
        assert "alpha: its files changed while no deployment server ran" in run.log()
        # The state file names the files the running process was started from.
        assert read_records(run.home / STATE_FILE_NAME)["alpha"].checksum == folder_checksum(run.agents / "alpha")


#: A new version that takes a while to start: the deployment server is killed meanwhile.
SLOW_START = """\
import asyncio
from tests.support.scripted import ScriptedProvider

class SlowStart(ScriptedProvider):
    async def start(self):
        await asyncio.sleep(8)
        await super().start()
"""


async def test_a_new_version_starting_when_the_server_dies_does_not_run_beside_the_adopted_one(
        tmp_path: Path) -> None:
    with fleet(tmp_path, {"orphan_grace": 60}, {"alpha": ""}) as run:
        run.start()
        old = run.wait_running({"alpha"})["alpha"]["pid"]
        slow = AGENT_TOML.format(name="alpha").replace("tests.support.scripted:ScriptedProvider", "slow:SlowStart")
        deploying = asyncio.create_task(asyncio.to_thread(
            run.deploy, package({"agent.toml": slow + "[deployment]\nstartup_timeout = 60\n", "slow.py": SLOW_START})))
        await wait_until_async(lambda: len(agent_processes(run.agents)) == 2, timeout=60,
                               what=f"the new version starting ({run.log()[-400:]})")
        candidate = next(p for p in agent_processes(run.agents) if p.pid != old)
        run.kill()  # the new version is in its start-up, recorded nowhere yet
        with contextlib.suppress(httpx.HTTPError):
            await deploying

        run.start()
        run.wait_running({"alpha"})
        # The new version would become healthy and serve on the stable port for ever, its lease
        # renewed by the successor: the successor stops it.
        await wait_until_async(lambda: alive([candidate]) == [], timeout=30,
                               what=f"the unsupervised new version stopped ({run.log()[-600:]})")
        await wait_until_async(lambda: len(agent_processes(run.agents)) == 1, timeout=60,
                               what="one process of alpha")
        [survivor] = agent_processes(run.agents)
        assert run.wait_running({"alpha"})["alpha"]["pid"] == survivor.pid
        assert chat(run, "alpha", "still here?", "s-2").startswith("You said")


async def test_restart_server_while_an_old_version_drains_lets_its_stream_finish(tmp_path: Path) -> None:
    with fleet(tmp_path, {"orphan_grace": 60, "drain_timeout": 30}, {"alpha": ""}) as run:
        toml = run.agents / "alpha" / "agent.toml"
        toml.write_text(toml.read_text().replace("drain_timeout = 1", "drain_timeout = 30"))
        run.start()
        before = run.wait_running({"alpha"})["alpha"]
        old = psutil.Process(before["pid"])
        body = {"model": "alpha", "messages": [{"role": "user", "content": "/slow 120 0.1"}]}
        direct = f"http://127.0.0.1:{before['port']}"
        async with httpx.AsyncClient(base_url=direct, timeout=60, trust_env=False) as client, \
                client.stream("POST", "/api/chat", json=body) as answer:
            lines = answer.aiter_lines()
            assert "s1" in await anext(lines)  # the old version streams for 12 s
            restarted = await asyncio.to_thread(httpx.post, f"{run.url}/agents/alpha/restart", headers=run.headers(),
                                                timeout=60, trust_env=False)
            assert restarted.status_code == 200 and restarted.json()["pid"] not in (None, old.pid), restarted.text
            # The old version drains (SIGTERMed by the rollout); the re-executed server finds it unrecorded.
            restart = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "atoll", "restart-server"],
                                              env=run.env(), capture_output=True, text=True, timeout=120)
            assert restart.returncode == 0, restart.stderr + run.log()[-2000:]
            rest = [json.loads(line) async for line in lines if line.strip()]
        assert rest[-1]["done"] and not any("error" in line for line in rest), rest[-3:]
        assert "".join(line["message"]["content"] for line in rest).split()[-1] == "s120"  # not cut short
        await wait_until_async(lambda: alive([old]) == [], timeout=30, what="the old version gone after its stream")
        assert f"pid {old.pid} runs with this ATOLL_HOME's lease but no agent record" in run.log()
        assert [p.pid for p in agent_processes(run.agents)] == [restarted.json()["pid"]]
