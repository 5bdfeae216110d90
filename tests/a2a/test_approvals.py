"""An approval over A2A: a tool call that needs a person's approval leaves the task
``input-required`` with the question; "yes" sent on the same task runs the real MCP tool and
completes it (official ``a2a-sdk`` client, real agent process, real MCP server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.helpers import get_artifact_text
from a2a.types import Message, Part, Role, SendMessageRequest, Task, TaskState

from tests.support.servers import AgentServer, run_agent_server, scripted_agent_toml, write_agent

pytestmark = [pytest.mark.protocols, pytest.mark.mcp, pytest.mark.timeout(120)]

EVERYTHING = Path(__file__).resolve().parents[2] / (
    ".mcp-servers/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
TOOLS = f'[mcp_servers.everything]\ncommand = "node"\nargs = ["{EVERYTHING}", "stdio"]\nrequire_approval = ["echo"]\n'


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    folder = tmp_path_factory.mktemp("a2a-approvals")
    with run_agent_server(write_agent(folder, scripted_agent_toml("gatekeeper", extra=TOOLS)), cwd=folder,
                          timeout=60) as server:
        yield server


async def _send(agent: AgentServer, text: str, *, context_id: str = "", task_id: str = "") -> Task:
    message = Message(role=Role.ROLE_USER, parts=[Part(text=text)], message_id=uuid.uuid4().hex,
                      context_id=context_id, task_id=task_id)
    async with httpx.AsyncClient(timeout=60) as http:
        client = await create_client(agent.url, ClientConfig(streaming=False, httpx_client=http))
        try:
            [response] = [r async for r in client.send_message(SendMessageRequest(message=message))]
        finally:
            await client.close()
    return response.task


def _answer(task: Task) -> str:
    return "".join(get_artifact_text(a, delimiter="") for a in task.artifacts)


async def test_an_approval_is_input_required_and_yes_runs_the_tool(agent: AgentServer) -> None:
    asked = await _send(agent, '/tool echo {"message": "hi"}')
    assert asked.status.state == TaskState.TASK_STATE_INPUT_REQUIRED, asked
    question = "".join(part.text for part in asked.status.message.parts)
    assert "echo" in question and question in _answer(asked)

    done = await _send(agent, "yes", context_id=asked.context_id, task_id=asked.id)
    assert done.id == asked.id
    assert done.status.state == TaskState.TASK_STATE_COMPLETED, done
    assert "Echo: hi" in _answer(done)
