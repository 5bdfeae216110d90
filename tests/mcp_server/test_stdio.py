"""``atoll --server --mcp-stdio``: a desktop client launches the agent and speaks MCP over its stdio
(the official ``mcp`` client here). Nothing but MCP on stdout; the state lives under $ATOLL_HOME."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tests.support.servers import SCRIPTED, scripted_agent_toml, server_env, write_agent

pytestmark = [pytest.mark.protocols, pytest.mark.timeout(120)]


def _params(tmp_path: Path, *args: str) -> tuple[StdioServerParameters, Path]:
    home = tmp_path / "atoll-home"
    env = server_env(HOME=str(tmp_path), ATOLL_HOME=str(home), ATOLL_LLM_PROVIDER=SCRIPTED)
    elsewhere = tmp_path / "anywhere"
    elsewhere.mkdir()
    return StdioServerParameters(command=sys.executable, args=["-m", "atoll", "--server", "--mcp-stdio", *args],
                                 env=env, cwd=str(elsewhere)), home


async def test_a_desktop_client_talks_to_the_agent_over_stdio(tmp_path: Path) -> None:
    agent = write_agent(tmp_path / "agent", scripted_agent_toml("desk"))
    params, _ = _params(tmp_path, "--agent", str(agent))
    async with Client(params, mode="legacy") as client:
        names = [t.name for t in (await client.list_tools()).tools]
        first = await client.call_tool("desk", {"message": "hello"})
        again = await client.call_tool("desk", {"message": "/history",
                                                "session_id": first.structured_content["session_id"]})
    assert names == ["desk"]
    assert first.content[0].text == "You said: hello"  # type: ignore[union-attr]
    assert "user:hello | assistant:You said: hello | user:/history" in again.content[0].text  # type: ignore[union-attr]


def test_stdout_carries_nothing_but_mcp(tmp_path: Path) -> None:
    params, _ = _params(tmp_path, "--agent", str(write_agent(tmp_path / "agent", scripted_agent_toml("desk"))))
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
    done = subprocess.run([params.command, *params.args], input=json.dumps(hello) + "\n", env=params.env,
                          cwd=params.cwd, capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [1], done.stdout
    assert json.loads(lines[0])["result"]["serverInfo"]["name"] == "desk"
    assert "serving MCP on stdio" in done.stderr


async def test_without_an_agent_file_the_sessions_live_under_atoll_home(tmp_path: Path) -> None:
    params, home = _params(tmp_path)
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        answer = await client.call_tool(tools[0].name, {"message": "hi"})
    assert answer.content[0].text == "You said: hi"  # type: ignore[union-attr]
    assert list((home / "sessions").glob("*.db"))
    assert not list((tmp_path / "anywhere").iterdir())
