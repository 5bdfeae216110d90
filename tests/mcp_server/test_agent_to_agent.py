"""An atoll agent using another atoll agent as an MCP server (``[mcp_servers.x] url = ".../mcp"``):
two real agent server processes, the parent's MCP client against the child's ``/mcp``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.servers import run_agent_server, scripted_agent_toml, write_agent

pytestmark = [pytest.mark.protocols, pytest.mark.timeout(120)]

KEY = "child-key"


def test_a_parent_agent_calls_a_child_agent_over_mcp(tmp_path: Path) -> None:
    child_toml = scripted_agent_toml("kid", extra=f'[server]\napi_keys = ["{KEY}"]\nsession_store = "memory"\n')
    with run_agent_server(write_agent(tmp_path / "kid", child_toml), cwd=tmp_path / "kid") as child:
        parent_toml = scripted_agent_toml("boss", extra=f"""
[server]
session_store = "memory"

[mcp_servers.kid]
url = "{child.url}/mcp"
headers = {{ Authorization = "Bearer {KEY}" }}
""")
        with run_agent_server(write_agent(tmp_path / "boss", parent_toml), cwd=tmp_path / "boss") as parent:
            tools = httpx.get(f"{parent.url}/atoll/tools").json()
            assert "kid" in {t["name"] for t in tools["tools"]}
            reply = httpx.post(f"{parent.url}/api/chat", timeout=60, json={
                "model": "boss", "stream": False,
                "messages": [{"role": "user", "content": '/tool kid {"message": "hello from boss"}'}]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["message"]["content"] == "Tool results: kid=You said: hello from boss"
