"""Both servers serve HTTPS themselves (``tls_cert``/``tls_key``, or ``--tls-cert/--tls-key``):
real processes, a self-signed certificate for 127.0.0.1, httpx verifying against it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, run_agent_server, scripted_agent_toml, server_env, write_agent
from tests.support.tls import self_signed
from tests.support.waiting import wait_until


def _https_health(url: str, cert: Path, process: subprocess.Popen[str]) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"server exited with {process.returncode}")
    try:
        return httpx.get(f"{url}/health", verify=str(cert), timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_agent_serves_https_from_its_server_section(tmp_path: Path) -> None:
    tls = self_signed(tmp_path)
    agent = write_agent(tmp_path, scripted_agent_toml("secure")
                        + f'\n[server]\ntls_cert = "{tls.cert.name}"\ntls_key = "{tls.key.name}"\n')
    with run_agent_server(agent, cwd=tmp_path, wait=False) as server:
        url = f"https://127.0.0.1:{server.port}"
        wait_until(lambda: _https_health(url, tls.cert, server.process), timeout=60, what=f"{url}/health")
        reply = httpx.post(f"{url}/api/chat", verify=str(tls.cert), timeout=30,
                           json={"model": "secure", "stream": False, "messages": [{"role": "user", "content": "hi"}]})
        assert reply.status_code == 200, reply.text
        with pytest.raises(httpx.TransportError):  # plain HTTP is not answered on the TLS port
            httpx.get(f"http://127.0.0.1:{server.port}/health", timeout=5)
        with pytest.raises(httpx.ConnectError):  # and a client that does not trust the certificate refuses it
            httpx.get(f"{url}/health", timeout=5)
    assert url in server.output()


def test_agent_flags_override_and_a_half_pair_is_a_config_error(tmp_path: Path) -> None:
    tls = self_signed(tmp_path)
    agent = write_agent(tmp_path, scripted_agent_toml("secure"))
    with run_agent_server(agent, cwd=tmp_path, wait=False,
                          args=["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]) as server:
        url = f"https://127.0.0.1:{server.port}"
        wait_until(lambda: _https_health(url, tls.cert, server.process), timeout=60, what=f"{url}/health")
    done = subprocess.run([sys.executable, "-m", "atoll", "--server", "--port", "0", "--agent", str(agent),
                           "--tls-cert", str(tls.cert)], cwd=tmp_path, env=server_env(HOME=str(tmp_path)),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "tls_key" in done.stderr and "Traceback" not in done.stderr


def test_deployment_server_serves_https_and_status_trusts_its_certificate(tmp_path: Path) -> None:
    tls = self_signed(tmp_path)
    (tmp_path / "atoll_agents").mkdir()
    home = tmp_path / "home"
    home.mkdir()
    (home / "deployment_servers.json").write_text(json.dumps({"tls_cert": str(tls.cert), "tls_key": str(tls.key)}))
    port = free_port()
    env = server_env(HOME=str(tmp_path), ATOLL_HOME=str(home))
    process = subprocess.Popen([sys.executable, "-m", "atoll", "--api-port", str(port)],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"https://127.0.0.1:{port}"
    try:
        wait_until(lambda: _https_health(url, tls.cert, process), timeout=60, what=f"{url}/health")
        token = (tmp_path / "home" / "admin_token").read_text().strip()
        listing = httpx.get(f"{url}/agents", verify=str(tls.cert), timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
        assert listing.status_code == 200, listing.text
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        status = subprocess.run([sys.executable, "-m", "atoll", "status", "--json"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["agents"] == []
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
