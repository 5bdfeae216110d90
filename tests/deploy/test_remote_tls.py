"""Remotes over HTTPS: the deployment server verifies a remote's certificate (against its
``ca_bundle``, else the system's CAs) and warns at start-up about credentials for a plain-HTTP
remote. The remote is a real agent server serving HTTPS; the deployment server a real process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from atoll.deploy.runner import RUNNING
from tests.deploy.conftest import running_server
from tests.deploy.conftest import write_agent as write_agent_folder
from tests.support.servers import free_port, run_agent_server, scripted_agent_toml, server_env, write_agent
from tests.support.tls import self_signed
from tests.support.waiting import wait_until, wait_until_async


def _up(url: str, process: subprocess.Popen[str], verify: str | bool = True) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"server exited with {process.returncode}")
    try:
        return httpx.get(f"{url}/health", timeout=2, trust_env=False, verify=verify).status_code == 200
    except httpx.TransportError:
        return False


def test_https_remote_verified_against_its_ca_bundle_and_plain_credentials_warned(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    lab.mkdir()
    tls = self_signed(lab)
    agent = write_agent(lab, scripted_agent_toml("faraway", extra='[server]\napi_keys = ["lab-key"]\n'))
    other = tmp_path / "other"
    other.mkdir()
    other_tls = self_signed(other)
    other_agent = write_agent(other, scripted_agent_toml("elsewhere"))
    with run_agent_server(agent, cwd=lab, wait=False,
                          args=["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]) as remote, \
            run_agent_server(other_agent, cwd=other, wait=False,
                             args=["--tls-cert", str(other_tls.cert), "--tls-key", str(other_tls.key)]) as stranger:
        remote_url = f"https://127.0.0.1:{remote.port}"
        stranger_url = f"https://127.0.0.1:{stranger.port}"
        wait_until(lambda: _up(remote_url, remote.process, str(tls.cert)), timeout=60, what=f"{remote_url}/health")
        wait_until(lambda: _up(stranger_url, stranger.process, str(other_tls.cert)), timeout=60,
                   what=f"{stranger_url}/health")
        home = tmp_path / "deploy_home"
        home.mkdir()
        (home / "lab-ca.pem").write_bytes(tls.cert.read_bytes())
        (home / "deployment_servers.json").write_text(json.dumps({"remote_servers": [
            # relative to the config file
            {"name": "lab", "kind": "agent", "host": remote_url, "ca_bundle": "lab-ca.pem", "api_key": "lab-key"},
            # a self-signed certificate no system CA vouches for, and no ca_bundle
            {"name": "untrusted", "kind": "agent", "host": stranger_url},
            {"name": "clear", "kind": "agent", "host": "127.0.0.1", "port": free_port(),
             "api_key": "clear-text-secret"},
        ]}))
        (tmp_path / "atoll_agents").mkdir()
        port = free_port()
        env = server_env(HOME=str(tmp_path), ATOLL_HOME=str(home))
        process = subprocess.Popen([sys.executable, "-m", "atoll", "--api-port", str(port)], cwd=tmp_path,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _up(url, process), timeout=60, what=f"{url}/health")
            with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
                names = [m["name"] for m in client.get("/api/tags").json()["models"]]
                assert names == ["faraway:latest"]
                reply = client.post("/api/generate", json={"model": "faraway", "prompt": "ping", "stream": False})
                assert reply.status_code == 200, reply.text
                assert reply.json()["response"] == "You said: ping"
                token = (home / "admin_token").read_text().strip()
                remotes = {r["name"]: r for r in client.get("/remote", headers={"Authorization": f"Bearer {token}"}
                                                            ).json()["remote_servers"]}
            assert remotes["lab"]["state"] == "running"
            assert remotes["untrusted"]["state"] != "running"
            assert "CERTIFICATE_VERIFY_FAILED" in remotes["untrusted"]["error"]
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "remote 'clear'" in output and "plain HTTP" in output
    assert "remote 'lab'" not in output.split("plain HTTP")[0]
    assert "clear-text-secret" not in output and "lab-key" not in output


def test_ca_bundle_without_tls_and_a_missing_bundle_are_config_errors(tmp_path: Path) -> None:
    home = tmp_path / "deploy_home"
    home.mkdir()
    env = server_env(HOME=str(tmp_path), ATOLL_HOME=str(home))
    for remote, field in (({"name": "x", "host": "127.0.0.1", "ca_bundle": "ca.pem"}, "ca_bundle needs tls"),
                          ({"name": "x", "host": "https://127.0.0.1:9", "ca_bundle": "nowhere.pem"},
                           "remote_servers.0.ca_bundle")):
        (home / "deployment_servers.json").write_text(json.dumps({"remote_servers": [remote]}))
        done = subprocess.run([sys.executable, "-m", "atoll", "--api-port", str(free_port())], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stdout + done.stderr
        assert field in done.stderr and "Traceback" not in done.stderr


@pytest.mark.anyio
async def test_a_spawned_agent_ignores_its_own_tls_settings(tmp_path: Path) -> None:
    """The front door reaches its agents over loopback HTTP: an agent file's tls_cert/tls_key (here
    files that are not even there, a configuration error for a standalone agent) do not apply."""
    agents = tmp_path / "agents"
    write_agent_folder(agents, "plain", extra='tls_cert = "nowhere.crt"\ntls_key = "nowhere.key"\n')
    async with running_server(agents) as run:
        await wait_until_async(lambda: run.runner("plain").state == RUNNING, timeout=60, what="plain running")
        reply = await run.bare.get("/agent/plain/api/tags")
        assert reply.status_code == 200, reply.text
