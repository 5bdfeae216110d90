"""docs/protocols.md: one agent reached five ways (Ollama, OpenAI, MCP over HTTP, MCP over stdio,
A2A) with one API key, all continuing the same session. Real processes, official clients."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import httpx
import httpx2
import ollama
import openai
import pytest
from a2a.client import ClientConfig, create_client
from a2a.helpers import get_artifact_text
from a2a.types import Message, Part, Role, SendMessageRequest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.support.servers import SCRIPTED, run_agent_server, server_env, write_agent

pytestmark = [pytest.mark.protocols, pytest.mark.timeout(180)]

KEY = "one-key"
AGENT = f"""
[agent]
name = "research"
description = "finds things out"

[llm]
provider = "{SCRIPTED}"

[server]
api_keys = ["{KEY}"]
"""


async def test_one_agent_five_ways_one_session(tmp_path: Path) -> None:
    agent_file = write_agent(tmp_path / "research", AGENT)
    session = uuid.uuid4().hex
    auth = {"Authorization": f"Bearer {KEY}"}
    home = {"HOME": str(tmp_path), "ATOLL_HOME": str(tmp_path / "atoll-home")}  # one session store for both
    with run_agent_server(agent_file, cwd=tmp_path, env=server_env(**home)) as server:
        # 1. Ollama
        native = ollama.AsyncClient(host=server.url, headers={**auth, "X-Session-ID": session})
        await native.chat(model="research", messages=[{"role": "user", "content": "one"}])
        # 2. OpenAI
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=KEY,
                                      default_headers={"X-Session-ID": session}) as oai:
            await oai.chat.completions.create(model="research", messages=[{"role": "user", "content": "two"}])
        # 3. MCP over streamable HTTP
        async with httpx2.AsyncClient(headers=auth, timeout=60) as http, \
                Client(streamable_http_client(f"{server.url}/mcp", http_client=http)) as mcp_http:
            await mcp_http.call_tool("research", {"message": "three", "session_id": session})
        # 4. MCP over stdio: another process on the same agent file and session store, acting as the key
        stdio = StdioServerParameters(
            command=sys.executable, args=["-m", "atoll", "--server", "--mcp-stdio", "--agent", str(agent_file)],
            env=server_env(**home, ATOLL_API_KEY=KEY))
        async with Client(stdio, mode="legacy") as mcp_stdio:
            await mcp_stdio.call_tool("research", {"message": "four", "session_id": session})
        # 5. A2A: contextId is the session
        async with httpx.AsyncClient(headers=auth, timeout=60) as a2a_http:
            a2a = await create_client(server.url, ClientConfig(streaming=False, httpx_client=a2a_http))
            request = SendMessageRequest(message=Message(role=Role.ROLE_USER, parts=[Part(text="/history")],
                                                         message_id=uuid.uuid4().hex, context_id=session))
            [response] = [r async for r in a2a.send_message(request)]
            await a2a.close()
    history = "".join(get_artifact_text(a, delimiter="") for a in response.task.artifacts)
    turns = [part.split(":", 1)[1] for part in history.split(" | ") if part.startswith("user:")]
    assert turns == ["one", "two", "three", "four", "/history"]
