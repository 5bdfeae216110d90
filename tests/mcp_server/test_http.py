"""A real agent server process reached over MCP (streamable HTTP at ``/mcp``) with the official
``mcp`` client: the agent's tool, its progress notifications, sessions shared with the Ollama API,
API keys, and the agent's own tools re-exported (here from the real ``mcp-server-time``, whose
tools need approval: offered only to a client that can be asked, through MCP elicitation)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client

from tests.mcp_client.helpers import TIME_BIN
from tests.support.servers import AgentServer, run_agent_server, scripted_agent_toml, write_agent

pytestmark = [pytest.mark.protocols, pytest.mark.timeout(120)]

KEY = "mcp-key"
EVERYTHING = (Path(__file__).resolve().parents[2]
              / ".mcp-servers/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js")


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    assert TIME_BIN.is_file(), "run scripts/install-mcp-servers.sh"
    folder = tmp_path_factory.mktemp("mcp-agent")
    extra = f"""
[server]
api_keys = ["{KEY}"]
session_store = "memory"
mcp_expose_tools = ["get_*"]

[mcp_servers.time]
command = "{TIME_BIN}"
args = ["--local-timezone", "UTC"]
require_approval = true
"""
    with run_agent_server(write_agent(folder, scripted_agent_toml("helper", extra=extra)), cwd=folder) as server:
        yield server


@asynccontextmanager
async def _client(agent: AgentServer, key: str | None = KEY, headers: dict[str, str] | None = None,
                  **options: Any) -> AsyncIterator[Client]:
    """An MCP client on an HTTP client of its own, both closed on exit (the SDK leaves a client it
    is given open)."""
    headers = (headers or {}) | ({"Authorization": f"Bearer {key}"} if key else {})
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http, \
            Client(streamable_http_client(f"{agent.url}/mcp", http_client=http), **options) as client:
        yield client


def _approver(approve: bool, asked: list[str]) -> Any:
    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": approve})

    return answer


async def test_the_agent_is_a_tool_and_its_own_tools_need_a_client_that_can_ask(agent: AgentServer) -> None:
    async with _client(agent) as client:  # no elicitation: tools that need approval are left out
        tools = {t.name: t for t in (await client.list_tools()).tools}
        hidden = await client.call_tool("get_current_time", {"timezone": "UTC"})
    assert set(tools) == {"helper"}
    assert hidden.is_error and "unknown tool 'get_current_time'" in hidden.content[0].text  # type: ignore[union-attr]
    assert tools["helper"].input_schema["required"] == ["message"]
    assert "scripted test agent" in (tools["helper"].description or "")
    asked: list[str] = []
    async with _client(agent, elicitation_callback=_approver(True, asked), mode="legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        now = await client.call_tool("get_current_time", {"timezone": "UTC"})
        unmatched = await client.call_tool("convert_time", {})
    assert names == {"helper", "get_current_time"}  # convert_time does not match get_*
    assert not now.is_error and '"timezone": "UTC"' in now.content[0].text  # type: ignore[union-attr]
    assert asked and "get_current_time" in asked[0]
    assert unmatched.is_error and "unknown tool 'convert_time'" in unmatched.content[0].text  # type: ignore[union-attr]
    async with _client(agent, elicitation_callback=_approver(False, []), mode="legacy") as client:
        refused = await client.call_tool("get_current_time", {"timezone": "UTC"})
    assert refused.is_error and "was not approved" in refused.content[0].text  # type: ignore[union-attr]


async def test_an_answer_streams_as_progress_and_keeps_its_session(agent: AgentServer) -> None:
    progress: list[tuple[float, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, message))

    async with _client(agent) as client:
        first = await client.call_tool("helper", {"message": "/count 5"}, progress_callback=on_progress)
        assert not first.is_error
        assert first.content[0].text == "w1 w2 w3 w4 w5"  # type: ignore[union-attr]
        session = first.structured_content["session_id"]
        second = await client.call_tool("helper", {"message": "/history", "session_id": session})
    assert [m for _, m in progress] == ["w1", " w2", " w3", " w4", " w5"]
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert "user:/count 5 | assistant:w1 w2 w3 w4 w5 | user:/history" in second.content[0].text  # type: ignore[union-attr]

    # The same session, with the same key, over the Ollama API.
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}", "X-Session-ID": session}) as http:
        reply = await http.post(f"{agent.url}/api/chat", json={
            "model": "helper", "stream": False, "messages": [{"role": "user", "content": "/history"}]})
    assert reply.status_code == 200
    assert "user:/count 5" in reply.json()["message"]["content"]


async def test_a_message_is_required(agent: AgentServer) -> None:
    async with _client(agent) as client:
        empty = await client.call_tool("helper", {"message": "  "})
        odd = await client.call_tool("helper", {"message": "hi", "session_id": "a b/c"})
    assert empty.is_error and "'message' is required" in empty.content[0].text  # type: ignore[union-attr]
    assert odd.is_error and "invalid session_id" in odd.content[0].text  # type: ignore[union-attr]


async def test_the_delegation_depth_header_counts_as_on_the_other_dialects(agent: AgentServer) -> None:
    async with _client(agent, headers={"X-Atoll-Delegation-Depth": "5"}) as client:
        deep = await client.call_tool("helper", {"message": "hi"})
    async with _client(agent) as client:
        by_meta = await client.call_tool("helper", {"message": "hi"}, meta={"atoll/delegation-depth": "5"})
        fine = await client.call_tool("helper", {"message": "hi"}, meta={"atoll/delegation-depth": "4"})
    for refused in (deep, by_meta):
        assert refused.is_error, refused
        assert refused.content[0].text.startswith("delegation too deep: this request is 5")  # type: ignore[union-attr]
    assert not fine.is_error and fine.content[0].text == "You said: hi"  # type: ignore[union-attr]


def test_a_reexported_tool_runs_with_its_own_timeout(tmp_path: Path) -> None:
    """The ``timeout`` of the tool's ``[mcp_servers.X]`` entry wins over ``[agent] tool_timeout``, as in the loop."""
    extra = f"""
[server]
mcp_expose_tools = ["trigger-long-running-operation"]

[mcp_servers.everything]
command = "node"
args = ["{EVERYTHING}", "stdio"]
timeout = 1
"""
    toml = scripted_agent_toml("slowpoke", extra=extra).replace('name = "slowpoke"',
                                                               'name = "slowpoke"\ntool_timeout = 60', 1)

    async def call() -> types.CallToolResult:
        async with _client(server, key=None) as client:
            return await client.call_tool("trigger-long-running-operation", {"duration": 5, "steps": 5})

    with run_agent_server(write_agent(tmp_path, toml), cwd=tmp_path, timeout=40) as server:
        result = asyncio.run(call())
    assert result.is_error, result
    assert "timed out after 1 s" in result.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("key", [None, "wrong"])
def test_mcp_needs_the_agents_api_key(agent: AgentServer, key: str | None) -> None:
    headers = {"Accept": "application/json, text/event-stream"} | ({"Authorization": f"Bearer {key}"} if key else {})
    hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    reply = httpx.post(f"{agent.url}/mcp", headers=headers, json=body)
    assert reply.status_code == 401
    assert "API key" in reply.json()["error"]
