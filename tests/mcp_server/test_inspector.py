"""The MCP Inspector's CLI (npm ``@modelcontextprotocol/inspector``, installed by
``scripts/install-test-clients.sh``) lists and calls a real agent server's tools over ``/mcp``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import REPO, AgentServer, run_agent_server, scripted_agent_toml, write_agent

pytestmark = [pytest.mark.protocols, pytest.mark.timeout(180)]

INSPECTOR = REPO / ".test-clients" / "node_modules" / ".bin" / "mcp-inspector"
KEY = "inspect-me"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    assert INSPECTOR.exists(), "run scripts/install-test-clients.sh"
    folder = tmp_path_factory.mktemp("inspected")
    toml = scripted_agent_toml("inspected", extra=f'[server]\napi_keys = ["{KEY}"]\nsession_store = "memory"\n')
    with run_agent_server(write_agent(folder, toml), cwd=folder) as server:
        yield server


def inspector(agent: AgentServer, *args: str, key: str = KEY) -> subprocess.CompletedProcess[str]:
    command = [str(INSPECTOR), "--cli", f"{agent.url}/mcp", "--transport", "http",
               "--header", f"Authorization: Bearer {key}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=Path(agent.log).parent)


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


def test_inspector_lists_the_agents_tool(agent: AgentServer) -> None:
    listed = _json(inspector(agent, "--method", "tools/list"))
    [tool] = listed["tools"]
    assert tool["name"] == "inspected" and tool["inputSchema"]["required"] == ["message"]


def test_inspector_calls_the_agent(agent: AgentServer) -> None:
    called = _json(inspector(agent, "--method", "tools/call", "--tool-name", "inspected", "--tool-arg", "message=hi"))
    assert called["content"][0]["text"] == "You said: hi"
    assert called["structuredContent"]["session_id"]


def test_inspector_without_the_key_is_refused(agent: AgentServer) -> None:
    done = inspector(agent, "--method", "tools/list", "--stored-auth-only", key="wrong")
    assert done.returncode != 0
    assert '"auth_required"' in done.stderr  # the agent answered 401: the Inspector would need to sign in
