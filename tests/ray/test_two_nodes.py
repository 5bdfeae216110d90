"""A second Ray node joins with ``ray start --address`` and serves an agent through the ingress.

The session's local head cannot take other nodes (Ray keeps a node on 127.0.0.1 only while
multi-node is off for it), so this test starts a short-lived cluster of its own: a head on 127.0.0.2
and a node on 127.0.0.3, both on this machine, with Ray's token auth. Ray binds such nodes' ports on
every interface (docs/scale-out.md says so); the test stops both before it ends and checks that no
process of theirs is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ollama
import psutil
import pytest

from atoll.ray.cluster import READY_LINE, ensure_token, free_port, token_env
from tests.ray.conftest import cluster_processes, start_fleet, stop_fleet
from tests.support.servers import scripted_agent_toml, server_env
from tests.support.waiting import wait_until

pytestmark = pytest.mark.ray

FAR = scripted_agent_toml("far", extra="[deployment]\nray_actor_options = { num_cpus = 0.1, "
                                       "resources = { second_node = 0.1 } }\n")


# Ray gives a node 30 s (fixed in Ray 2.60's node.py) to register with its GCS; on a loaded 2-core
# machine that is sometimes too little, and the node exits with this line. One more try then.
REGISTRATION_TIMEOUT = "The current node timed out during startup"


def start_node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``ray start --block <args>`` until its ready line, its output in ``log``; running, or an error
    with its log."""
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--disable-usage-stats",
               "--num-cpus", "1", "--object-store-memory", str(80 * 1024 * 1024),
               "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
               "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port()), *args]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: READY_LINE in log.read_text() or process.poll() is not None, timeout=120,
               what="ray start", interval=0.2)
    return process


@contextmanager
def ray_node(args: list[str], env: dict[str, str], folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A running ``ray start --block`` node, its output in ``folder``; stopped (SIGTERM: its reaper
    stops the rest) on the way out."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "ray-start.log"
    process = start_node(args, env, log)
    if process.poll() is not None and REGISTRATION_TIMEOUT in log.read_text():
        (folder / "ray-start-first-try.log").write_bytes(log.read_bytes())
        process = start_node(args, env, log)
    try:
        assert process.poll() is None, log.read_text()
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_a_second_node_joins_and_serves_an_agent_through_the_ingress(tmp_path: Path) -> None:
    env = {**server_env(HOME=str(tmp_path)), **token_env(ensure_token(tmp_path / "ray_auth_token")),
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    port = free_port()
    # Short: Ray's socket paths live under it (a Unix socket path has at most 107 bytes).
    temp = Path(tempfile.mkdtemp(prefix="atoll-ray-"))
    head_args = ["--head", "--port", str(port), "--node-ip-address", "127.0.0.2", "--include-dashboard", "false",
                 "--ray-client-server-port", str(free_port()), "--temp-dir", str(temp)]
    node_args = ["--address", f"127.0.0.2:{port}", "--node-ip-address", "127.0.0.3",
                 "--resources", '{"second_node": 1}']
    with ray_node(head_args, env, tmp_path / "head"), ray_node(node_args, env, tmp_path / "node") as node:
        fleet = start_fleet(tmp_path / "fleet", {"far": FAR}, env, ray_address=f"127.0.0.2:{port}")
        try:
            answer = ollama.Client(host=fleet.ingress).chat(model="far", messages=[{"role": "user", "content": "hi"}])
            assert answer.message.content == "You said: hi"
            # The replica is a process of the second node (a descendant of its `ray start`).
            replicas = [p for p in psutil.Process(node.pid).children(recursive=True)
                        if "ServeReplica:far:agent" in " ".join(p.cmdline())]
            assert len(replicas) == 1
        finally:
            stop_fleet(fleet)
    wait_until(lambda: not cluster_processes(str(temp)), timeout=30, what="no process of the two-node cluster left")
    shutil.rmtree(temp, ignore_errors=True)
