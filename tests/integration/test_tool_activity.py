"""Tool activity visible in unmodified clients: Open WebUI's ``<details type="tool_calls">`` blocks,
plain text, or nothing, chosen per agent and per request; structured on both dialects; and echoed
blocks stripped from incoming history. A real agent server with a real MCP server."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.support.servers import AgentServer, run_agent_server, scripted_agent_toml, write_agent

pytestmark = pytest.mark.mcp

REPO = Path(__file__).resolve().parents[2]
EVERYTHING = REPO / ".mcp-servers/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
#: What Open WebUI 0.12.4's backend sends to an Ollama server (aiohttp's default User-Agent).
OPEN_WEBUI_AGENT = "Python/3.11 aiohttp/3.14.5"
SUM = '/tool get-sum {"a": 2, "b": 40}'

if not EVERYTHING.exists():
    pytest.skip("MCP servers not installed: run `make mcp-servers` (make test does)", allow_module_level=True)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    folder = tmp_path_factory.mktemp("activity-agent")
    extra = f'[mcp_servers.everything]\ncommand = "node"\nargs = ["{EVERYTHING}", "stdio"]\n'
    with run_agent_server(write_agent(folder, scripted_agent_toml("shown", extra=extra)), cwd=folder,
                          timeout=40) as server:
        yield server


def chat(server: AgentServer, text: str, *, headers: dict[str, str] | None = None,
         options: dict[str, Any] | None = None, history: list[dict[str, Any]] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"model": "shown", "stream": False,
                            "messages": [*(history or []), {"role": "user", "content": text}]}
    if options:
        body["options"] = options
    return httpx.post(server.url + "/api/chat", json=body, headers=headers or {}, timeout=30)


def blocks(content: str) -> list[dict[str, str]]:
    """Parsed the way Open WebUI's markdown extension does: ``<details…>\\n`` + summary, attributes
    by ``(\\w+)="(.*?)"``, values HTML-unescaped."""
    found = re.findall(r'<details( type="tool_calls"[^>]*)>\n<summary>(.*?)</summary>\n</details>', content)
    return [{**{k: html.unescape(v) for k, v in re.findall(r'(\w+)="(.*?)"', attrs)}, "summary": summary}
            for attrs, summary in found]


def test_open_webui_gets_one_collapsed_block_per_call_before_the_answer(agent: AgentServer) -> None:
    reply = chat(agent, SUM, headers={"User-Agent": OPEN_WEBUI_AGENT})
    assert reply.status_code == 200, reply.text
    content = reply.json()["message"]["content"]
    [block] = blocks(content)
    assert block["type"] == "tool_calls" and block["done"] == "true" and block["name"] == "get-sum"
    assert json.loads(block["arguments"]) == {"a": 2, "b": 40}
    assert "42" in json.loads(block["result"]) and block["summary"] == "Tool Executed"
    assert block["id"].startswith("call_")
    after = content.partition("</details>")[2]
    assert after.strip().startswith("Tool results: get-sum=")  # the answer comes after the block


def test_ollama_python_and_openai_sdk_get_clean_content_and_structured_activity(agent: AgentServer) -> None:
    reply = ollama.Client(host=agent.url).chat(model="shown", messages=[{"role": "user", "content": SUM}])
    assert "<details" not in reply.message.content and reply.message.content.startswith("Tool results:")

    client = openai.OpenAI(base_url=agent.url + "/v1", api_key="unused")
    stream = client.chat.completions.create(model="shown", stream=True,
                                            messages=[{"role": "user", "content": SUM}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "<details" not in text and text.startswith("Tool results: get-sum=")
    activity = [c.model_extra["atoll"] for c in chunks if c.model_extra and "atoll" in c.model_extra]
    assert [a["event"] for a in activity] == ["tool_call", "tool_result"]
    assert activity[0]["name"] == "get-sum" and activity[0]["arguments"] == {"a": 2, "b": 40}


def test_the_request_chooses_the_mode(agent: AgentServer) -> None:
    as_text = chat(agent, SUM, headers={"X-Atoll-Tool-Activity": "text"}).json()["message"]["content"]
    assert as_text.startswith('\n> 🔧 get-sum {"a": 2, "b": 40} → ') and "<details" not in as_text
    by_option = chat(agent, SUM, options={"tool_activity": "details"}).json()["message"]["content"]
    assert len(blocks(by_option)) == 1
    off = chat(agent, SUM, headers={"User-Agent": OPEN_WEBUI_AGENT, "X-Atoll-Tool-Activity": "off"})
    assert "<details" not in off.json()["message"]["content"]
    bad = chat(agent, SUM, headers={"X-Atoll-Tool-Activity": "loud"})
    assert bad.status_code == 400 and "X-Atoll-Tool-Activity" in bad.json()["error"]


def test_echoed_blocks_never_reach_the_model(agent: AgentServer) -> None:
    first = chat(agent, SUM, headers={"User-Agent": OPEN_WEBUI_AGENT}).json()["message"]["content"]
    assert blocks(first)
    history = [{"role": "user", "content": SUM}, {"role": "assistant", "content": first}]
    seen = chat(agent, "/history", history=history, headers={"User-Agent": OPEN_WEBUI_AGENT})
    content = seen.json()["message"]["content"]
    assert "details" not in content and "assistant:Tool results: get-sum=" in content


def test_a_child_agents_work_shows_as_a_tool_call_of_the_parent(tmp_path: Path) -> None:
    child_dir, parent_dir = tmp_path / "child", tmp_path / "parent"
    with run_agent_server(write_agent(child_dir, scripted_agent_toml("child")), cwd=child_dir) as child:
        extra = f'[sub_agents.child]\nurl = "{child.url}"\ndescription = "echoes"\n'
        with run_agent_server(write_agent(parent_dir, scripted_agent_toml("parent", extra=extra)),
                              cwd=parent_dir) as parent:
            reply = httpx.post(parent.url + "/api/chat", timeout=30, headers={"X-Atoll-Tool-Activity": "details"},
                               json={"model": "parent", "stream": False, "messages": [
                                   {"role": "user", "content": '/tool ask_child {"task": "hello"}'}]})
    [block] = blocks(reply.json()["message"]["content"])
    assert block["name"] == "ask_child" and json.loads(block["arguments"]) == {"task": "hello"}
    assert json.loads(block["result"]) == "You said: hello"


def test_a_child_set_to_show_blocks_answers_its_parent_without_them(tmp_path: Path) -> None:
    """The parent asks its child for no activity text: the child's blocks would otherwise land in the
    parent's tool result, and from there in the parent's LLM context."""
    child_dir, parent_dir = tmp_path / "child", tmp_path / "parent"
    child_toml = scripted_agent_toml("child", extra=f'[mcp_servers.everything]\ncommand = "node"\n'
                                                    f'args = ["{EVERYTHING}", "stdio"]\n')
    child_toml = child_toml.replace('name = "child"', 'name = "child"\nshow_tool_activity = "details"', 1)
    with run_agent_server(write_agent(child_dir, child_toml), cwd=child_dir, timeout=40) as child:
        assert blocks(chat_with(child, "child", SUM)), "the child itself shows blocks"
        extra = f'[sub_agents.child]\nurl = "{child.url}"\n'
        with run_agent_server(write_agent(parent_dir, scripted_agent_toml("parent", extra=extra)),
                              cwd=parent_dir) as parent:
            content = chat_with(parent, "parent", f"/tool ask_child {json.dumps({'task': SUM})}",
                                headers={"X-Atoll-Tool-Activity": "details"})
    [block] = blocks(content)
    assert block["name"] == "ask_child"
    from_child = json.loads(block["result"])
    assert "<details" not in from_child and from_child.startswith("Tool results: get-sum="), from_child


def chat_with(server: AgentServer, model: str, text: str, *, headers: dict[str, str] | None = None) -> str:
    reply = httpx.post(server.url + "/api/chat", timeout=30, headers=headers or {}, json={
        "model": model, "stream": False, "messages": [{"role": "user", "content": text}]})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["message"]["content"])
