"""MCP and A2A through the front door: its ``/mcp`` (one tool per running agent, with the caller's
own credentials: an agent that refuses them is not listed; progress relayed) and each agent's A2A
card and calls under ``/agent/{name}/``. Real agent processes, the official clients."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from a2a.client import A2AClientError, ClientConfig, create_client
from a2a.helpers import get_artifact_text
from a2a.types import Message, Part, Role, SendMessageRequest, TaskState
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.deploy.conftest import running_server, write_agent

pytestmark = [pytest.mark.anyio, pytest.mark.protocols, pytest.mark.timeout(120)]

KEY = "beta-key"


@asynccontextmanager
async def _client(url: str, key: str | None = None, headers: dict[str, str] | None = None,
                  ) -> AsyncIterator[Client]:
    """An MCP client on an HTTP client of its own, both closed on exit (the SDK leaves a client it
    is given open, and a pooled connection collected later in another test's loop breaks that test)."""
    headers = (headers or {}) | ({"Authorization": f"Bearer {key}"} if key else {})
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60), trust_env=False) as http, \
            Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
        yield client


async def test_one_tool_per_agent_with_the_callers_credentials(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "alpha")
    write_agent(agents, "beta", extra=f'api_keys = ["{KEY}"]\n')
    progress: list[Any] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    async with running_server(agents) as run:
        async with _client(run.url) as anonymous:
            # Listed with the deployment server's own key for each agent; calling needs the agent's.
            assert sorted(t.name for t in (await anonymous.list_tools()).tools) == ["alpha", "beta"]
            refused = await anonymous.call_tool("beta", {"message": "hi"})
        async with _client(run.url, KEY) as client:
            assert sorted(t.name for t in (await client.list_tools()).tools) == ["alpha", "beta"]
            answer = await client.call_tool("beta", {"message": "/count 3"}, progress_callback=on_progress)
            missing = await client.call_tool("gamma", {"message": "hi"})
            # the caller's delegation depth reaches the agent, as _meta and as a header
            too_deep = [await client.call_tool("alpha", {"message": "hi"}, meta={"atoll/delegation-depth": "99"})]
        async with _client(run.url, headers={"X-Atoll-Delegation-Depth": "99"}) as deep:
            too_deep.append(await deep.call_tool("alpha", {"message": "hi"}))
    assert refused.is_error
    assert not answer.is_error and answer.content[0].text == "w1 w2 w3"  # type: ignore[union-attr]
    assert answer.structured_content["session_id"]
    assert progress == ["w1", " w2", " w3"]
    assert missing.is_error and "no running agent offers the tool 'gamma'" in missing.content[0].text  # type: ignore[union-attr]
    for refused in too_deep:
        assert refused.is_error and "delegation too deep" in refused.content[0].text  # type: ignore[union-attr]


async def test_a2a_through_the_per_agent_prefix(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "beta", extra=f'api_keys = ["{KEY}"]\n')
    message = Message(role=Role.ROLE_USER, parts=[Part(text="hi")], message_id=uuid.uuid4().hex)
    async with running_server(agents) as run:
        base = f"{run.url}/agent/beta"
        card = (await run.client.get("/agent/beta/.well-known/agent-card.json")).json()
        assert card["supportedInterfaces"][0]["url"] == f"{base}/a2a"
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as http:
            client = await create_client(base, ClientConfig(streaming=False, httpx_client=http))
            [response] = [r async for r in client.send_message(SendMessageRequest(message=message))]
            await client.close()
        async with httpx.AsyncClient(timeout=60) as anonymous:
            client = await create_client(base, ClientConfig(streaming=False, httpx_client=anonymous))
            with pytest.raises(A2AClientError, match="401"):
                [r async for r in client.send_message(SendMessageRequest(message=message))]
            await client.close()
    assert response.task.status.state == TaskState.TASK_STATE_COMPLETED
    assert "".join(get_artifact_text(a, delimiter="") for a in response.task.artifacts) == "You said: hi"
