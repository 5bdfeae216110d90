"""Helpers for the MCP client tests: paths of the installed servers, loopback ports and processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from atoll.config import McpServerConfig
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]
SERVERS_DIR = REPO / ".mcp-servers"
EVERYTHING_JS = SERVERS_DIR / "npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
TIME_BIN = SERVERS_DIR / "py/bin/mcp-server-time"
CHANGING_TOOLS = Path(__file__).parent / "servers" / "changing_tools.py"


def hanging_server() -> McpServerConfig:
    """A stdio "server" that starts and never says a word."""
    return McpServerConfig(command=sys.executable, args=["-c", "import time; time.sleep(3600)"])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop by PID: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class HttpEverything:
    """server-everything in one of its HTTP modes on a loopback port; restartable on the same port."""

    def __init__(self, js: Path, mode: str) -> None:
        self.js, self.mode, self.port = js, mode, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        path = "sse" if self.mode == "sse" else "mcp"
        return f"http://127.0.0.1:{self.port}/{path}"

    def start(self) -> None:
        env = {**os.environ, "PORT": str(self.port)}
        self.proc = subprocess.Popen(["node", str(self.js), self.mode], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def child_processes(exclude: set[int] | None = None) -> list[psutil.Process]:
    """Our descendants, less the PIDs in ``exclude`` (those that existed before a test began)."""
    return [p for p in psutil.Process().children(recursive=True) if p.pid not in (exclude or set())]


def everything_stdio_processes() -> list[psutil.Process]:
    """The server-everything processes we started over stdio."""
    found = []
    for proc in child_processes():
        try:
            cmdline = proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        if str(EVERYTHING_JS) in cmdline and "stdio" in cmdline:
            found.append(proc)
    return found


def kill_and_wait(proc: psutil.Process, timeout: float = 5.0) -> None:
    """SIGKILL a child and wait until it is gone or a zombie (reaping is left to asyncio)."""
    proc.kill()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.02)
    raise TimeoutError(f"process {proc.pid} survived SIGKILL")

