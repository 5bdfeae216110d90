"""Run real atoll agent server processes for tests (real HTTP on 127.0.0.1, real signals)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
SCRIPTED = "tests.support.scripted:ScriptedProvider"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(**extra: str) -> dict[str, str]:
    """The child's environment: ours, the repo on PYTHONPATH (for the scripted LLM), and an
    isolated home so no user config file leaks into a test."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    for name in ("OLLAMA_HOST", "ATOLL_LLM_PROVIDER", "ATOLL_LLM_MODEL", "ATOLL_LLM_BASE_URL", "ATOLL_API_KEYS",
                 "ATOLL_SESSION_URL"):
        env.pop(name, None)
    env.update(extra)
    return env


def write_agent(folder: Path, toml: str, name: str = "agent.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(toml)
    return path


def scripted_agent_toml(name: str = "echo", *, extra: str = "") -> str:
    return f"""
[agent]
name = "{name}"
description = "scripted test agent"

[llm]
provider = "{SCRIPTED}"
system_prompt = "You are {name}."

{extra}
"""


@dataclass
class AgentServer:
    process: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def wait_healthy(url: str, process: subprocess.Popen[Any], log: Path, timeout: float = 60,
                 path: str = "/health") -> None:
    """Wait until ``GET url+path`` answers 200; fail early, with the log, if the process exits."""

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            return httpx.get(f"{url}{path}", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(up, timeout=timeout, what=f"{url}{path}", interval=0.05)
    except AssertionError:
        output = log.read_text(errors="replace")
        raise TimeoutError(f"server at {url} not healthy after {timeout}s:\n{output}") from None


@contextmanager
def run_agent_server(agent_file: Path | None, *, cwd: Path, env: dict[str, str] | None = None,
                     args: list[str] | None = None, wait: bool = True,
                     timeout: float = 60, port: int | None = None) -> Iterator[AgentServer]:
    port = port or free_port()
    log = cwd / f"server-{port}.log"
    if env is None:
        home = cwd / "home"
        home.mkdir(exist_ok=True)
        env = server_env(HOME=str(home))
    command = [sys.executable, "-m", "atoll", "--server", "--host", "127.0.0.1", "--port", str(port)]
    if agent_file is not None:
        command += ["--agent", str(agent_file)]
    with open(log, "w") as sink:
        process = subprocess.Popen(command + (args or []), cwd=cwd, env=env, stdout=sink,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
    server = AgentServer(process, port, log)
    try:
        if wait:
            wait_healthy(server.url, process, log, timeout)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
