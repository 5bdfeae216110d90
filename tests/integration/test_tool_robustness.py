"""Small-model tool calling through a real agent server with a real MCP server (the official
``everything`` server): calls written as text, invented names, invalid arguments. The scripted
LLM plays the model (``/say`` makes it write exactly what a small model wrote)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.support.servers import AgentServer, run_agent_server, scripted_agent_toml, write_agent

pytestmark = pytest.mark.mcp

REPO = Path(__file__).resolve().parents[2]
EVERYTHING = REPO / ".mcp-servers/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"

if not EVERYTHING.exists():
    pytest.skip("MCP servers not installed: run `make mcp-servers` (make test does)", allow_module_level=True)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    folder = tmp_path_factory.mktemp("robust-agent")
    extra = f'[mcp_servers.everything]\ncommand = "node"\nargs = ["{EVERYTHING}", "stdio"]\n'
    with run_agent_server(write_agent(folder, scripted_agent_toml("robust", extra=extra)), cwd=folder,
                          timeout=40) as server:
        yield server


def ask(server: AgentServer, text: str) -> ollama.ChatResponse:
    return ollama.Client(host=server.url).chat(model="robust", messages=[{"role": "user", "content": text}])


def test_a_call_written_as_text_runs_with_repaired_arguments(agent: AgentServer) -> None:
    said = "/say Let me add them. <tool_call>{'name': 'get-sum', 'arguments': {'a': 2, 'b': '40',}}</tool_call>"
    reply = ask(agent, said)
    assert "<tool_call>" not in reply.message.content and not reply.message.tool_calls
    assert reply.message.content.startswith("Let me add them. Tool results: get-sum=")
    assert "42" in reply.message.content  # the real server added 2 and 40


def test_streamed_text_calls_never_show_their_markup(agent: AgentServer) -> None:
    said = '/say [TOOL_CALLS]get-sum[ARGS]{"a": 1, "b": 2}'
    with httpx.stream("POST", agent.url + "/api/chat", timeout=30, json={
            "model": "robust", "messages": [{"role": "user", "content": said}]}) as response:
        chunks = [json.loads(line) for line in response.iter_lines()]
    content = "".join(c["message"]["content"] for c in chunks)
    assert "TOOL_CALLS" not in content and content.startswith("Tool results: get-sum=")
    assert [c["atoll"]["event"] for c in chunks if "atoll" in c] == ["tool_call", "tool_result"]


def test_an_invented_name_is_answered_with_the_real_names_not_returned_to_the_client(agent: AgentServer) -> None:
    reply = ask(agent, '/tool get_summ {"a": 1, "b": 2}')
    assert not reply.message.tool_calls
    assert "there is no tool named 'get_summ'. Did you mean 'get-sum'" in reply.message.content
    client = openai.OpenAI(base_url=agent.url + "/v1", api_key="unused")
    completion = client.chat.completions.create(model="robust", messages=[
        {"role": "user", "content": '/tool launch_rocket {"target": "moon"}'}])
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    assert "no tool named 'launch_rocket'" in (choice.message.content or "")


def test_invalid_arguments_come_back_to_the_model_as_a_precise_error(agent: AgentServer) -> None:
    reply = ask(agent, '/tool get-sum {"a": "forty"}')
    content = reply.message.content
    assert content.startswith("Tool results: get-sum=Error: invalid arguments for 'get-sum':")
    assert "'b' is required but missing" in content or "field 'a'" in content
    assert "Nothing was run" in content
