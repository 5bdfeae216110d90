"""One real Ray cluster for the whole test session: the local head ``atoll --backend ray`` starts itself
when given no ``--ray-address`` (127.0.0.1 only, token auth, this machine's 2 CPUs, a small object
store), with that deployment server running three agents on the scripted LLM:

* ``echo``: 2 replicas, sessions in the suite's real Redis (``ATOLL_SESSION_URL``), a real MCP
  stdio server from the mcp.json beside its agent file;
* ``other``: autoscaling from 1 to 2 replicas at 1 request in progress per replica, and an API key;
* ``solo``: 2 replicas with SQLite sessions, which the backend refuses to deploy.

Each replica asks for 0.1 CPU. At the end the server stops (SIGTERM) and no process of its cluster
may be left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.servers import free_port, scripted_agent_toml, server_env, write_agent
from tests.support.waiting import wait_until

REPLICA = 'ray_actor_options = { num_cpus = 0.1 }\n'
ECHO = scripted_agent_toml("echo", extra=f"[deployment]\nreplicas = 2\n{REPLICA}")
#: The API key ``other`` wants from its callers (the ingress lists it with the deployment's own key).
#: ``echo``'s mcp.json: a real MCP server over stdio, started inside each of its replicas.
CHANGING_TOOLS = Path(__file__).parents[1] / "mcp_client" / "servers" / "changing_tools.py"
ECHO_MCP = json.dumps({"mcpServers": {"changing": {"command": sys.executable, "args": [str(CHANGING_TOOLS)]}}})
OTHER_KEY = "other-secret-key"
OTHER = scripted_agent_toml("other", extra=f"[server]\napi_keys = [\"{OTHER_KEY}\"]\n[deployment]\nmin_replicas = 1\n"
                                           f"max_replicas = 2\ntarget_ongoing_requests = 1\n{REPLICA}")
#: Refused: two replicas would each keep their own SQLite sessions.
SOLO = scripted_agent_toml("solo", extra=f"[server]\nsession_store = \"sqlite\"\n[deployment]\nreplicas = 2\n{REPLICA}")


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

    def local_head_dir(self) -> str:
        """The temporary folder of the Ray head this server started: every process of it names it."""
        for child in psutil.Process(self.process.pid).children():
            command = child.cmdline()
            if "--temp-dir" in command:
                return command[command.index("--temp-dir") + 1]
        raise AssertionError("the deployment server started no local Ray head")


def start_fleet(folder: Path, agents: dict[str, str], env: dict[str, str], *,
                ray_address: str | None = None, mcp_json: dict[str, str] | None = None) -> RayFleet:
    """``atoll --backend ray`` with ``agents`` (name -> agent.toml; ``mcp_json``: name -> the mcp.json
    beside that agent's file), on the cluster at ``ray_address`` or on the local head it starts."""
    agents_dir, home = folder / "agents", folder / "home"
    for name, toml in agents.items():
        write_agent(agents_dir / name, toml)
    for name, text in (mcp_json or {}).items():
        (agents_dir / name / "mcp.json").write_text(text)
    home.mkdir(parents=True, exist_ok=True)
    api_port, http_port = free_port(), free_port()
    log = folder / "deployment-server.log"
    command = [sys.executable, "-m", "atoll", "--backend", "ray", "--agents-dir", str(agents_dir),
               "--api-port", str(api_port), "--http-port", str(http_port)]
    if ray_address is not None:
        command += ["--ray-address", ray_address]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, env={**env, "ATOLL_HOME": str(home)}, stdout=sink,
                                   stderr=subprocess.STDOUT, start_new_session=True)
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
    return RayFleet(process, api, f"http://127.0.0.1:{http_port}", admin, home, agents_dir, log)


def stop_fleet(fleet: RayFleet) -> None:
    if fleet.process.poll() is None:
        fleet.process.send_signal(signal.SIGTERM)
        try:
            fleet.process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(fleet.process.pid, signal.SIGKILL)
            fleet.process.wait(10)
            raise AssertionError(f"the deployment server did not stop:\n{fleet.log.read_text()}") from None
    assert fleet.process.returncode == 0, fleet.log.read_text()


def cluster_processes(marker: str) -> list[str]:
    """The processes whose command line names ``marker`` (a Ray cluster's temporary folder)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(proc.info["cmdline"] or ())
        if marker in command:
            found.append(f"{proc.pid} {command[:120]}")
    return found


@pytest.fixture(scope="session")
def ray_fleet(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayFleet]:
    folder = tmp_path_factory.mktemp("ray-fleet")
    env = server_env(HOME=str(folder), ATOLL_SESSION_URL=redis_url)
    fleet = start_fleet(folder, {"echo": ECHO, "other": OTHER, "solo": SOLO}, env, mcp_json={"echo": ECHO_MCP})
    head_dir = fleet.local_head_dir()
    try:
        yield fleet
    finally:
        stop_fleet(fleet)
        assert not cluster_processes(head_dir), cluster_processes(head_dir)
