"""A real agent server process reached over A2A 1.0 with the official ``a2a-sdk`` client: the
card, send, stream, get, cancel, the context kept across messages (and shared with the Ollama API),
and API keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from a2a.client import A2AClientError, ClientConfig, create_client
from a2a.helpers import get_artifact_text
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)

from tests.support.servers import SCRIPTED, AgentServer, run_agent_server, write_agent
from tests.support.waiting import wait_until_async

pytestmark = [pytest.mark.protocols, pytest.mark.timeout(120)]

KEY = "a2a-key"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    folder = tmp_path_factory.mktemp("a2a-agent")
    toml = f"""
[agent]
name = "teller"
description = "scripted test agent"
capabilities = ["echo", "count"]

[llm]
provider = "{SCRIPTED}"

[server]
api_keys = ["{KEY}"]
session_store = "memory"
"""
    with run_agent_server(write_agent(folder, toml), cwd=folder) as server:
        yield server


def _message(text: str, context_id: str = "") -> SendMessageRequest:
    return SendMessageRequest(message=Message(role=Role.ROLE_USER, parts=[Part(text=text)],
                                              message_id=uuid.uuid4().hex, context_id=context_id))


async def _client(agent: AgentServer, *, streaming: bool, key: str | None = KEY) -> AsyncIterator[object]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        client = await create_client(agent.url, ClientConfig(streaming=streaming, httpx_client=http))
        try:
            yield client
        finally:
            await client.close()


def _answer(task: Task) -> str:
    return "".join(get_artifact_text(a, delimiter="") for a in task.artifacts)


async def _send(agent: AgentServer, text: str, context_id: str = "") -> Task:
    async for client in _client(agent, streaming=False):
        responses = [r async for r in client.send_message(_message(text, context_id))]  # type: ignore[attr-defined]
    [response] = responses
    return response.task


def test_the_card_is_public_and_names_the_interface_and_the_key_scheme(agent: AgentServer) -> None:
    card = httpx.get(f"{agent.url}/.well-known/agent-card.json").json()
    assert card["name"] == "teller" and card["capabilities"]["streaming"] is True
    [interface] = card["supportedInterfaces"]
    assert interface == {"url": f"{agent.url}/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
    assert [s["name"] for s in card["skills"]] == ["echo", "count"]
    assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"] == "bearer"
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "fleet.example",
                 "X-Forwarded-Prefix": "/agent/teller/"}
    behind_proxy = httpx.get(f"{agent.url}/.well-known/agent-card.json", headers=forwarded).json()
    assert behind_proxy["supportedInterfaces"][0]["url"] == "https://fleet.example/agent/teller/a2a"


async def test_send_keeps_the_context_as_one_session(agent: AgentServer) -> None:
    first = await _send(agent, "hello")
    assert first.status.state == TaskState.TASK_STATE_COMPLETED
    assert _answer(first) == "You said: hello"
    second = await _send(agent, "/history", first.context_id)
    assert "user:hello | assistant:You said: hello | user:/history" in _answer(second)
    async with httpx.AsyncClient() as http:  # the same session over the Ollama API, with the same key
        reply = await http.post(f"{agent.url}/api/chat", headers={"Authorization": f"Bearer {KEY}",
                                                                 "X-Session-ID": first.context_id},
                                json={"model": "teller", "stream": False,
                                      "messages": [{"role": "user", "content": "/history"}]})
    assert "user:hello" in reply.json()["message"]["content"]
    async for client in _client(agent, streaming=False):
        fetched = await client.get_task(GetTaskRequest(id=first.id))  # type: ignore[attr-defined]
    assert fetched.status.state == TaskState.TASK_STATE_COMPLETED and _answer(fetched) == "You said: hello"


async def test_stream_sends_the_answer_as_it_is_written(agent: AgentServer) -> None:
    events: list[StreamResponse] = []
    async for client in _client(agent, streaming=True):
        events = [e async for e in client.send_message(_message("/count 4"))]  # type: ignore[attr-defined]
    chunks = [get_artifact_text(e.artifact_update.artifact, delimiter="") for e in events
              if e.HasField("artifact_update")]
    assert "".join(chunks) == "w1 w2 w3 w4" and len([c for c in chunks if c]) == 4
    states = [e.status_update.status.state for e in events if e.HasField("status_update")]
    assert states[0] == TaskState.TASK_STATE_WORKING and states[-1] == TaskState.TASK_STATE_COMPLETED


async def test_cancel_stops_the_generation(agent: AgentServer) -> None:
    async for client in _client(agent, streaming=True):
        stream = client.send_message(_message("/slow 400 0.05"))  # type: ignore[attr-defined]
        task_id = ""
        async for event in stream:
            if event.HasField("artifact_update"):
                task_id = event.artifact_update.task_id
                break
        canceled = await client.cancel_task(CancelTaskRequest(id=task_id))  # type: ignore[attr-defined]
        await stream.aclose()
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED

    def idle() -> bool:
        status = httpx.get(f"{agent.url}/atoll/status", headers={"Authorization": f"Bearer {KEY}"}).json()
        return bool(status["active_generations"] == 0)

    await wait_until_async(idle, timeout=5, what="the cancelled generation (20 s long) to stop")


async def test_without_the_key_a2a_is_refused(agent: AgentServer) -> None:
    with pytest.raises(A2AClientError, match="401"):
        async for client in _client(agent, streaming=False, key=None):
            [r async for r in client.send_message(_message("hi"))]  # type: ignore[attr-defined]
