"""Zero-downtime rollouts with real agent processes: clients stream without pause through the front
door and straight to the agent's stable port while the agent is restarted and redeployed, and while
broken versions are deployed; not one request fails, and the new version answers afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from atoll.deploy.runner import RUNNING
from tests.deploy.conftest import alive, make_config, running_server
from tests.deploy.test_deploy_zip import package, post
from tests.support.waiting import wait_until_async

pytestmark = [pytest.mark.anyio, pytest.mark.zero_downtime]

VERSION = """\
[agent]
name = "alpha"
[llm]
provider = "{provider}"
system_prompt = "{prompt}"
[server]
session_store = "memory"
drain_timeout = 2
[deployment]
startup_timeout = {startup}
"""
SCRIPTED = "tests.support.scripted:ScriptedProvider"
#: A provider in the package itself (the agent's folder is its working directory, on sys.path).
BROKEN = """\
import asyncio, os
from tests.support.scripted import ScriptedProvider

class CrashOnStart(ScriptedProvider):
    async def start(self):
        os._exit(3)

class NeverReady(ScriptedProvider):
    async def start(self):
        await asyncio.sleep(3600)
"""


def version(prompt: str, provider: str = SCRIPTED, startup: float = 30) -> str:
    return VERSION.format(prompt=prompt, provider=provider, startup=startup)


@dataclass
class Tally:
    ok: int = 0
    failed: list[str] = field(default_factory=list)


async def _stream_forever(client: httpx.AsyncClient, tally: Tally) -> None:
    """One streamed chat after another on a keep-alive client; each must end with ``done``."""
    body = {"model": "alpha", "messages": [{"role": "user", "content": "/slow 4 0.05"}]}
    while True:
        try:
            async with client.stream("POST", "/api/chat", json=body) as response:
                lines = [json.loads(line) async for line in response.aiter_lines() if line.strip()]
            if response.status_code != 200 or not lines or not lines[-1].get("done") \
                    or any("error" in line for line in lines):
                tally.failed.append(f"{response.status_code}: {lines[-1:] }")
            else:
                tally.ok += 1
        except httpx.HTTPError as exc:
            tally.failed.append(repr(exc))


@contextlib.asynccontextmanager
async def streaming(*base_urls: str) -> AsyncIterator[list[Tally]]:
    tallies = [Tally() for _ in base_urls]
    clients = [httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) for url in base_urls]
    tasks = [asyncio.create_task(_stream_forever(c, t)) for c, t in zip(clients, tallies, strict=True)]
    try:
        yield tallies
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.aclose()


async def more_answers(tallies: list[Tally], count: int = 3) -> None:
    targets = [t.ok + count for t in tallies]
    await wait_until_async(lambda: all(t.ok >= n for t, n in zip(tallies, targets, strict=True)),
                           timeout=30, what="more answers on every client")


async def system_of(client: httpx.AsyncClient) -> str:
    response = await client.post("/api/chat", json={
        "model": "alpha", "stream": False, "messages": [{"role": "user", "content": "/system"}]})
    assert response.status_code == 200, response.text
    return str(response.json()["message"]["content"])


async def test_restart_and_redeploy_under_streaming_load_fail_nothing(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    (agents / "alpha").mkdir(parents=True)
    (agents / "alpha" / "agent.toml").write_text(version("version one"))
    async with running_server(agents, make_config(drain_timeout=10)) as run:
        runner = run.runner("alpha")
        port = runner.port
        direct = f"http://127.0.0.1:{port}"
        first = psutil.Process(runner.proc.pid)  # type: ignore[union-attr]
        async with streaming(run.url, direct) as tallies:
            await more_answers(tallies)

            restarted = await run.client.post("/agents/alpha/restart")  # graceful is the default
            assert restarted.status_code == 200, restarted.text
            assert restarted.json()["port"] == port and restarted.json()["pid"] not in (None, first.pid)
            await wait_until_async(lambda: alive([first]) == [], timeout=30, what="the old version drained")
            await more_answers(tallies)

            second = psutil.Process(runner.proc.pid)  # type: ignore[union-attr]
            deployed = await post(run, package({"agent.toml": version("version two")}), force="true")
            assert deployed.status_code == 200, deployed.text
            assert deployed.json()["port"] == port
            await more_answers(tallies)
            await wait_until_async(lambda: alive([second]) == [], timeout=30, what="the old version drained")
            assert runner.state == RUNNING and runner.port == port

        assert [t.failed for t in tallies] == [[], []]
        assert all(t.ok >= 9 for t in tallies)
        async with httpx.AsyncClient(base_url=direct, trust_env=False) as agent:
            assert "version two" in await system_of(agent)
        assert "version two" in await system_of(run.client)


async def test_broken_new_versions_leave_the_old_one_serving(tmp_path: Path) -> None:
    # what this test process ran before (a session's redis-server, on a worker that ran other tests)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    agents = tmp_path / "agents"
    (agents / "alpha").mkdir(parents=True)
    (agents / "alpha" / "agent.toml").write_text(version("the good one"))
    async with running_server(agents) as run:
        runner = run.runner("alpha")
        pid, port = runner.proc.pid, runner.port  # type: ignore[union-attr]
        async with streaming(run.url, f"http://127.0.0.1:{port}") as tallies:
            await more_answers(tallies)

            bad_config = await post(run, package({"agent.toml": version("x") + "[llm]\nmodel = 3\n"}), force="true")
            assert bad_config.status_code == 400 and bad_config.json()["error_code"] == "INVALID_CONFIG"

            crash = await post(run, package({"agent.toml": version("x", "broken:CrashOnStart"),
                                             "broken.py": BROKEN}), force="true")
            assert crash.status_code == 500, crash.text
            assert crash.json()["error_code"] == "DEPLOY_FAILED"
            assert "exited with code 3 during startup" in crash.json()["detail"]
            await more_answers(tallies)

            never = await post(run, package({"agent.toml": version("x", "broken:NeverReady", startup=3),
                                             "broken.py": BROKEN}), force="true")
            assert never.status_code == 500, never.text
            assert "not ready after 3s" in never.json()["detail"]
            await more_answers(tallies)

        assert [t.failed for t in tallies] == [[], []]
        assert runner.proc.pid == pid and runner.state == RUNNING  # type: ignore[union-attr]
        assert "the good one" in await system_of(run.client)
        assert "the good one" in (agents / "alpha" / "agent.toml").read_text()
        # Only the good version's process tree is left: the failed ones were stopped.
        tree = psutil.Process(pid)
        others = [p for p in psutil.Process().children(recursive=True)
                  if p.pid != pid and p.pid not in before and p not in tree.children(recursive=True)]
        assert alive(others) == []
