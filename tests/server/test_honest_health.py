"""Start-up and health tell the truth: an MCP server that did not connect, an LLM backend that cannot
be reached, and tools on a model that cannot call them are said, not hidden behind ``[OK]``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, run_agent_server, scripted_agent_toml, write_agent

MISSING_MCP = '[mcp_servers.time]\ncommand = "no-such-mcp-server-time"\n'


def test_missing_mcp_command_is_degraded_not_ok(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, scripted_agent_toml("timely", extra=MISSING_MCP))
    with run_agent_server(agent, cwd=tmp_path) as server:
        output = server.output()
        health = httpx.get(server.url + "/health")
        status = httpx.get(server.url + "/atoll/status").json()
    assert "[DEGRADED] atoll agent server 'timely'" in output and "[OK]" not in output
    assert ("  MCP:      0 of 1 connected, 0 tools (time: command not found: no-such-mcp-server-time; "
            "retried in the background)") in output
    assert f"  URL:      http://127.0.0.1:{server.port}" in output  # the address it binds, not "localhost"
    assert "MCP server(s) 'time' not connected; retrying in 30 s" in output
    assert health.status_code == 200  # liveness checks keep passing
    assert health.json()["status"] == "degraded"
    assert health.json()["reasons"] == ["MCP server 'time' is failed: command not found: no-such-mcp-server-time"]
    assert health.json()["timestamp"].endswith("+00:00")
    assert status["status"] == "degraded" and status["mcp_servers"]["time"]["state"] == "failed"


def test_unreachable_llm_backend_is_reported(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    agent = write_agent(tmp_path, f'[agent]\nname = "upstreamless"\n[llm]\nprovider = "ollama"\n'
                                  f'base_url = "{dead}"\nmodel = "qwen3:4b"\n')
    with run_agent_server(agent, cwd=tmp_path) as server:
        output = server.output()
        health = httpx.get(server.url + "/health").json()
        llm = httpx.get(server.url + "/atoll/status").json()["llm"]
    assert "[DEGRADED]" in output and f"LLM backend {dead} is unreachable" in output
    assert health["status"] == "degraded" and health["reasons"][0].startswith(f"LLM backend {dead} is unreachable")
    assert llm["reachable"] is False and dead in llm["error"]


@pytest.mark.model
def test_tools_on_the_embedded_model_warn_and_show_tells_the_truth(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, '[agent]\nname = "tiny"\n[llm]\nprovider = "local"\n'
                                  f'[llm.extra]\nn_threads = 1\n{MISSING_MCP}')
    with run_agent_server(agent, cwd=tmp_path, timeout=120) as server:
        output = server.output()
        shown = httpx.post(server.url + "/api/show", json={"model": "tiny"}).json()
        status = httpx.get(server.url + "/atoll/status").json()
    assert "  WARNING:  tools are configured but the local model" in output and "cannot call them" in output
    assert "tools" not in shown["capabilities"]
    assert status["llm"]["calls_tools"] is False and status["llm"]["reachable"] is True
