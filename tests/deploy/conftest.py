from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil
import pytest

from atoll.deploy.admin_token import read_admin_token
from atoll.deploy.config import DeploymentConfig
from atoll.deploy.runner import AgentRunner
from atoll.deploy.service import DeploymentServer, bind_api_socket

REPO = Path(__file__).resolve().parents[2]

AGENT_TOML = """\
[agent]
name = "{name}"
[llm]
provider = "tests.support.scripted:ScriptedProvider"
[server]
session_store = "memory"
drain_timeout = 1
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def atoll_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("ATOLL_HOME", str(home))
    return home


def write_agent(agents_dir: Path, folder: str, name: str | None = None, extra: str = "") -> Path:
    path = agents_dir / folder
    path.mkdir(parents=True, exist_ok=True)
    (path / "agent.toml").write_text(AGENT_TOML.format(name=name or folder) + extra)
    return path


def free_base_port(span: int = 40) -> int:
    """A base port with ``span`` free ports above it (on 127.0.0.1), chosen at random."""
    for _ in range(200):
        base = random.randrange(20000, 50000)
        if all(_free(p) for p in range(base, base + span)):
            return base
    raise RuntimeError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def make_config(**overrides: Any) -> DeploymentConfig:
    base = free_base_port()
    values: dict[str, Any] = {"api_port": base, "base_port": base + 1, "auto_discover_port": False,
                              "startup_timeout": 30.0, "stop_timeout": 5.0, "health_check_interval": 0.5,
                              "backoff_initial": 0.5, "max_restarts": 3}
    values.update(overrides)
    return DeploymentConfig(**values)


@dataclass
class Running:
    server: DeploymentServer
    url: str
    #: Sends the admin token, as ``atoll status`` and the other CLI commands do.
    client: httpx.AsyncClient
    #: Sends no credentials (a browser page, a stranger); tests add the headers they mean.
    bare: httpx.AsyncClient

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.server.config.admin_token}"}

    def runner(self, name: str) -> AgentRunner:
        return self.server.supervisor.runners[name]


@contextlib.asynccontextmanager
async def running_server(agents_dir: Path, config: DeploymentConfig | None = None,
                         command_for: Callable[..., list[str]] | None = None,
                         env_base: dict[str, str] | None = None) -> AsyncIterator[Running]:
    config = config or make_config()
    server = DeploymentServer.build(config, agents_dir, command_for=command_for, env_base=env_base or child_env())
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def on_ready(url: str) -> None:
        ready.set_result(url)

    task = asyncio.create_task(server.run(stop, on_ready=on_ready, sock=bind_api_socket(config)))
    try:
        with anyio.fail_after(60):
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what stopped it
        url = ready.result()
        # The token the server requires: configured, or generated into $ATOLL_HOME/admin_token.
        token = config.admin_token or read_admin_token()
        assert token == server.config.admin_token
        async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False,
                                     headers={"Authorization": f"Bearer {token}"}) as client, \
                httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) as bare:
            yield Running(server, url, client, bare)
    finally:
        stop.set()
        with anyio.fail_after(60):
            await task


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            pass
    return out


def python() -> str:
    return sys.executable
