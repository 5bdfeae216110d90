"""One real Ray cluster for the whole test session (a local head on 127.0.0.1 with token auth, 2 CPUs,
a small object store, the same :class:`atoll.ray.cluster.LocalHead` ``atoll --backend ray`` starts),
and one deployment server with the Ray backend on it, running two agents on the scripted LLM:

* ``echo``: 2 replicas, sessions in the suite's real Redis (``ATOLL_SESSION_URL``);
* ``other``: autoscaling from 1 to 2 replicas at 1 request in progress per replica, and an API key;
* ``solo``: 2 replicas with SQLite sessions, which the backend refuses to deploy.

Each replica asks for 0.1 CPU. At the end the cluster stops and no process of it may be left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from atoll.ray.cluster import LocalHead
from tests.support.servers import free_port, scripted_agent_toml, server_env, write_agent
from tests.support.waiting import wait_until

REPLICA = 'ray_actor_options = { num_cpus = 0.1 }\n'
ECHO = scripted_agent_toml("echo", extra=f"[deployment]\nreplicas = 2\n{REPLICA}")
#: The API key ``other`` wants from its callers (the ingress lists it with the deployment's own key).
OTHER_KEY = "other-secret-key"
OTHER = scripted_agent_toml("other", extra=f"[server]\napi_keys = [\"{OTHER_KEY}\"]\n[deployment]\nmin_replicas = 1\n"
                                           f"max_replicas = 2\ntarget_ongoing_requests = 1\n{REPLICA}")
#: Refused: two replicas would each keep their own SQLite sessions.
SOLO = scripted_agent_toml("solo", extra=f"[server]\nsession_store = \"sqlite\"\n[deployment]\nreplicas = 2\n{REPLICA}")


@dataclass
class RayCluster:
    address: str
    #: Serve's HTTP port: Serve starts once per cluster, so every deployment server here uses this one.
    http_port: int
    #: The environment of processes that join it (the token; the repository for the scripted LLM).
    env: dict[str, str]


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    home = tmp_path_factory.mktemp("ray-home")
    env = server_env(HOME=str(home))
    head = LocalHead(tmp_path_factory.mktemp("ray-run"), num_cpus=2, env=env)
    address = head.start()
    try:
        yield RayCluster(address, free_port(), {**env, **head.driver_env()})
    finally:
        head.stop()
        left = [f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in head.processes()]
        assert not left, f"Ray processes left after the cluster stopped: {left}"


@dataclass
class RayFleet:
    process: subprocess.Popen[bytes]
    api: str
    ingress: str
    admin: dict[str, str]
    home: Path
    agents: Path
    log: Path

    def agent(self, name: str) -> dict[str, object]:
        response = httpx.get(f"{self.api}/agents/{name}", headers=self.admin, timeout=30)
        response.raise_for_status()
        body: dict[str, object] = response.json()
        return body

    def running_replicas(self, name: str) -> int:
        replicas = self.agent(name)["replicas"]
        assert isinstance(replicas, dict)
        return int(replicas["running"])


def start_fleet(cluster: RayCluster, folder: Path, agents: dict[str, str], extra_env: dict[str, str]) -> RayFleet:
    """``atoll --backend ray --ray-address ...`` on ``cluster`` with ``agents`` (name -> agent.toml)."""
    agents_dir, home = folder / "agents", folder / "home"
    for name, toml in agents.items():
        write_agent(agents_dir / name, toml)
    home.mkdir(parents=True, exist_ok=True)
    api_port = free_port()
    log = folder / "deployment-server.log"
    env = {**cluster.env, "ATOLL_HOME": str(home), **extra_env}
    command = [sys.executable, "-m", "atoll", "--backend", "ray", "--ray-address", cluster.address,
               "--agents-dir", str(agents_dir), "--api-port", str(api_port), "--http-port", str(cluster.http_port)]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{api_port}"

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the deployment server exited with {process.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"{api}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, timeout=180, what="the Ray deployment server's management API", interval=0.2)
    admin = {"Authorization": f"Bearer {(home / 'admin_token').read_text().strip()}"}
    return RayFleet(process, api, f"http://127.0.0.1:{cluster.http_port}", admin, home, agents_dir, log)


def stop_fleet(fleet: RayFleet) -> None:
    if fleet.process.poll() is None:
        fleet.process.send_signal(signal.SIGTERM)
        try:
            fleet.process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(fleet.process.pid, signal.SIGKILL)
            fleet.process.wait(10)
            raise AssertionError(f"the deployment server did not stop:\n{fleet.log.read_text()}") from None


@pytest.fixture(scope="session")
def ray_fleet(ray_cluster: RayCluster, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayFleet]:
    fleet = start_fleet(ray_cluster, tmp_path_factory.mktemp("ray-fleet"), {"echo": ECHO, "other": OTHER, "solo": SOLO},
                        {"ATOLL_SESSION_URL": redis_url})
    try:
        yield fleet
    finally:
        stop_fleet(fleet)
