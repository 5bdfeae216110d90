"""An atoll agent delegating to another over A2A (``[sub_agents.NAME] a2a_url``): two real agent
server processes; the child's card describes it to the parent's LLM, the context is kept per parent
session, and the child's key is sent."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from atoll.config import SubAgentConfig
from tests.support.servers import SCRIPTED, run_agent_server, write_agent

pytestmark = [pytest.mark.protocols, pytest.mark.timeout(120)]

KEY = "kid-key"
CHILD = f"""
[agent]
name = "kid"
description = "a child that echoes"
capabilities = ["echoing"]

[llm]
provider = "{SCRIPTED}"

[server]
api_keys = ["{KEY}"]
session_store = "memory"
"""


def test_a_parent_delegates_to_a_child_over_a2a(tmp_path: Path) -> None:
    with run_agent_server(write_agent(tmp_path / "kid", CHILD), cwd=tmp_path / "kid") as child:
        parent_toml = f"""
[agent]
name = "boss"

[llm]
provider = "{SCRIPTED}"

[server]
session_store = "memory"

[sub_agents.kid]
a2a_url = "{child.url}"
auth_token = "{KEY}"
"""
        with run_agent_server(write_agent(tmp_path / "boss", parent_toml), cwd=tmp_path / "boss") as parent:
            tools = {t["name"]: t for t in httpx.get(f"{parent.url}/atoll/tools").json()["tools"]}
            assert "echoing" in tools["ask_kid"]["description"]  # from the child's card

            def ask(text: str) -> str:
                reply = httpx.post(f"{parent.url}/api/chat", timeout=60, headers={"X-Session-ID": "s1"}, json={
                    "model": "boss", "stream": False, "messages": [{"role": "user", "content": text}]})
                assert reply.status_code == 200, reply.text
                return str(reply.json()["message"]["content"])

            assert ask('/tool ask_kid {"task": "hello kid"}') == "Tool results: ask_kid=You said: hello kid"
            history = ask('/tool ask_kid {"task": "/history"}')
    assert "user:hello kid | assistant:You said: hello kid | user:/history" in history


def test_a_child_needs_exactly_one_address() -> None:
    with pytest.raises(ValueError, match="either 'url'"):
        SubAgentConfig(url="http://a", a2a_url="http://b")
    with pytest.raises(ValueError, match="either 'url'"):
        SubAgentConfig()
