"""Real agent processes: ``python -m atoll --server`` in its own session (so its own process group),
with an allow-listed environment, stdout/stderr written by the agent itself into its log files (so
they outlive the supervisor), and its exit seen through a pidfd (Linux; no helper thread per child).

Each process gets two inherited listening sockets: its own ephemeral loopback port (``--fd``,
probed by the supervisor) and the agent's stable port (``--public-fd``, the same socket for every
version; see ``atoll.deploy.handover``). ``AdoptedProcess`` is one started by an earlier supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from atoll.deploy.agent_keys import AGENT_KEY_ENV, AgentKeys
from atoll.deploy.discover import AgentSpec
from atoll.deploy.handover import Listeners
from atoll.deploy.logs import log_paths
from atoll.net import bind_tcp

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

#: Seconds between exit checks where ``os.pidfd_open`` is missing (it is Linux-only).
EXIT_POLL_INTERVAL = 0.1
#: ``returncode`` of an adopted agent that died without writing its exit file (killed by a signal):
#: not our child, so the kernel tells us nothing more.
UNKNOWN_EXIT = 255


@dataclass(frozen=True)
class Launch:
    """What one agent process is started with (besides its spec)."""

    port: int
    fd: int
    public_fd: int
    lease: Path
    orphan_grace: float
    exit_file: Path


CommandFor = Callable[[AgentSpec, Launch], list[str]]


def agent_command(spec: AgentSpec, launch: Launch, python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", "atoll", "--server", "--agent", str(spec.agent_file),
            *supervision_args(launch)]


def supervision_args(launch: Launch) -> list[str]:
    return ["--host", "127.0.0.1", "--fd", str(launch.fd), "--public-fd", str(launch.public_fd),
            "--lease", str(launch.lease), "--orphan-grace", f"{launch.orphan_grace:g}",
            "--exit-file", str(launch.exit_file)]


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


class _ProcessTree:
    pid: int

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


class AgentProcess(_ProcessTree):
    """A ``subprocess.Popen`` seen from asyncio: ``wait()`` without threads."""

    def __init__(self, popen: subprocess.Popen[bytes], probe_port: int, exit_file: Path) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.probe_port: int | None = probe_port
        self.exit_file = exit_file
        self.create_time = _create_time(self.pid)
        self._exited = _watch_exit(self.pid, popen.wait)

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


class AdoptedProcess(_ProcessTree):
    """An agent started by an earlier supervisor (or by this process before it re-executed
    itself, when it is still our child and ``waitpid`` gives the real status)."""

    def __init__(self, pid: int, probe_port: int, exit_file: Path, create_time: float) -> None:
        self.pid = pid
        self.probe_port: int | None = probe_port
        self.exit_file = exit_file
        self.create_time = create_time
        self._code: int | None = None
        self._exited = _watch_exit(pid, self._reap)

    @property
    def returncode(self) -> int | None:
        return self._code

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def _reap(self) -> int:
        try:
            _, status = os.waitpid(self.pid, 0)
            self._code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            self._code = _recorded_exit(self.exit_file, self.pid)
        return self._code


#: Poll tasks of processes watched without a pidfd (kept referenced until they finish).
_POLLERS: set[asyncio.Task[None]] = set()


def _watch_exit(pid: int, reap: Callable[[], int]) -> asyncio.Future[int]:
    """A future with the exit status of ``pid``: from a pidfd (Linux), else by polling."""
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[int] = loop.create_future()
    if not hasattr(os, "pidfd_open"):
        poller = loop.create_task(_poll_exit(pid, reap, exited))
        _POLLERS.add(poller)
        poller.add_done_callback(_POLLERS.discard)
        return exited
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        exited.set_result(reap())
        return exited

    def on_exit() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if not exited.done():
            exited.set_result(reap())

    loop.add_reader(pidfd, on_exit)
    return exited


async def _poll_exit(pid: int, reap: Callable[[], int], exited: asyncio.Future[int]) -> None:
    while _alive(pid):  # noqa: ASYNC110 - no event exists to wait on without pidfd_open
        await asyncio.sleep(EXIT_POLL_INTERVAL)
    exited.set_result(reap())


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _recorded_exit(path: Path, pid: int) -> int:
    try:
        record = json.loads(path.read_text())
        if record.get("pid") == pid:
            return int(record["code"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return UNKNOWN_EXIT


def _create_time(pid: int) -> float:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return 0.0


class ProcessFactory:
    """``spawn(spec, port)`` for the runner: the command, working directory, env, sockets, logs."""

    def __init__(
        self,
        logs_dir: Path,
        listeners: Listeners,
        run_dir: Path,
        *,
        command_for: CommandFor = agent_command,
        pass_env: Iterable[str] = (),
        orphan_grace: float = 60.0,
        env_base: dict[str, str] | None = None,
        agent_keys: AgentKeys | None = None,
        secrets: Iterable[str] = (),
        extra_env: Callable[[AgentSpec], dict[str, str]] | None = None,
    ) -> None:
        self.logs_dir = logs_dir
        self.secrets = tuple(secrets)
        self.agent_keys = agent_keys
        #: Variables set per spawn by others (the model host's address, ``atoll.deploy.model_hosts``).
        self.extra_env = extra_env
        self.listeners = listeners
        self.run_dir = run_dir
        self.command_for = command_for
        self.pass_env = tuple(pass_env)
        self.orphan_grace = orphan_grace
        self.env_base = env_base
        #: The file agents watch (``atoll.deploy.state.Lease``).
        self.lease = run_dir / "lease"

    async def __call__(self, spec: AgentSpec, port: int) -> AgentProcess:
        public = self.listeners.get(port)
        own = bind_tcp("127.0.0.1", 0, backlog=128)
        paths = log_paths(self.logs_dir, spec.name)
        paths["stdout"].parent.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        launch = Launch(port=port, fd=own.fileno(), public_fd=public.fileno(), lease=self.lease,
                        orphan_grace=self.orphan_grace, exit_file=self.run_dir / f"{spec.name}.exit")
        env = child_env(spec, self.pass_env, self.env_base, self.secrets)
        if self.agent_keys is not None:
            env[AGENT_KEY_ENV] = self.agent_keys.key_for(spec.name)
        if self.extra_env is not None:
            env.update(self.extra_env(spec))
        try:
            with paths["stdout"].open("ab") as out, paths["stderr"].open("ab") as err:
                # A plain Popen (fork/exec takes milliseconds) keeps exit watching on our pidfd.
                popen = subprocess.Popen(  # noqa: ASYNC220
                    self.command_for(spec, launch),
                    cwd=spec.folder,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    pass_fds=(own.fileno(), public.fileno()),
                    start_new_session=True,
                )
            return AgentProcess(popen, own.getsockname()[1], launch.exit_file)
        finally:
            own.close()
