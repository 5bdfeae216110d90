"""Child agents through real processes: sessions a parent gives its children, and bounded delegation
loops. Agent servers with the scripted LLM; a child is another agent server process (or the agent
itself, for the loop)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import AgentServer, free_port, run_agent_server, scripted_agent_toml, write_agent

pytestmark = pytest.mark.timeout(120)

KEYS = ("key-one", "key-two")


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    root = tmp_path_factory.mktemp("delegation")
    child_dir, parent_dir = root / "child", root / "parent"
    child_toml = scripted_agent_toml("kid", extra='[server]\nsession_store = "memory"\n')
    with run_agent_server(write_agent(child_dir, child_toml), cwd=child_dir) as child:
        extra = (f'[sub_agents.kid]\nurl = "{child.url}"\n\n'
                 f'[server]\nsession_store = "memory"\napi_keys = {json.dumps(list(KEYS))}\n')
        with run_agent_server(write_agent(parent_dir, scripted_agent_toml("parent", extra=extra)),
                              cwd=parent_dir) as server:
            yield server


def delegate(parent: AgentServer, task: str, *, key: str = KEYS[0], session: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {key}"} | ({"X-Session-ID": session} if session else {})
    reply = httpx.post(parent.url + "/api/chat", timeout=60, headers=headers, json={
        "model": "parent", "stream": False,
        "messages": [{"role": "user", "content": f"/tool ask_kid {json.dumps({'task': task})}"}]})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["message"]["content"])


def test_turns_without_a_session_never_share_a_child_session(parent: AgentServer) -> None:
    delegate(parent, "my secret plan", key=KEYS[0])
    seen = delegate(parent, "/history", key=KEYS[1])
    assert "secret" not in seen and seen.count("user:") == 1, seen
    again = delegate(parent, "/history", key=KEYS[0])
    assert "secret" not in again and again.count("user:") == 1, again


def test_a_parent_session_keeps_one_child_session(parent: AgentServer) -> None:
    delegate(parent, "remember the plan", session="conv-1")
    seen = delegate(parent, "/history", session="conv-1")
    assert "user:remember the plan" in seen, seen
    other = delegate(parent, "/history", session="conv-2")
    assert "remember" not in other and other.count("user:") == 1, other


def nested(depth: int) -> str:
    """A task that asks the agent to delegate to itself, ``depth`` times over."""
    task = "bottom"
    for _ in range(depth):
        task = f"/tool ask_self {json.dumps({'task': task})}"
    return task


@pytest.fixture(scope="module")
def looping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    """An agent whose child is itself (A -> A -> ...), allowing 2 levels."""
    folder: Path = tmp_path_factory.mktemp("loop")
    port = free_port()
    extra = f'[sub_agents.self]\nurl = "http://127.0.0.1:{port}"\n\n[server]\nmax_delegation_depth = 2\n'
    with run_agent_server(write_agent(folder, scripted_agent_toml("loop", extra=extra)), cwd=folder,
                          port=port) as server:
        yield server


def test_a_delegation_loop_stops_at_max_delegation_depth_with_a_result_the_llm_sees(looping: AgentServer) -> None:
    reply = httpx.post(looping.url + "/api/chat", timeout=90, json={
        "model": "loop", "stream": False, "messages": [{"role": "user", "content": nested(5)}]})
    assert reply.status_code == 200, reply.text
    content = reply.json()["message"]["content"]
    # depth 0 -> 1 -> 2 ran; the agent at depth 2 was not allowed a third level, and its LLM was told so
    assert content.count("Tool results: ask_self=") == 3, content
    assert "not delegated to agent 'self'" in content and "max_delegation_depth = 2" in content, content
    assert "bottom" not in content


def test_a_request_deeper_than_the_limit_is_refused(looping: AgentServer) -> None:
    body = {"model": "loop", "stream": False, "messages": [{"role": "user", "content": "hi"}]}
    ok = httpx.post(looping.url + "/api/chat", json=body, headers={"X-Atoll-Delegation-Depth": "2"}, timeout=30)
    assert ok.status_code == 200, ok.text
    deep = httpx.post(looping.url + "/api/chat", json=body, headers={"X-Atoll-Delegation-Depth": "3"}, timeout=30)
    assert deep.status_code == 508 and "max_delegation_depth" in deep.json()["error"], deep.text
    bad = httpx.post(looping.url + "/v1/chat/completions", timeout=30, headers={"X-Atoll-Delegation-Depth": "x"},
                     json={"model": "loop", "messages": [{"role": "user", "content": "hi"}]})
    assert bad.status_code == 400 and "X-Atoll-Delegation-Depth" in bad.text, bad.text
