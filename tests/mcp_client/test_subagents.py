"""SubAgentToolbox and CompositeToolbox against a small child agent served on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

from atoll.config import McpServerConfig, SubAgentConfig
from atoll.mcp_client import CompositeToolbox, McpToolbox
from atoll.messages import ToolResult, ToolSpec
from atoll.subagents import SubAgentToolbox, bind_parent_session
from atoll.tools import Toolbox
from tests.mcp_client.fake_child import MODEL, FakeChild
from tests.mcp_client.helpers import free_port, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def child() -> Iterator[FakeChild]:
    server = FakeChild(token="s3cret")
    server.start()
    yield server
    server.stop()


def config_for(child: FakeChild, **extra: object) -> SubAgentConfig:
    return SubAgentConfig.model_validate({"url": child.url, "auth_token": child.token, **extra})


async def test_child_is_a_tool_that_answers(child: FakeChild) -> None:
    agents = {"helper": config_for(child, description="knows things")}
    async with SubAgentToolbox(agents) as box:
        assert isinstance(box, Toolbox)
        [spec] = box.specs()
        assert (spec.name, spec.source) == ("ask_helper", "agent:helper")
        assert spec.parameters["required"] == ["task"]
        assert "knows things" in spec.description
        assert box.status()["agent:helper"]["state"] == "healthy"
        assert box.status()["agent:helper"]["model"] == MODEL

        result = await box.call("ask_helper", {"task": "what is 2+2?"}, timeout=10)
        assert (result.is_error, result.content) == (False, "answer #1 to: what is 2+2?")
        assert result.source == "agent:helper"

    [chat] = child.chats()
    assert chat.headers["authorization"] == "Bearer s3cret"
    assert chat.headers["x-session-id"]
    assert chat.body["stream"] is False
    assert chat.body["model"] == MODEL
    health = [s for s in child.seen if s.path == "/health"]
    assert health and health[0].headers["authorization"] == "Bearer s3cret"


async def test_child_sessions_follow_the_parent_session(child: FakeChild) -> None:
    async with SubAgentToolbox({"helper": config_for(child)}) as box:
        with bind_parent_session("parent-1"):
            await box.call("ask_helper", {"task": "first"}, timeout=10)
            second = await box.call("ask_helper", {"task": "second"}, timeout=10)
        with bind_parent_session("parent-2"):
            other = await box.call("ask_helper", {"task": "elsewhere"}, timeout=10)
        await box.call("ask_helper", {"task": "no parent"}, timeout=10)
        no_parent = await box.call("ask_helper", {"task": "no parent again"}, timeout=10)

    assert second.content == "answer #2 to: second"
    assert other.content == "answer #1 to: elsewhere"
    assert no_parent.content == "answer #2 to: no parent again"
    sessions = [chat.headers["x-session-id"] for chat in child.chats()]
    assert sessions[0] == sessions[1]
    assert len({sessions[0], sessions[2], sessions[3]}) == 3
    assert sessions[3] == sessions[4]


async def test_unreachable_child_gives_an_error_result() -> None:
    agents = {"ghost": SubAgentConfig(url=f"http://127.0.0.1:{free_port()}")}
    async with SubAgentToolbox(agents) as box:
        assert box.status()["agent:ghost"]["state"] == "unreachable"
        assert [spec.name for spec in box.specs()] == ["ask_ghost"]
        result = await box.call("ask_ghost", {"task": "hello?"}, timeout=5)
        assert result.is_error
        assert "unreachable" in result.content
        assert result.source == "agent:ghost"


async def test_wrong_token_and_bad_arguments_are_error_results(child: FakeChild) -> None:
    agents = {"helper": SubAgentConfig(url=child.url, auth_token="wrong", model=MODEL)}
    async with SubAgentToolbox(agents) as box:
        denied = await box.call("ask_helper", {"task": "let me in"}, timeout=10)
        assert denied.is_error
        assert "HTTP 401" in denied.content
        assert "unauthorized" in denied.content
        missing = await box.call("ask_helper", {}, timeout=10)
        assert missing.is_error
        assert "task" in missing.content


async def test_slow_child_times_out(child: FakeChild) -> None:
    async with SubAgentToolbox({"helper": config_for(child)}) as box:
        result = await box.call("ask_helper", {"task": "sleep:5"}, timeout=0.3)
        assert result.is_error
        assert "did not answer within 0.3 s" in result.content


async def test_health_checks_notice_a_child_going_down(child: FakeChild) -> None:
    async with SubAgentToolbox({"helper": config_for(child)}, health_interval=0.1) as box:
        assert box.status()["agent:helper"]["state"] == "healthy"
        await anyio.to_thread.run_sync(child.stop)
        await wait_until(lambda: box.status()["agent:helper"]["state"] == "unreachable", 10, "unreachable")


async def test_disabled_child_is_not_offered(child: FakeChild) -> None:
    async with SubAgentToolbox({"helper": config_for(child, enabled=False)}) as box:
        assert box.specs() == []
        assert box.status()["agent:helper"]["state"] == "disabled"
    assert child.seen == []


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


async def test_composite_renames_clashes_and_routes(child: FakeChild) -> None:
    local = StaticToolbox()
    async with CompositeToolbox(SubAgentToolbox({"helper": config_for(child)}), local) as box:
        assert sorted(spec.name for spec in box.specs()) == ["agent_helper__ask_helper", "local__ask_helper"]
        remote = await box.call("agent_helper__ask_helper", {"task": "routed"}, timeout=10)
        here = await box.call("local__ask_helper", {"task": "here"}, timeout=10)
        assert (remote.source, remote.content) == ("agent:helper", "answer #1 to: routed")
        assert (here.content, local.calls) == ("local ask_helper", [{"task": "here"}])
        assert box.status().keys() == {"agent:helper", "local"}
        unknown = await box.call("ask_helper", {"task": "x"}, timeout=10)
        assert unknown.is_error


@pytest.mark.mcp
async def test_composite_of_mcp_and_child_agents(child: FakeChild, everything_stdio: McpServerConfig) -> None:
    mcp = McpToolbox({"everything": everything_stdio}, connect_timeout=15)
    agents = SubAgentToolbox({"helper": config_for(child)})
    async with CompositeToolbox(mcp, agents) as box:
        names = {spec.name for spec in box.specs()}
        assert {"echo", "ask_helper"} <= names
        echo = await box.call("echo", {"message": "hi"}, timeout=10)
        ask = await box.call("ask_helper", {"task": "hi"}, timeout=10)
        assert (echo.source, echo.is_error) == ("everything", False)
        assert (ask.source, ask.is_error) == ("agent:helper", False)
        assert box.status().keys() == {"everything", "agent:helper"}
