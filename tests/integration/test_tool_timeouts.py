"""One timeout rule for tool calls, through real processes: a parent agent server whose tools are a
real child agent server (both with the scripted LLM). The ``timeout`` written in a child agent's (or
MCP server's) entry wins, else ``[agent] tool_timeout`` applies, on the agent loop and on
``POST /atoll/tools/{name}`` alike."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support.servers import AgentServer, run_agent_server, scripted_agent_toml, write_agent

pytestmark = pytest.mark.timeout(120)

#: the child answers after ~3 s: longer than tool_timeout + the loop's old 1 s grace (each test its own task)
SLOW_TASK = "/slow 3 1"
SLOW_TASK_AGAIN = "/slow 3 1.01"


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    root = tmp_path_factory.mktemp("timeouts")
    child_dir, parent_dir = root / "child", root / "parent"
    with run_agent_server(write_agent(child_dir, scripted_agent_toml("child")), cwd=child_dir) as child:
        extra = (f'[sub_agents.patient]\nurl = "{child.url}"\ntimeout = 30\n\n'
                 f'[sub_agents.hasty]\nurl = "{child.url}"\n')
        toml = scripted_agent_toml("parent", extra=extra).replace(
            'description = "scripted test agent"', 'description = "scripted test agent"\ntool_timeout = 1')
        with run_agent_server(write_agent(parent_dir, toml), cwd=parent_dir) as server:
            yield server


def loop_result(parent: AgentServer, tool: str) -> str:
    call = f"/tool {tool} {json.dumps({'task': SLOW_TASK})}"
    reply = httpx.post(parent.url + "/api/chat", timeout=60, json={
        "model": "parent", "stream": False, "messages": [{"role": "user", "content": call}]})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["message"]["content"])


def test_the_loop_lets_an_entry_with_its_own_timeout_run_past_tool_timeout(parent: AgentServer) -> None:
    assert loop_result(parent, "ask_patient").strip() == "Tool results: ask_patient=s1 s2 s3"


def test_the_loop_cuts_an_entry_without_a_timeout_at_tool_timeout(parent: AgentServer) -> None:
    content = loop_result(parent, "ask_hasty")
    assert "ask_hasty=" in content and "did not answer within 1 s" in content, content


def test_the_tools_endpoint_follows_the_same_rule(parent: AgentServer) -> None:
    body = {"arguments": {"task": SLOW_TASK_AGAIN}}
    patient = httpx.post(parent.url + "/atoll/tools/ask_patient", timeout=60, json=body)
    assert patient.status_code == 200, patient.text
    assert patient.json()["result"].strip() == "s1 s2 s3" and patient.json()["is_error"] is False
    hasty = httpx.post(parent.url + "/atoll/tools/ask_hasty", timeout=60, json=body)
    assert hasty.status_code == 200, hasty.text
    assert hasty.json()["is_error"] is True and "did not answer within 1 s" in hasty.json()["result"]
