"""The `atoll --server` process: startup block, port in use, bad config, graceful shutdown."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.support.servers import run_agent_server, scripted_agent_toml, server_env, write_agent


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "atoll", "--server", *args], cwd=cwd, env=server_env(HOME=str(cwd)),
                          capture_output=True, text=True, timeout=60)


def test_startup_block_names_agent_provider_model_and_url(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, scripted_agent_toml("greeter"))
    with run_agent_server(agent, cwd=tmp_path) as server:
        output = server.output()
    assert "greeter" in output and "scripted / scripted" in output and f":{server.port}" in output
    assert "WARNING" not in output  # loopback: no warning


def test_warns_when_listening_beyond_loopback_without_keys(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, scripted_agent_toml())
    with run_agent_server(agent, cwd=tmp_path, args=["--host", "0.0.0.0"]) as server:
        assert "WARNING" in server.output() and "no API key" in server.output()


def test_port_in_use_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, scripted_agent_toml())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["--host", "127.0.0.1", "--port", str(port), "--agent", str(agent)], tmp_path)
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_invalid_config_names_file_and_field_exit_2(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, '[agent]\nname = "x"\n[llm]\ntemperature = "hot"\n')
    result = run_cli(["--port", "0", "--agent", str(agent)], tmp_path)
    assert result.returncode == 2
    assert str(agent) in result.stderr and "llm.temperature" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_config_error_is_shown_at_once(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, '[agent]\nname = "x"\nmax_iterations = "ten"\n[llm]\ntemperature = "hot"\n')
    result = run_cli(["--port", "0", "--agent", str(agent)], tmp_path)
    assert result.returncode == 2
    assert "agent.max_iterations" in result.stderr and "'ten'" in result.stderr
    assert "llm.temperature" in result.stderr and "'hot'" in result.stderr
    assert "more)" not in result.stderr


def test_unknown_provider_names_file_and_field_exit_2(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, '[agent]\nname = "x"\n[llm]\nprovider = "gpt-magic"\n')
    result = run_cli(["--port", "0", "--agent", str(agent)], tmp_path)
    assert result.returncode == 2
    assert str(agent) in result.stderr and "llm.provider" in result.stderr and "gpt-magic" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_drains_in_flight_request_and_exits_0(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, scripted_agent_toml())
    with run_agent_server(agent, cwd=tmp_path) as server:
        first_chunk = threading.Event()
        received: list[dict] = []

        def slow_stream() -> None:
            with httpx.stream("POST", server.url + "/api/chat", timeout=30, json={
                    "model": "echo", "messages": [{"role": "user", "content": "/slow 8 0.1"}]}) as response:
                for line in response.iter_lines():
                    received.append(json.loads(line))
                    first_chunk.set()

        worker = threading.Thread(target=slow_stream)
        worker.start()
        assert first_chunk.wait(15)
        code = server.stop(signal.SIGTERM)
        worker.join(30)
    assert code == 0
    assert received[-1]["done"] is True
    assert "".join(c["message"]["content"] for c in received).startswith("s1 s2 s3 s4 s5 s6 s7 s8")


def test_health_is_503_starting_until_the_agent_is_ready(tmp_path: Path) -> None:
    silent = f'[server]\nmcp_connect_timeout = 3\n[mcp_servers.silent]\ncommand = "{sys.executable}"\n' \
             'args = ["-c", "import time; time.sleep(3600)"]\n'
    agent = write_agent(tmp_path, scripted_agent_toml(extra=silent))
    with run_agent_server(agent, cwd=tmp_path, wait=False) as server:
        deadline = time.monotonic() + 20
        first: httpx.Response | None = None
        while first is None and time.monotonic() < deadline:
            try:
                first = httpx.get(server.url + "/health", timeout=2)
            except httpx.TransportError:
                time.sleep(0.05)
        assert first is not None and first.status_code == 503 and first.json()["status"] == "starting"
        refused = httpx.post(server.url + "/api/chat", json={"model": "echo", "messages": [
            {"role": "user", "content": "too early"}]})
        assert refused.status_code == 503 and "not initialized" in refused.json()["error"]
        while httpx.get(server.url + "/health", timeout=2).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        ready = httpx.get(server.url + "/health")
        # serving (200), and honest that the silent MCP server never answered
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert ready.json()["reasons"] == ["MCP server 'silent' is failed: no answer within 3 s"]


def test_drain_timeout_bounds_the_wait_for_a_stream_that_will_not_end(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, scripted_agent_toml(extra="[server]\ndrain_timeout = 0.5\n"))
    with run_agent_server(agent, cwd=tmp_path) as server:
        started = threading.Event()

        def endless() -> None:
            try:
                with httpx.stream("POST", server.url + "/api/chat", timeout=60, json={
                        "model": "echo", "messages": [{"role": "user", "content": "/slow 60 1"}]}) as response:
                    for _ in response.iter_lines():
                        started.set()
            except httpx.HTTPError:
                pass

        worker = threading.Thread(target=endless, daemon=True)
        worker.start()
        assert started.wait(15)
        stopping = time.monotonic()
        assert server.stop(signal.SIGTERM, timeout=30) == 0
        assert time.monotonic() - stopping < 15  # the drain gave up after ~1 s; the stream had a minute left


def test_a_bad_mcp_json_is_named_by_its_absolute_path(tmp_path: Path) -> None:
    agent = write_agent(tmp_path / "agent", scripted_agent_toml())
    (tmp_path / "mcp.json").write_text('{"mcpServers": {"x": {"command": 5}}}')
    result = run_cli(["--port", "0", "--agent", str(agent)], tmp_path)
    assert result.returncode == 2
    assert f"{tmp_path.resolve() / 'mcp.json'}: " in result.stderr, result.stderr


def test_a_relative_deployment_config_is_named_by_its_absolute_path(tmp_path: Path) -> None:
    (tmp_path / "fleet.json").write_text('{"base_port": "lots"}')
    result = subprocess.run([sys.executable, "-m", "atoll", "--config", "fleet.json"], cwd=tmp_path,
                            env=server_env(HOME=str(tmp_path)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'fleet.json'}: base_port"), result.stderr
