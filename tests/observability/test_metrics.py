"""``GET /metrics``: Prometheus text that ``prometheus_client.parser`` reads, with counters that
move with traffic (requests, latency, tokens, tool calls) and gauges for sessions and MCP servers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import atoll
from tests.support.servers import AgentServer, run_agent_server, scripted_agent_toml, write_agent

REPO = Path(__file__).resolve().parents[2]
TIME_BIN = REPO / ".mcp-servers/py/bin/mcp-server-time"


def scrape(server: AgentServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample, by name and labels."""
    response = httpx.get(server.url + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def chat(server: AgentServer, text: str, **headers: str) -> httpx.Response:
    return httpx.post(server.url + "/api/chat", headers=headers, timeout=30,
                      json={"model": "echo", "stream": False, "messages": [{"role": "user", "content": text}]})


@pytest.fixture(scope="module")
def time_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    """An agent with the real ``mcp-server-time`` as its one MCP server."""
    if not TIME_BIN.is_file():
        pytest.skip("MCP servers not installed: run scripts/install-mcp-servers.sh")
    folder = tmp_path_factory.mktemp("time-agent")
    agent = write_agent(folder, scripted_agent_toml("echo", extra=(
        f'[mcp_servers.time]\ncommand = "{TIME_BIN}"\nargs = ["--local-timezone", "UTC"]\n'
        '[server]\nsession_store = "memory"\n')))
    with run_agent_server(agent, cwd=folder) as server:
        yield server


def test_counters_move_with_traffic(echo_server: AgentServer) -> None:
    before = scrape(echo_server)
    session = uuid.uuid4().hex
    for text in ("one", "two", "three"):
        assert chat(echo_server, text, **{"X-Session-ID": session}).status_code == 200
    assert httpx.get(echo_server.url + "/api/sessions/" + session).status_code == 200
    assert httpx.get(echo_server.url + "/no/such/path").status_code == 404
    after = scrape(echo_server)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("atoll_http_requests_total", method="POST", route="/api/chat", status="200") == 3
    assert moved("atoll_http_requests_total", method="GET", route="/api/sessions/{session_id}", status="200") == 1
    assert moved("atoll_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert moved("atoll_http_request_duration_seconds_count", method="POST", route="/api/chat") == 3
    assert moved("atoll_http_request_duration_seconds_sum", method="POST", route="/api/chat") > 0
    assert moved("atoll_tokens_total", direction="in") > 0
    assert moved("atoll_tokens_total", direction="out") == 3 * 3  # "You said: <word>"
    assert value(after, "atoll_active_sessions") >= 1
    assert value(after, "atoll_active_generations") == 0
    assert value(after, "atoll_agent_info", agent="echo", version="1.0.0", atoll_version=atoll.__version__,
                 provider="scripted", model="scripted") == 1


def test_a_generation_in_flight_is_counted(echo_server: AgentServer) -> None:
    with httpx.stream("POST", echo_server.url + "/api/chat", timeout=30, json={
            "model": "echo", "messages": [{"role": "user", "content": "/slow 3 0.3"}]}) as stream:
        lines = stream.iter_lines()  # keep it: a dropped iterator closes the response
        assert json.loads(next(lines))["done"] is False
        assert value(scrape(echo_server), "atoll_active_generations") == 1
        assert json.loads(list(lines)[-1])["done"] is True


def test_tool_calls_and_mcp_server_state(time_server: AgentServer) -> None:
    tools = [t["name"] for t in httpx.get(time_server.url + "/atoll/tools").json()["tools"]]
    tool = next(name for name in tools if "current_time" in name)
    before = scrape(time_server)
    assert chat(time_server, f'/tool {tool} {{"timezone": "UTC"}}').status_code == 200
    assert chat(time_server, f'/tool {tool} {{"timezone": "Not/AZone"}}').status_code == 200
    after = scrape(time_server)
    assert value(after, "atoll_tool_calls_total", tool=tool, outcome="ok") \
        - value(before, "atoll_tool_calls_total", tool=tool, outcome="ok") == 1
    assert value(after, "atoll_tool_calls_total", tool=tool, outcome="error") \
        - value(before, "atoll_tool_calls_total", tool=tool, outcome="error") == 1
    state = httpx.get(time_server.url + "/atoll/status").json()["mcp_servers"]["time"]["state"]
    assert value(after, "atoll_mcp_server_state", server="time", state=state) == 1
    assert value(after, "atoll_mcp_server_tools", server="time") == len(tools)
