"""The Ray cluster the Ray backend runs on: an existing one (``--ray-address``), or a local single-node
head that only this machine can reach, started here and stopped on exit.

The local head (``ray start --head --block``, a child of this process):

* binds every Ray port (GCS, raylet, object manager, workers, the dashboard agent, the Ray Client
  server) to 127.0.0.1. Ray 2.60 keeps a node on loopback only while its address is ``127.0.0.1``,
  which it allows only when multi-node clusters are off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``); a
  head that other nodes may join listens on every interface (see docs/scale-out.md);
* has Ray's token authentication on (``RAY_AUTH_MODE=token``): the token is a file only the owner
  can read, ``$ATOLL_HOME/run/ray_auth_token``, and every Ray process of this cluster needs it;
* has no Ray dashboard, a small object store, and its own temporary folder, by which its processes
  are found and stopped: :meth:`LocalHead.stop` leaves none behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from atoll.deploy.errors import ManagementError
from atoll.net import bind_tcp

TOKEN_FILE = "ray_auth_token"
#: The smallest object store Ray accepts is 75 MiB; agents pass no large objects.
OBJECT_STORE_BYTES = 80 * 1024 * 1024
START_TIMEOUT_S = 120.0
READY_LINE = "Ray runtime started"
PR_SET_PDEATHSIG = 1
#: How often Serve's proxies and replicas report requests in progress to its autoscaler (default 10 s).
METRICS_PUSH = {"RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1",
                "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1"}


def ensure_token(path: Path) -> Path:
    """Ray's auth token in ``path`` (created once, owner-only)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path


def token_env(token_file: Path) -> dict[str, str]:
    """What a Ray process (``ray start``, a driver) needs to join a cluster with token auth."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file), "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with contextlib.closing(bind_tcp("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


@dataclass
class LocalHead:
    """A single-node Ray cluster on 127.0.0.1 with this machine's CPUs. Its processes (and so the
    replicas) get this process's environment."""

    run_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    temp_dir: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def token_file(self) -> Path:
        return self.run_dir / TOKEN_FILE

    def driver_env(self) -> dict[str, str]:
        """What a process that joins this cluster needs in its environment, before it imports ``ray``
        (which reads it at import): the token, and 127.0.0.1 kept as 127.0.0.1 (else Ray swaps it
        for the machine's network address, where nothing of this cluster listens)."""
        return {**token_env(ensure_token(self.token_file)), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        """Start the head and wait until it runs; its address (``127.0.0.1:PORT``). Call it from the
        main thread: the head is told to stop when the thread that started it ends."""
        # Its applications are deleted before it stops: no drain (Ray's default waits up to 30 s).
        # Load reaches Serve's autoscaler every second, not every 10 s.
        env = {**os.environ, **self.driver_env(),
               "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0", **METRICS_PUSH}
        # Short: Ray's socket paths live under it, and a Unix socket path has at most 107 bytes.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="atoll-ray-"))
        command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                   "--port", str(self.port), "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
                   "--dashboard-host", "127.0.0.1", "--disable-usage-stats", "--temp-dir", str(self.temp_dir),
                   "--object-store-memory", str(OBJECT_STORE_BYTES),
                   "--ray-client-server-port", str(free_port()),
                   "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
                   "--runtime-env-agent-port", str(free_port()),
                   "--metrics-export-port", str(free_port())]
        log = self.temp_dir / "ray-start.log"
        with open(log, "wb") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True, preexec_fn=_terminate_with_parent)
        deadline = time.monotonic() + timeout
        while READY_LINE not in log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = log.read_text(errors="replace")[-4000:]
                self.stop()
                raise ManagementError(f"the local Ray head did not start:\n{output}", error_code="RAY_START_FAILED")
            time.sleep(0.1)
        return self.address

    def processes(self) -> list[psutil.Process]:
        """This cluster's processes: ``ray start`` and every process started with its temp folder."""
        found = []
        marker = str(self.temp_dir)
        for proc in psutil.process_iter(["pid", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                ours = self.process is not None and proc.pid == self.process.pid
                if ours or (self.temp_dir is not None and any(marker in part for part in proc.info["cmdline"] or ())):
                    found.append(proc)
        return found

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to ``ray start`` (its reaper stops the rest), then SIGKILL to whatever of this
        cluster is left after ``timeout``; the temporary folder goes too."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        left = self.processes()
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(left, timeout=10)
        if self.process is not None and self.process.poll() is None:
            self.process.wait(5)
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def _terminate_with_parent() -> None:
    """In the child, before ``ray start`` runs: SIGTERM when its parent dies, even by SIGKILL, so
    no head outlives the deployment server (Linux; elsewhere the head stops with a clean exit only)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def connect(address: str) -> None:
    """Join the cluster at ``address`` as a driver (Ray's token, if any, from the environment)."""
    import ray

    ray.init(address=address, namespace="atoll", logging_level=logging.WARNING, log_to_driver=False,
             configure_logging=False)
