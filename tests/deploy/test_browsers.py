"""The deployment server (management API and front door) against web pages and strangers: the CSRF
deploy, DNS rebinding, the generated admin token, and the shared HTTP front (raw paths in access
lines, one metric label for unknown methods), on real servers with real agent processes."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest

from tests.deploy.conftest import child_env, free_base_port, running_server, write_agent
from tests.deploy.test_deploy_zip import agent_files, package
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio

EVIL = "https://evil.example"
CHAT = {"model": "open", "stream": False, "messages": [{"role": "user", "content": "hi"}]}


async def test_a_page_from_another_origin_cannot_deploy_or_use_the_front_door(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "open")
    async with running_server(agents) as run:
        zipped = package(agent_files("planted"))
        # Even with the token (a page could not have it, but the origin check does not rely on that).
        csrf = await run.client.post("/agents/deploy", headers={"Origin": EVIL},
                                     files={"file": ("p.zip", zipped, "application/zip")})
        assert csrf.status_code == 403 and "origin 'https://evil.example' is not allowed" in csrf.json()["error"]
        assert set(csrf.json()) >= {"error", "detail"}
        assert not (agents / "planted").exists() and "planted" not in run.server.supervisor.runners
        for method, path, body in (("POST", "/api/chat", CHAT), ("GET", "/api/tags", None),
                                   ("POST", "/agents/open/stop", None), ("GET", "/health", None)):
            refused = await run.client.request(method, path, json=body, headers={"Origin": EVIL,
                                                                              "Content-Type": "text/plain"})
            assert refused.status_code == 403, (method, path)
        assert run.runner("open").state == "running"
        # A local page may use the front door, and reads the answer.
        local = await run.client.post("/api/chat", json=CHAT, headers={"Origin": "http://localhost:3000"})
        assert local.status_code == 200 and local.headers["access-control-allow-origin"] == "http://localhost:3000"


async def test_dns_rebinding_is_refused_on_the_loopback_listener(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "open")
    async with running_server(agents) as run:
        port = run.url.rsplit(":", 1)[1]
        for path in ("/agents", "/api/tags", "/health"):
            rebound = await run.client.get(path, headers={"Host": f"rebind.evil.example:{port}"})
            assert rebound.status_code == 403 and "is not allowed" in rebound.json()["error"], path
        assert (await run.client.get("/agents", headers={"Host": f"localhost:{port}"})).status_code == 200


async def test_management_always_needs_the_generated_token_which_never_reaches_an_agent(
        tmp_path: Path, atoll_home: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "open")
    async with running_server(agents) as run:
        token_file = atoll_home / "admin_token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32 and run.server.token_file == token_file
        assert (await run.bare.get("/agents")).status_code == 401
        assert (await run.bare.get("/health")).status_code == 200
        # The front door strips the admin token: the agent sees no Authorization from it.
        answered = await run.client.post("/api/chat", json=CHAT, headers={"X-Request-ID": "with-admin-token"})
        assert answered.status_code == 200


def _deployment_server(home: Path, cwd: Path, port: int) -> subprocess.Popen[str]:
    env = {**child_env(), "ATOLL_HOME": str(home)}
    env.pop("ATOLL_ADMIN_TOKEN", None)
    return subprocess.Popen([sys.executable, "-m", "atoll", "--api-port", str(port), "--base-port", str(port + 1)],
                            cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def test_a_default_install_prints_the_token_path_and_the_cli_reads_the_token(tmp_path: Path) -> None:
    """``python -m atoll`` with defaults: the CSRF deploy of the issue is refused, the token is in a
    0600 file whose path (never its value) is printed, and ``atoll status`` reads it."""
    home, port = tmp_path / "home", free_base_port()
    proc = _deployment_server(home, tmp_path, port)
    try:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as client:
            def up() -> bool:  # the server is another process: a blocking probe holds nothing up
                try:
                    return httpx.get(f"{url}/health", timeout=2, trust_env=False).status_code == 200
                except httpx.TransportError:
                    return False
            await wait_until_async(up, timeout=60, what="deployment server")
            zipped = package(agent_files("planted"))
            csrf = await client.post("/agents/deploy", headers={"Origin": EVIL},
                                     files={"file": ("p.zip", zipped, "application/zip")})
            assert csrf.status_code == 403
            anonymous = await client.post("/agents/deploy", files={"file": ("p.zip", zipped, "application/zip")})
            assert anonymous.status_code == 401
            assert not (tmp_path / "atoll_agents" / "planted").exists()
            token = (home / "admin_token").read_text().strip()
            assert stat.S_IMODE(os.stat(home / "admin_token").st_mode) == 0o600
            status = await anyio.to_thread.run_sync(lambda: subprocess.run(
                [sys.executable, "-m", "atoll", "status", "--json"], capture_output=True, text=True,
                env={**child_env(), "ATOLL_HOME": str(home)}, timeout=60, check=False))
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["agents"] == []
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert str(home / "admin_token") in out and token not in out


async def test_access_lines_log_the_raw_path_and_unknown_methods_are_one_label(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="atoll.access")
    agents = tmp_path / "agents"
    agents.mkdir()
    async with running_server(agents) as run:
        forged = await run.client.get("/agents/x%0A2026-01-01%20INFO%20forged", headers={"X-Request-ID": "raw-1"})
        assert forged.status_code == 404
        for method in ("PROPFIND", "MKCOL"):  # known to the HTTP parser (others it refuses with 400 itself)
            assert (await run.client.request(method, "/agents")).status_code == 405
        metrics = (await run.client.get("/metrics")).text
    line = next(r for r in caplog.records if getattr(r, "request_id", None) == "raw-1")
    assert line.path == "/agents/x%0A2026-01-01%20INFO%20forged" and "\n" not in line.getMessage()
    assert 'atoll_deploy_http_requests_total{method="OTHER",route="/agents",status="405"} 2' in metrics
    assert 'method="PROPFIND"' not in metrics and 'method="MKCOL"' not in metrics
