"""SubAgentToolbox and CompositeToolbox against real atoll agent servers (child processes on
127.0.0.1, the scripted LLM behind them) that require an API key."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest

from atoll.config import McpServerConfig, SubAgentConfig
from atoll.delegation import bind_parent_session
from atoll.mcp_client import CompositeToolbox, McpToolbox
from atoll.messages import ToolResult, ToolSpec
from atoll.subagents import SubAgentToolbox
from atoll.tools import Toolbox
from tests.support.servers import AgentServer, free_port, run_agent_server, scripted_agent_toml, write_agent
from tests.support.waiting import wait_until, wait_until_async

pytestmark = pytest.mark.timeout(120)

TOKEN = "s3cret"
CHILD = "kid"  # the child's agent name; /api/tags lists it as the model "kid:latest"
CHILD_TOML = scripted_agent_toml(CHILD, extra=f'[server]\napi_keys = ["{TOKEN}"]\nsession_store = "memory"\n')
ACCESS_CHAT = re.compile(r"POST /api/chat (\d{3}) \S+ route=\S+ model=\S* session=(\S+)")


def start_child(folder: Path) -> Iterator[AgentServer]:
    with run_agent_server(write_agent(folder, CHILD_TOML), cwd=folder) as server:
        yield server


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    """One real child agent server for the module (tests that stop a child start their own)."""
    yield from start_child(tmp_path_factory.mktemp("child"))


def config_for(child: AgentServer, **extra: object) -> SubAgentConfig:
    return SubAgentConfig.model_validate({"url": child.url, "auth_token": TOKEN, **extra})


def log_mark(server: AgentServer) -> int:
    return len(server.output().splitlines())


def access_lines_since(server: AgentServer, mark: int) -> list[str]:
    """The child's access-log lines written after ``mark``, up to and including a sentinel request
    sent now (so every earlier request's line is known to be there)."""
    sentinel = f"sentinel-{uuid.uuid4().hex}"
    assert httpx.get(server.url + "/health", headers={"X-Request-ID": sentinel}).status_code == 200
    wait_until(lambda: sentinel in server.output(), timeout=15, what="the sentinel's access line")
    lines = server.output().splitlines()[mark:]
    end = next(i for i, line in enumerate(lines) if sentinel in line)
    return [line for line in lines[:end] if "atoll.access" in line]


def chat_sessions(server: AgentServer, mark: int) -> list[tuple[int, str]]:
    """(status, X-Session-ID) of every ``POST /api/chat`` the child served since ``mark``, in order."""
    found = [ACCESS_CHAT.search(line) for line in access_lines_since(server, mark)]
    return [(int(m[1]), m[2]) for m in found if m]


def history(server: AgentServer, session: str) -> list[tuple[str, str]]:
    response = httpx.get(f"{server.url}/api/sessions/{session}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    return [(m["role"], m["content"]) for m in response.json()["messages"]]


async def test_child_is_a_tool_that_answers(child: AgentServer) -> None:
    mark = log_mark(child)
    agents = {"helper": config_for(child, description="knows things")}
    async with SubAgentToolbox(agents) as box:
        assert isinstance(box, Toolbox)
        [spec] = box.specs()
        assert (spec.name, spec.source) == ("ask_helper", "agent:helper")
        assert spec.parameters["required"] == ["task"]
        assert "knows things" in spec.description
        assert box.status()["agent:helper"]["state"] == "healthy"
        # /api/tags needs the key: the model name is only known if the token was sent.
        assert box.status()["agent:helper"]["model"] == f"{CHILD}:latest"

        # A 200 with the content proves: the token was sent (else 401), the discovered model was
        # asked for (else 404), and ``stream: false`` (else NDJSON, which is no single JSON answer).
        result = await box.call("ask_helper", {"task": "what is 2+2?"}, timeout=30)
        assert (result.is_error, result.content) == (False, "You said: what is 2+2?")
        assert result.source == "agent:helper"

    [(status, session)] = chat_sessions(child, mark)
    assert status == 200 and session not in ("-", "None")
    assert history(child, session) == [("user", "what is 2+2?"), ("assistant", "You said: what is 2+2?")]


async def test_child_sessions_follow_the_parent_session(child: AgentServer) -> None:
    mark = log_mark(child)
    async with SubAgentToolbox({"helper": config_for(child)}) as box:
        with bind_parent_session("parent-1"):
            await box.call("ask_helper", {"task": "first"}, timeout=30)
            second = await box.call("ask_helper", {"task": "/history"}, timeout=30)
        with bind_parent_session("parent-2"):
            other = await box.call("ask_helper", {"task": "/history"}, timeout=30)
        await box.call("ask_helper", {"task": "no parent"}, timeout=30)
        no_parent = await box.call("ask_helper", {"task": "/history"}, timeout=30)
        with bind_parent_session("parent-1"):
            back = await box.call("ask_helper", {"task": "/history"}, timeout=30)

    # The scripted LLM's /history answer lists what the child's session holds.
    assert "user:first" in second.content and "user:/history" in second.content
    assert "first" not in other.content and other.content.count("user:") == 1
    # nothing bound: each call is a conversation of its own
    assert "no parent" not in no_parent.content and "first" not in no_parent.content
    assert no_parent.content.count("user:") == 1
    assert back.content.startswith("system:You are kid. | user:first | assistant:You said: first | user:/history")

    calls = chat_sessions(child, mark)
    assert [status for status, _ in calls] == [200] * 6
    sessions = [session for _, session in calls]
    assert sessions[0] == sessions[1] == sessions[5]
    assert len({sessions[0], sessions[2], sessions[3], sessions[4]}) == 4
    assert [content for role, content in history(child, sessions[2]) if role == "user"] == ["/history"]
    assert [content for role, content in history(child, sessions[0]) if role == "user"] == [
        "first", "/history", "/history"]


async def test_unreachable_child_gives_an_error_result() -> None:
    agents = {"ghost": SubAgentConfig(url=f"http://127.0.0.1:{free_port()}")}
    async with SubAgentToolbox(agents) as box:
        assert box.status()["agent:ghost"]["state"] == "unreachable"
        assert [spec.name for spec in box.specs()] == ["ask_ghost"]
        result = await box.call("ask_ghost", {"task": "hello?"}, timeout=5)
        assert result.is_error
        assert "unreachable" in result.content
        assert result.source == "agent:ghost"


async def test_wrong_token_and_bad_arguments_are_error_results(child: AgentServer) -> None:
    agents = {"helper": SubAgentConfig(url=child.url, auth_token="wrong", model=CHILD)}
    async with SubAgentToolbox(agents) as box:
        denied = await box.call("ask_helper", {"task": "let me in"}, timeout=30)
        assert denied.is_error
        assert "HTTP 401" in denied.content
        assert "invalid API key" in denied.content
        missing = await box.call("ask_helper", {}, timeout=30)
        assert missing.is_error
        assert "task" in missing.content


async def test_without_the_token_the_child_refuses(child: AgentServer) -> None:
    """The counterpart of the first test: what the key is for, so that one's success means it was sent."""
    async with SubAgentToolbox({"helper": SubAgentConfig(url=child.url)}) as box:
        assert box.status()["agent:helper"]["state"] == "healthy"  # /health is public
        assert box.status()["agent:helper"]["model"] is None  # /api/tags is not
        denied = await box.call("ask_helper", {"task": "let me in"}, timeout=30)
        assert denied.is_error and "HTTP 401" in denied.content and "missing API key" in denied.content


async def test_slow_child_times_out(child: AgentServer) -> None:
    async with SubAgentToolbox({"helper": config_for(child)}) as box:
        result = await box.call("ask_helper", {"task": "/slow 20 0.5"}, timeout=0.3)
        assert result.is_error
        assert "did not answer within 0.3 s" in result.content


async def test_health_checks_notice_a_child_going_down(tmp_path: Path) -> None:
    for doomed in start_child(tmp_path):  # its own child: this test stops it
        async with SubAgentToolbox({"helper": config_for(doomed)}, health_interval=0.1) as box:
            assert box.status()["agent:helper"]["state"] == "healthy"
            await anyio.to_thread.run_sync(doomed.stop)
            await wait_until_async(lambda: box.status()["agent:helper"]["state"] == "unreachable",
                                   timeout=15, what="the child reported unreachable")


async def test_disabled_child_is_not_offered(child: AgentServer) -> None:
    mark = log_mark(child)
    async with SubAgentToolbox({"helper": config_for(child, enabled=False)}, health_interval=0.1) as box:
        assert box.specs() == []
        assert box.status()["agent:helper"]["state"] == "disabled"
        await anyio.sleep(0.5)  # several health intervals: a disabled child must still see nothing
    assert access_lines_since(child, mark) == []


class StaticToolbox:
    """A toolbox offering one tool that clashes with the child agent's tool name."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def start(self) -> None:
        return None

    def specs(self) -> list[ToolSpec]:
        return [ToolSpec(name="ask_helper", source="local")]

    async def call(self, name: str, arguments: dict[str, Any], *, timeout: float) -> ToolResult:
        self.calls.append(arguments)
        return ToolResult(content=f"local {name}", source="local")

    def status(self) -> dict[str, Any]:
        return {"local": {"state": "connected"}}

    async def aclose(self) -> None:
        return None


async def test_composite_renames_clashes_and_routes(child: AgentServer) -> None:
    local = StaticToolbox()
    async with CompositeToolbox(SubAgentToolbox({"helper": config_for(child)}), local) as box:
        assert sorted(spec.name for spec in box.specs()) == ["agent_helper__ask_helper", "local__ask_helper"]
        remote = await box.call("agent_helper__ask_helper", {"task": "routed"}, timeout=30)
        here = await box.call("local__ask_helper", {"task": "here"}, timeout=30)
        assert (remote.source, remote.content) == ("agent:helper", "You said: routed")
        assert (here.content, local.calls) == ("local ask_helper", [{"task": "here"}])
        assert box.status().keys() == {"agent:helper", "local"}
        unknown = await box.call("ask_helper", {"task": "x"}, timeout=30)
        assert unknown.is_error


@pytest.mark.mcp
async def test_composite_of_mcp_and_child_agents(child: AgentServer, everything_stdio: McpServerConfig) -> None:
    mcp = McpToolbox({"everything": everything_stdio}, connect_timeout=15)
    agents = SubAgentToolbox({"helper": config_for(child)})
    async with CompositeToolbox(mcp, agents) as box:
        names = {spec.name for spec in box.specs()}
        assert {"echo", "ask_helper"} <= names
        echo = await box.call("echo", {"message": "hi"}, timeout=30)
        ask = await box.call("ask_helper", {"task": "hi"}, timeout=30)
        assert (echo.source, echo.is_error) == ("everything", False)
        assert (ask.source, ask.is_error, ask.content) == ("agent:helper", False, "You said: hi")
        assert box.status().keys() == {"everything", "agent:helper"}
