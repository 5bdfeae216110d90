"""The tool-calling loop with the scripted LLM and an in-process toolbox (the MCP layer is tested
against real servers in tests/mcp_client and tests/integration)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from atoll.agent import AgentRunner, ClientToolCalls, RunFinished, ToolFinished, ToolStarted
from atoll.agent.loop import RunRequest
from atoll.config import LLMConfig
from atoll.messages import GenerationOptions, Message, TextDelta, ToolResult, ToolSpec
from tests.support.scripted import ScriptedProvider

Tool = Callable[[dict[str, Any]], Awaitable[str]]


class FunctionToolbox:
    """Python coroutines as tools."""

    def __init__(self, **tools: Tool) -> None:
        self.tools = tools

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def status(self) -> dict[str, Any]:
        return {}

    def specs(self) -> list[ToolSpec]:
        return [ToolSpec(name=name, source="test") for name in self.tools]

    async def call(self, name: str, arguments: dict[str, Any], *, timeout: float) -> ToolResult:
        try:
            return ToolResult(content=await self.tools[name](arguments), source="test")
        except Exception as exc:
            return ToolResult(content=f"Error: {exc}", is_error=True, source="test")


def runner(toolbox: FunctionToolbox, **kwargs: Any) -> AgentRunner:
    return AgentRunner(ScriptedProvider(LLMConfig()), toolbox, system_prompt="sys",
                       defaults=GenerationOptions(), **kwargs)


async def run(agent: AgentRunner, text: str, **kwargs: Any) -> list[Any]:
    request = RunRequest([Message(role="user", content=text)], **kwargs)
    return [event async for event in agent.run(request)]


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_tool_result_reaches_the_final_answer_and_usage_sums_rounds() -> None:
    async def add(args: dict[str, Any]) -> str:
        return str(args["a"] + args["b"])

    events = await run(runner(FunctionToolbox(add=add)), '/tool add {"a": 2, "b": 3}')
    assert [type(e) for e in events[:2]] == [ToolStarted, ToolFinished]
    assert text_of(events) == "Tool results: add=5"
    final = events[-1]
    assert isinstance(final, RunFinished) and final.rounds == 2
    assert final.usage.completion_tokens == 1 + 3  # one call round, then three words
    roles = [(m.role, m.internal) for m in final.added]
    assert roles == [("assistant", True), ("tool", True), ("assistant", False)]


async def test_tool_errors_and_timeouts_are_fed_back_not_raised() -> None:
    async def broken(args: dict[str, Any]) -> str:
        raise RuntimeError("disk on fire")

    async def hang(args: dict[str, Any]) -> str:
        await anyio.sleep(30)
        return "never"

    agent = runner(FunctionToolbox(broken=broken, hang=hang), tool_timeout=0.2)
    events = await run(agent, "/tool broken {} ;; hang {}")
    results = {e.call.name: e.result for e in events if isinstance(e, ToolFinished)}
    assert results["broken"].is_error and "disk on fire" in results["broken"].content
    assert results["hang"].is_error and "timed out" in results["hang"].content
    assert text_of(events).startswith("Tool results: broken=Error: disk on fire; hang=Error:")


async def test_independent_calls_run_concurrently() -> None:
    both_started = anyio.Event()
    started = 0

    async def meet(args: dict[str, Any]) -> str:
        nonlocal started
        started += 1
        if started == 2:
            both_started.set()
        await both_started.wait()  # deadlocks if the calls ran one after the other
        return "met"

    with anyio.fail_after(5):
        events = await run(runner(FunctionToolbox(a=meet, b=meet)), "/tool a {} ;; b {}")
    assert text_of(events) == "Tool results: a=met; b=met"


async def test_round_limit_ends_with_an_answer_that_says_so() -> None:
    calls = 0

    class Looping(ScriptedProvider):
        async def stream(self, request: Any) -> Any:  # always asks for the tool again
            request.messages.append(Message(role="user", content="/tool again {}"))
            async for event in super().stream(request):
                yield event

    async def again(args: dict[str, Any]) -> str:
        nonlocal calls
        calls += 1
        return "more"

    agent = AgentRunner(Looping(LLMConfig()), FunctionToolbox(again=again), system_prompt=None,
                        defaults=GenerationOptions(), max_iterations=3, max_repeated_calls=10)
    events = await run(agent, "go")
    assert calls == 3
    assert "stopped after 3 tool-calling rounds" in text_of(events)
    assert isinstance(events[-1], RunFinished)


async def test_hybrid_client_tools_return_to_client_while_own_tools_run() -> None:
    async def lookup(args: dict[str, Any]) -> str:
        return "found"

    client_tool = ToolSpec(name="show_map", source="client")
    events = await run(runner(FunctionToolbox(lookup=lookup)), '/tool lookup {} ;; show_map {"x": 1}',
                       client_tools=[client_tool])
    assert [e.call.name for e in events if isinstance(e, ToolFinished)] == ["lookup"]
    returned = [e for e in events if isinstance(e, ClientToolCalls)]
    assert [c.name for c in returned[0].calls] == ["show_map"]
    assert isinstance(events[-1], RunFinished)


async def test_system_prompt_is_first_when_set() -> None:
    for system_prompt in (None, "be brief"):
        agent = AgentRunner(ScriptedProvider(LLMConfig()), FunctionToolbox(), system_prompt=system_prompt,
                            defaults=GenerationOptions())
        events = await run(agent, "/system")
        assert text_of(events) == (system_prompt or "")
