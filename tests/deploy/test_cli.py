"""``python -m atoll`` as users run it: the status block, ``atoll status``, remotes, SIGTERM, bad config."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import psutil
import pytest

from tests.deploy.conftest import (
    alive,
    child_env,
    free_base_port,
    make_config,
    running_server,
    write_agent,
)
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio


def atoll(*args: str, home: Path, cwd: Path) -> subprocess.Popen[str]:
    env = {**child_env(), "ATOLL_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "atoll", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def test_cli_reports_serves_remotes_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    remote_agents = tmp_path / "remote_agents"
    write_agent(remote_agents, "faraway")
    remote_config = make_config(admin_token="lab-admin")  # every management API needs its token
    port = remote_config.api_port
    base = free_base_port()
    cli_home = tmp_path / "cli_home"
    cli_home.mkdir()
    (cli_home / "deployment_servers.json").write_text(json.dumps({
        "api_port": base, "base_port": base + 1, "agents_directory": "my_agents",
        "remote_servers": [
            {"name": "lab", "host": "127.0.0.1", "port": port, "description": "in-process",
             "admin_token": "lab-admin"},
            {"name": "off", "host": "127.0.0.1", "port": 9, "enabled": False},
            {"name": "gone", "host": "127.0.0.1", "port": base + 30},
        ],
    }))
    write_agent(tmp_path / "my_agents", "GhidraAgent")
    async with running_server(remote_agents, remote_config):
        proc = atoll(home=cli_home, cwd=tmp_path)
        try:
            lines = await _read_block(proc)
            assert lines[:4] == ["[OK] ATOLL deployment server started", "  Local Server: localhost (running)",
                                 "    Agents:", f"    ● GhidraAgent (Port: {base + 1}) - running"]
            assert f"  Admin token: in {cli_home / 'admin_token'} (atoll status reads it); the management " \
                   "API needs 'Authorization: Bearer <token>'" in lines
            assert f"  Dashboard: http://127.0.0.1:{base}/ui (sign in with the admin token)" in lines
            remote_lines = lines[lines.index("  Remote Servers:") + 1:]
            assert remote_lines[0].startswith(f"    ✓ lab (127.0.0.1:{port}) - running (1 agents: faraway)")
            assert remote_lines[1] == "    ○ off (127.0.0.1:9) - disabled"
            assert remote_lines[2].startswith(f"    ○ gone (127.0.0.1:{base + 30}) - not running")

            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{base}", trust_env=False,
                                         timeout=30) as client:
                names = sorted(m["name"] for m in (await client.get("/api/tags")).json()["models"])
                assert names == ["GhidraAgent:latest", "faraway:latest"]
                far = await client.post("/api/generate", json={"model": "faraway", "prompt": "ping",
                                                               "stream": False})
                assert far.json()["response"] == "You said: ping"
                assert (await client.get("/remote")).status_code == 401  # management needs the token
                token = (cli_home / "admin_token").read_text().strip()  # generated on first start
                assert token not in proc_output_so_far(lines)
                remotes = (await client.get("/remote", headers={"Authorization": f"Bearer {token}"})
                           ).json()["remote_servers"]
                assert [r["state"] for r in remotes] == ["running", "disabled", "not_running"]

            status = await anyio.to_thread.run_sync(lambda: subprocess.run(
                [sys.executable, "-m", "atoll", "status", "--json"], capture_output=True, text=True,
                env={**child_env(), "ATOLL_HOME": str(cli_home)}, timeout=30, check=False))
            assert status.returncode == 0, status.stderr
            agent = json.loads(status.stdout)["agents"][0]
            assert agent["name"] == "GhidraAgent" and agent["status"] == "running"
            assert {"port", "pid", "restarts", "uptime_s", "last_health_check", "last_exit_code"} <= set(agent)

            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            assert len(tree) >= 2
            proc.send_signal(signal.SIGTERM)
            code = await anyio.to_thread.run_sync(lambda: proc.wait(timeout=30))
            assert code == 0
            assert alive(tree) == []
            assert not await anyio.Path(cli_home / "deployment_server.state.json").exists()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def proc_output_so_far(lines: list[str]) -> str:
    return "\n".join(lines)


async def _read_block(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    with anyio.fail_after(60):
        while True:
            line = await anyio.to_thread.run_sync(proc.stdout.readline)
            if not line:
                raise AssertionError(f"exited early: {proc.stderr.read() if proc.stderr else ''}")
            lines.append(line.rstrip("\n"))
            if line.startswith("  Agents directory:"):
                break
    # The remote section follows the agents directory line.
    while True:
        line = await anyio.to_thread.run_sync(proc.stdout.readline)
        lines.append(line.rstrip("\n"))
        if line.startswith("    ○ gone"):
            return lines


def test_bad_config_file_exits_2_naming_file_and_field(tmp_path: Path, atoll_home: Path) -> None:
    atoll_home.mkdir(parents=True)
    config = atoll_home / "deployment_servers.json"
    config.write_text('{"base_port": "lots"}')
    done = subprocess.run([sys.executable, "-m", "atoll"], cwd=tmp_path, capture_output=True, text=True,
                          env={**child_env(), "ATOLL_HOME": str(atoll_home)}, timeout=60, check=False)
    assert done.returncode == 2
    assert str(config) in done.stderr and "base_port" in done.stderr


def test_every_deployment_config_error_is_shown_at_once(tmp_path: Path, atoll_home: Path) -> None:
    _write_config(atoll_home, {"base_port": "lots", "api_port": 0, "max_restarts": "many"})
    done = subprocess.run([sys.executable, "-m", "atoll"], cwd=tmp_path, capture_output=True, text=True,
                          env={**child_env(), "ATOLL_HOME": str(atoll_home)}, timeout=60, check=False)
    assert done.returncode == 2
    assert all(field in done.stderr for field in ("base_port", "api_port", "max_restarts")), done.stderr


def test_status_without_a_server_says_so(tmp_path: Path, atoll_home: Path) -> None:
    port = free_base_port()
    done = subprocess.run([sys.executable, "-m", "atoll", "status", "--url", f"http://127.0.0.1:{port}"],
                          capture_output=True, text=True, env=child_env(), timeout=60, check=False)
    assert done.returncode == 1 and "no deployment server" in done.stderr


async def test_missing_agents_dir_is_created_with_a_note(tmp_path: Path, atoll_home: Path) -> None:
    base = free_base_port()
    proc = atoll("--api-port", str(base), "--base-port", str(base + 1), home=atoll_home, cwd=tmp_path)
    try:
        await wait_until_async(lambda: (tmp_path / "atoll_agents").is_dir(), timeout=30)
        async with httpx.AsyncClient(trust_env=False) as client:
            async def up() -> bool:
                try:
                    return (await client.get(f"http://127.0.0.1:{base}/health")).status_code == 200
                except httpx.HTTPError:
                    return False
            with anyio.fail_after(30):
                while not await up():  # noqa: ASYNC110 - polling a real process under a deadline
                    await anyio.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        code = await anyio.to_thread.run_sync(lambda: proc.wait(timeout=30))
        assert code == 0
        out = proc.stdout.read() if proc.stdout else ""
        assert "created the agents directory" in out and "(none found)" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_status_table_sends_the_admin_token(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "tabled-agent-15")
    async with running_server(agents, make_config(admin_token="tok-1")) as run:
        runner = run.runner("tabled-agent-15")

        def status(token: str | None) -> subprocess.CompletedProcess[str]:
            env = {**child_env(), "ATOLL_HOME": str(tmp_path / "status_home"), "COLUMNS": "80"}
            env.pop("ATOLL_ADMIN_TOKEN", None)
            if token:
                env["ATOLL_ADMIN_TOKEN"] = token
            return subprocess.run([sys.executable, "-m", "atoll", "status", "--url", run.url],
                                  capture_output=True, text=True, env=env, timeout=60, check=False)

        refused = await anyio.to_thread.run_sync(status, None)
        assert refused.returncode == 1 and "admin token" in refused.stderr and "ATOLL_ADMIN_TOKEN" in refused.stderr
        shown = await anyio.to_thread.run_sync(status, "tok-1")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].strip() == f"ATOLL deployment server {run.url}"
    assert max(len(line) for line in lines) <= 80, shown.stdout  # a terminal's 80 columns, one row per agent
    header = next(line for line in lines if "agent" in line and "state" in line)
    assert header.split() == ["agent", "port", "pid", "state", "restarts", "uptime", "health", "exit", "atoll"]
    row = next(line for line in lines if "tabled" in line)
    cells = row.split()
    assert cells[:5] == ["tabled-agent-15", str(runner.port), cells[2], "running", "0"] and cells[2].isdigit()
    assert cells[-4:-1] == [cells[-4], "ago", "-"] and cells[-4].endswith("s")


async def test_status_shows_a_degraded_agent_as_degraded_and_why(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "timely", extra='[mcp_servers.time]\ncommand = "no-such-mcp-server-time"\n')
    write_agent(agents, "fine")
    async with running_server(agents, make_config(admin_token="tok-2")) as run:
        listed = {a["name"]: a for a in (await run.client.get("/agents")).json()["agents"]}
        env = {**child_env(), "ATOLL_HOME": str(tmp_path / "status_home"), "COLUMNS": "80",
               "ATOLL_ADMIN_TOKEN": "tok-2"}
        shown = await anyio.to_thread.run_sync(lambda: subprocess.run(
            [sys.executable, "-m", "atoll", "status", "--url", run.url], capture_output=True, text=True, env=env,
            timeout=60, check=False))
    reason = "MCP server 'time' is failed: command not found: no-such-mcp-server-time"
    assert listed["timely"]["status"] == "running"  # it serves: the front door keeps routing to it
    assert listed["timely"]["degraded_reasons"] == [reason]  # what its /health said
    assert listed["fine"]["degraded_reasons"] == []
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[0]: line.split() for line in shown.stdout.splitlines() if line.split()[:1] in
            (["timely"], ["fine"])}
    assert rows["timely"][3] == "degraded" and rows["fine"][3] == "running", shown.stdout
    assert f"! timely: {reason}" in " ".join(shown.stdout.split())  # under the table, folded at 80 columns


def test_busy_explicit_api_port_is_an_error_not_another_port(tmp_path: Path, atoll_home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "atoll", "--api-port", str(port)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**child_env(), "ATOLL_HOME": str(atoll_home)})
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == f"error: port {port} on 127.0.0.1 is in use; choose another with --api-port"


async def test_busy_configured_port_moves_up_and_says_which(tmp_path: Path, atoll_home: Path) -> None:
    base = free_base_port()
    _write_config(atoll_home, {"api_port": base, "base_port": base + 10})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base))
        taken.listen()
        proc = atoll(home=atoll_home, cwd=tmp_path)
        try:
            assert proc.stdout is not None
            lines: list[str] = []
            with anyio.fail_after(60):
                while not lines or not lines[-1].startswith("  Management API"):
                    lines.append(await anyio.to_thread.run_sync(proc.stdout.readline))
                    assert lines[-1], proc.stderr.read() if proc.stderr else ""
            assert (f"note: port {base} is in use; the management API and front door use port {base + 1} "
                    "(auto_discover_port)\n") in lines
            assert lines[-1].strip().endswith(f"http://127.0.0.1:{base + 1}")
        finally:
            proc.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(lambda: proc.wait(timeout=30))


def _write_config(home: Path, values: dict[str, object]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "deployment_servers.json").write_text(json.dumps(values))
