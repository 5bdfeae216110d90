"""Approvals through a real agent server and a real MCP server: the question, the decision typed in
the chat (with and without server-side sessions), at most one run per id, refusals, the API for
dashboards, per-key binding, other conversations unaffected, transcript and metrics."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import AgentServer, run_agent_server, scripted_agent_toml, write_agent

pytestmark = pytest.mark.mcp

REPO = Path(__file__).resolve().parents[2]
EVERYTHING = REPO / ".mcp-servers/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
SUM = '/tool get-sum {"a": 2, "b": 40}'
A, B = {"Authorization": "Bearer key-a"}, {"Authorization": "Bearer key-b"}

if not EVERYTHING.exists():
    pytest.skip("MCP servers not installed: run `make mcp-servers` (make test does)", allow_module_level=True)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    folder = tmp_path_factory.mktemp("approval-agent")
    extra = (f'[mcp_servers.everything]\ncommand = "node"\nargs = ["{EVERYTHING}", "stdio"]\n'
             'require_approval = ["get-sum"]\n\n[server]\napi_keys = ["key-a", "key-b"]\n')
    with run_agent_server(write_agent(folder, scripted_agent_toml("careful", extra=extra)), cwd=folder,
                          timeout=40) as server:
        yield server


def chat(server: AgentServer, messages: list[dict[str, Any]], headers: dict[str, str] = A,
         ) -> tuple[str, list[dict[str, Any]]]:
    """Streamed /api/chat: the reply text and the atoll activity items."""
    with httpx.stream("POST", server.url + "/api/chat", headers=headers, timeout=30,
                      json={"model": "careful", "messages": messages}) as response:
        assert response.status_code == 200, response.read()
        chunks = [json.loads(line) for line in response.iter_lines()]
    text = "".join(c["message"]["content"] for c in chunks)
    return text, [c["atoll"] for c in chunks if "atoll" in c]


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def ask_for_sum(server: AgentServer, headers: dict[str, str] = A) -> tuple[list[dict[str, Any]], str]:
    question, activity = chat(server, [user(SUM)], headers)
    assert [a["event"] for a in activity] == ["approval_required"]  # nothing ran
    approval_id = re.search(r"\(approval id: ([a-z0-9]{6})\)", question)
    assert approval_id and "get-sum" in question and '{"a": 2, "b": 40}' in question and "yes" in question
    return [user(SUM), {"role": "assistant", "content": question}], approval_id.group(1)


def test_yes_runs_the_call_once_and_the_loop_goes_on(agent: AgentServer) -> None:
    history, _ = ask_for_sum(agent)
    answer, activity = chat(agent, [*history, user("Yes!")])
    assert answer.startswith("Tool results: get-sum=") and "42" in answer
    assert [(a["event"], a.get("source")) for a in activity] == [("tool_call", "everything"), ("tool_result", None)]
    # Open WebUI's "regenerate" sends the same "yes" again: the recorded result, no second run
    again, activity = chat(agent, [*history, user("yes")])
    assert again == answer and activity[0]["source"] == "atoll"


def test_anything_else_refuses_and_the_model_is_told(agent: AgentServer) -> None:
    history, _ = ask_for_sum(agent)
    answer, activity = chat(agent, [*history, user("no, not now")])
    assert answer.startswith("Tool results: get-sum=The user declined this call")
    assert activity[-1]["is_error"] is True


def test_a_pause_affects_only_its_own_conversation(agent: AgentServer) -> None:
    ask_for_sum(agent)
    answer, activity = chat(agent, [user('/tool echo {"message": "meanwhile"}')])
    assert answer == "Tool results: echo=Echo: meanwhile"
    assert [a["event"] for a in activity] == ["tool_call", "tool_result"]


def test_the_api_lists_and_decides_per_key(agent: AgentServer) -> None:
    history, approval_id = ask_for_sum(agent)
    listed = httpx.get(agent.url + "/atoll/approvals", headers=A).json()["approvals"]
    mine = next(a for a in listed if a["id"] == approval_id)
    assert mine["tool"] == "get-sum" and mine["arguments"] == {"a": 2, "b": 40} and mine["state"] == "pending"
    others = httpx.get(agent.url + "/atoll/approvals", headers=B).json()["approvals"]
    assert approval_id not in [a["id"] for a in others]
    stranger = httpx.post(f"{agent.url}/atoll/approvals/{approval_id}", headers=B, json={"approve": True})
    assert stranger.status_code == 404
    bad = httpx.post(f"{agent.url}/atoll/approvals/{approval_id}", headers=A, json={"approve": "maybe"})
    assert bad.status_code == 400
    assert httpx.get(agent.url + "/atoll/approvals").status_code == 401  # same auth as every route
    decided = httpx.post(f"{agent.url}/atoll/approvals/{approval_id}", headers=A,
                         json={"approve": False, "reason": "not on Fridays"})
    assert decided.status_code == 200 and decided.json()["state"] == "denied"
    assert decided.json()["decided_by"] == "api"
    answer, _ = chat(agent, [*history, user("yes")])  # the API decided first
    assert "declined" in answer and "not on Fridays" in answer
    # another key cannot use the id in its own chat either: it is just a message there
    answer, activity = chat(agent, [*history, user("yes")], B)
    assert "approval_required" not in [a["event"] for a in activity] and "42" not in answer


def test_a_direct_tool_call_is_the_operator_acting_and_asks_no_one(agent: AgentServer) -> None:
    """``POST /atoll/tools/{name}`` runs a gated tool at once: the caller with the agent's key is the
    operator, so no approval is asked, listed or counted."""
    def pending() -> tuple[set[str], str | None]:
        ids = {a["id"] for a in httpx.get(agent.url + "/atoll/approvals", headers=A).json()["approvals"]}
        metrics = httpx.get(agent.url + "/metrics", headers=A).text
        found = re.search(r'atoll_approvals\{state="requested"\} (\d+)', metrics)
        return ids, found.group(1) if found else None

    before = pending()
    direct = httpx.post(agent.url + "/atoll/tools/get-sum", headers=A, timeout=30,
                        json={"arguments": {"a": 2, "b": 40}})
    assert direct.status_code == 200, direct.text
    assert "42" in direct.json()["result"] and direct.json()["is_error"] is False
    assert pending() == before
    assert httpx.post(agent.url + "/atoll/tools/get-sum", json={"arguments": {"a": 1, "b": 1}}).status_code == 401


def test_with_a_session_the_decision_is_recorded_in_the_transcript(agent: AgentServer) -> None:
    session = {**A, "X-Session-ID": uuid.uuid4().hex}
    question, _ = chat(agent, [user(SUM)], session)
    assert "approval id" in question
    answer, _ = chat(agent, [user("ok")], session)
    assert "42" in answer
    stored = httpx.get(f"{agent.url}/api/sessions/{session['X-Session-ID']}", headers=A).json()["messages"]
    asked = [m["approval"] for m in stored if m.get("approval") and m["role"] == "assistant"]
    decided = [m["approval"] for m in stored if m.get("approval") and m["role"] == "tool"]
    assert asked[0]["tool"] == "get-sum" and asked[0]["state"] == "pending"
    assert decided[0]["decision"] == "approved" and decided[0]["by"] == "chat"


def test_approvals_are_counted_in_metrics(agent: AgentServer) -> None:
    history, _ = ask_for_sum(agent)
    chat(agent, [*history, user("approve")])
    metrics = httpx.get(agent.url + "/metrics", headers=A).text
    requested = re.search(r'atoll_approvals\{state="requested"\} (\d+)', metrics)
    approved = re.search(r'atoll_approvals\{state="approved"\} (\d+)', metrics)
    assert requested and int(requested.group(1)) >= 1 and approved and int(approved.group(1)) >= 1
