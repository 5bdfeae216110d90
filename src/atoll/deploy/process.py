"""Real agent processes: ``python -m atoll --server`` in its own session (so its own process group),
with an allow-listed environment, stdout/stderr pumped into rotating log files, and its exit seen
through a pidfd (Linux; no helper thread per child)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil

from atoll.deploy.agent_keys import AGENT_KEY_ENV, AgentKeys
from atoll.deploy.discover import AgentSpec
from atoll.deploy.logs import RotatingLog, log_paths

logger = logging.getLogger(__name__)

#: Variables passed to agents; everything else in the supervisor's environment stays out.
ALLOWED_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PYTHONPATH",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "no_proxy", "XDG_CACHE_HOME", "HF_HOME",
)
ALLOWED_PREFIXES = ("ATOLL_", "OLLAMA_", "OPENAI_", "LC_")
ALLOWED_SUFFIXES = ("_API_KEY",)
#: Never passed on, although the prefix would allow it: an agent has no business with the admin token.
WITHHELD_ENV = frozenset({"ATOLL_ADMIN_TOKEN", AGENT_KEY_ENV})

CommandFor = Callable[[AgentSpec, int], list[str]]
#: Seconds between exit checks where ``os.pidfd_open`` is missing (it is Linux-only).
EXIT_POLL_INTERVAL = 0.1


def agent_command(spec: AgentSpec, port: int, python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", "atoll", "--server", "--host", "127.0.0.1",
            "--port", str(port), "--agent", str(spec.agent_file)]


def child_env(spec: AgentSpec, extra_names: Iterable[str] = (), base: dict[str, str] | None = None,
              secrets: Iterable[str] = ()) -> dict[str, str]:
    """The agent's environment: the allow-listed variables, then its ``[deployment] env``. A variable
    whose value holds one of ``secrets`` (the admin token, remotes' credentials) is left out under
    whatever name it comes, from the supervisor's environment or from the agent's own file."""
    base = dict(os.environ if base is None else base)
    extra = set(extra_names)
    env = {
        key: value for key, value in base.items()
        if (key in ALLOWED_ENV or key in extra or key.startswith(ALLOWED_PREFIXES)
            or key.endswith(ALLOWED_SUFFIXES)) and key not in WITHHELD_ENV
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(spec.env)
    withheld = [s for s in secrets if s]
    for key in [k for k, v in env.items() if any(secret in v for secret in withheld)]:
        if key in spec.env:
            logger.warning("agent %s: [deployment] env %s holds a deployment server secret; not passed on",
                           spec.name, key)
        del env[key]
    return env


class AgentProcess:
    """A ``subprocess.Popen`` seen from asyncio: ``wait()`` without threads, output into logs."""

    def __init__(self, popen: subprocess.Popen[bytes], logs: dict[str, RotatingLog]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._drains: list[Callable[[], None]] = []
        self._poller: asyncio.Task[None] | None = None
        for stream, log in logs.items():
            pipe = getattr(popen, stream)
            self._pump(pipe, log)
        self._watch_exit()

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def _pump(self, pipe: Any, log: RotatingLog) -> None:
        fd = pipe.fileno()
        os.set_blocking(fd, False)

        def on_readable() -> bool:
            """Copy what the pipe holds into the log; False once it is closed."""
            if pipe.closed:
                return False
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if data:
                log.write(data)
                return True
            self._loop.remove_reader(fd)
            pipe.close()
            log.close()
            return False

        def drain() -> None:
            """What the process wrote before it exited reaches the log before anyone reads it."""
            for _ in range(64):  # bounded: a descendant may still be writing into the same pipe
                if not on_readable():
                    return

        self._drains.append(drain)
        self._loop.add_reader(fd, on_readable)

    def _watch_exit(self) -> None:
        """Learn of the exit from a pidfd (Linux), else by polling (macOS and other platforms)."""
        if not hasattr(os, "pidfd_open"):
            self._poller = self._loop.create_task(self._poll_exit())
            return
        pidfd = os.pidfd_open(self.pid)

        def on_exit() -> None:
            self._loop.remove_reader(pidfd)
            os.close(pidfd)
            self._reap()

        self._loop.add_reader(pidfd, on_exit)

    async def _poll_exit(self) -> None:
        while self.popen.poll() is None:  # noqa: ASYNC110 - no event exists to wait on without pidfd_open
            await asyncio.sleep(EXIT_POLL_INTERVAL)
        self._reap()

    def _reap(self) -> None:
        code = self.popen.wait()
        for drain in self._drains:
            drain()
        if not self._exited.done():
            self._exited.set_result(code)

    def descendants(self) -> list[Any]:
        try:
            children: list[Any] = psutil.Process(self.pid).children(recursive=True)
            return children
        except psutil.Error:
            return []

    def kill_stragglers(self, snapshot: list[Any]) -> None:
        for child in snapshot:
            with contextlib.suppress(psutil.Error):
                child.send_signal(signal.SIGKILL)
        if snapshot:
            psutil.wait_procs(snapshot, timeout=2)

    def owns_port(self, port: int) -> bool:
        try:
            tree = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
            for proc in tree:
                for conn in proc.net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                        return True
        except psutil.AccessDenied:
            return True
        except psutil.Error:
            return False
        return False


class ProcessFactory:
    """``spawn(spec, port)`` for the runner: the command, working directory, env and log files."""

    def __init__(
        self,
        logs_dir: Path,
        *,
        command_for: CommandFor = agent_command,
        pass_env: Iterable[str] = (),
        log_max_bytes: int = 5 * 1024 * 1024,
        log_backups: int = 3,
        env_base: dict[str, str] | None = None,
        agent_keys: AgentKeys | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.logs_dir = logs_dir
        self.secrets = tuple(secrets)
        self.agent_keys = agent_keys
        self.command_for = command_for
        self.pass_env = tuple(pass_env)
        self.log_max_bytes = log_max_bytes
        self.log_backups = log_backups
        self.env_base = env_base

    async def __call__(self, spec: AgentSpec, port: int) -> AgentProcess:
        logs = {
            stream: RotatingLog(path, max_bytes=self.log_max_bytes, backups=self.log_backups)
            for stream, path in log_paths(self.logs_dir, spec.name).items()
        }
        env = child_env(spec, self.pass_env, self.env_base, self.secrets)
        if self.agent_keys is not None:
            env[AGENT_KEY_ENV] = self.agent_keys.key_for(spec.name)
        try:
            # A plain Popen (fork/exec takes milliseconds) keeps exit watching on our pidfd.
            popen = subprocess.Popen(  # noqa: ASYNC220
                self.command_for(spec, port),
                cwd=spec.folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError:
            for log in logs.values():
                log.close()
            raise
        return AgentProcess(popen, logs)
