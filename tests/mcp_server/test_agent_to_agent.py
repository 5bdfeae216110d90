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


def test_the_parents_delegation_depth_reaches_the_child_over_mcp(tmp_path: Path) -> None:
    """A parent sends the depth as the call's ``_meta``; a child past its limit refuses with the 508's message."""
    child_toml = scripted_agent_toml("kid", extra="[server]\nmax_delegation_depth = 1\n")
    with run_agent_server(write_agent(tmp_path / "kid", child_toml), cwd=tmp_path / "kid") as child:
        parent_toml = scripted_agent_toml("boss", extra=f'[mcp_servers.kid]\nurl = "{child.url}/mcp"\n')
        with run_agent_server(write_agent(tmp_path / "boss", parent_toml), cwd=tmp_path / "boss") as parent:
            def ask(depth: str) -> str:
                reply = httpx.post(f"{parent.url}/api/chat", timeout=60, headers={"X-Atoll-Delegation-Depth": depth},
                                   json={"model": "boss", "stream": False, "messages": [
                                       {"role": "user", "content": '/tool kid {"message": "hi"}'}]})
                assert reply.status_code == 200, reply.text
                return str(reply.json()["message"]["content"])

            assert ask("0") == "Tool results: kid=You said: hi"  # the child's request is 1 deep
            deep = ask("1")  # ... and now 2
            refused = httpx.post(f"{child.url}/api/chat", timeout=30, headers={"X-Atoll-Delegation-Depth": "2"},
                                 json={"model": "kid", "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 508, refused.text
    assert deep == f"Tool results: kid={refused.json()['error']}", deep
