"""An atoll agent delegating to another over A2A (``[sub_agents.NAME] a2a_url``): two real agent
server processes; the child's card describes it to the parent's LLM, the context is kept per parent
session, and the child's key is sent. Two agents delegating to each other over A2A are stopped at
``[server] max_delegation_depth``, as over the Ollama API."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.helpers import get_message_text
from a2a.types import Message, Part, Role, SendMessageRequest, TaskState

from atoll.config import SubAgentConfig
from tests.support.servers import SCRIPTED, AgentServer, free_port, run_agent_server, write_agent

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


def _peer(name: str, other: str, other_port: int) -> str:
    return f"""
[agent]
name = "{name}"

[llm]
provider = "{SCRIPTED}"

[server]
max_delegation_depth = 2

[sub_agents.{other}]
a2a_url = "http://127.0.0.1:{other_port}"
"""


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AgentServer, AgentServer]]:
    """Agents a and b, each the other's A2A child agent, each allowing 2 levels of delegation."""
    root = tmp_path_factory.mktemp("a2a-loop")
    port_a, port_b = free_port(), free_port()
    with (run_agent_server(write_agent(root / "b", _peer("b", "a", port_a)), cwd=root / "b", port=port_b) as b,
          run_agent_server(write_agent(root / "a", _peer("a", "b", port_b)), cwd=root / "a", port=port_a) as a):
        yield a, b


def ping_pong(depth: int) -> str:
    """A task for a that has a ask b ask a ... ``depth`` times over."""
    task = "bottom"
    for level in reversed(range(depth)):
        task = f"/tool ask_{'ab'[(level + 1) % 2]} {json.dumps({'task': task})}"
    return task


def test_a_loop_over_a2a_stops_at_max_delegation_depth(peers: tuple[AgentServer, AgentServer]) -> None:
    a, _ = peers
    reply = httpx.post(a.url + "/api/chat", timeout=90, json={
        "model": "a", "stream": False, "messages": [{"role": "user", "content": ping_pong(5)}]})
    assert reply.status_code == 200, reply.text
    content = reply.json()["message"]["content"]
    # a (0) -> b (1) -> a (2); a at depth 2 may not delegate again, and its LLM is told so
    assert content.startswith("Tool results: ask_b=Tool results: ask_a=Tool results: ask_b="), content
    assert "not delegated to agent 'b'" in content and "max_delegation_depth = 2" in content, content
    assert "bottom" not in content


def test_an_a2a_request_too_deep_fails_with_the_message_of_the_508(peers: tuple[AgentServer, AgentServer]) -> None:
    a, _ = peers
    too_deep = {"X-Atoll-Delegation-Depth": "3"}
    refused = httpx.post(a.url + "/api/chat", headers=too_deep, timeout=30, json={
        "model": "a", "stream": False, "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 508, refused.text

    async def send() -> tuple[int, str]:
        async with httpx.AsyncClient(headers=too_deep, timeout=30) as http:
            client = await create_client(a.url, ClientConfig(streaming=False, httpx_client=http))
            message = Message(role=Role.ROLE_USER, parts=[Part(text="hi")], message_id=uuid.uuid4().hex)
            try:
                [response] = [r async for r in client.send_message(SendMessageRequest(message=message))]
            finally:
                await client.close()
        return response.task.status.state, get_message_text(response.task.status.message)

    state, why = asyncio.run(send())
    assert state == TaskState.TASK_STATE_FAILED
    assert why == refused.json()["error"] and "max_delegation_depth" in why
