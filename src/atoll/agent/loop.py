"""The tool-calling loop: ask the provider, run the calls it requests, feed the results back,
stop on a final answer or at the round limit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeGuard

import anyio

from atoll.agent.events import AgentEvent, ClientToolCalls, RunFinished, ToolFinished, ToolStarted
from atoll.messages import (
    DoneReason,
    Finished,
    GenerationOptions,
    Message,
    ModelEvent,
    ModelRequest,
    ResponseFormat,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallRequested,
    ToolResult,
    ToolSpec,
    Usage,
)

if TYPE_CHECKING:
    from atoll.providers.base import Provider
    from atoll.tools import Toolbox

logger = logging.getLogger(__name__)


@dataclass
class RunRequest:
    """One turn of a conversation as the loop sees it (the agent's system prompt is added here)."""

    messages: list[Message]
    client_tools: list[ToolSpec] = field(default_factory=list)
    options: GenerationOptions = field(default_factory=GenerationOptions)
    format: ResponseFormat = None
    think: bool | str | None = None


@dataclass
class _Round:
    """What one LLM call produced."""

    text: str = ""
    thinking: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    reason: DoneReason = "stop"
    usage: Usage = field(default_factory=Usage)

    def take(self, event: ModelEvent) -> TypeGuard[TextDelta | ThinkingDelta]:
        """Record ``event``; True when it is output to pass on as it streams."""
        if isinstance(event, TextDelta):
            self.text += event.text
            return True
        if isinstance(event, ThinkingDelta):
            self.thinking += event.text
            return True
        if isinstance(event, ToolCallRequested):
            self.calls.append(event.call)
        elif isinstance(event, Finished):
            self.reason, self.usage = event.reason, event.usage
        return False


class AgentRunner:
    def __init__(
        self,
        provider: Provider,
        toolbox: Toolbox,
        *,
        system_prompt: str | None,
        defaults: GenerationOptions,
        max_iterations: int = 10,
        tool_timeout: float = 60.0,
    ) -> None:
        self.provider = provider
        self.toolbox = toolbox
        self.system_prompt = system_prompt
        self.defaults = defaults
        self.max_iterations = max_iterations
        self.tool_timeout = tool_timeout

    def _prompt(self, messages: list[Message]) -> list[Message]:
        if self.system_prompt:
            return [Message(role="system", content=self.system_prompt), *messages]
        return list(messages)

    async def run(self, request: RunRequest) -> AsyncGenerator[AgentEvent, None]:
        """Yield text as it streams, tool progress, and exactly one final ``RunFinished``."""
        started = time.perf_counter_ns()
        transcript = self._prompt(request.messages)
        added: list[Message] = []
        usage = Usage()
        options = request.options.merged_over(self.defaults)
        for round_number in range(1, self.max_iterations + 1):
            own_tools = self.toolbox.specs()
            own_names = {spec.name for spec in own_tools}
            offered = own_tools + [t for t in request.client_tools if t.name not in own_names]
            model_request = ModelRequest(transcript, offered, options, request.format, request.think)
            turn = _Round()
            async for model_event in self.provider.stream(model_request):
                if turn.take(model_event):
                    yield model_event
            usage = usage + turn.usage
            server_calls = [c for c in turn.calls if c.name in own_names]
            client_calls = [c for c in turn.calls if c.name not in own_names]
            assistant = Message(role="assistant", content=turn.text, thinking=turn.thinking or None,
                                tool_calls=turn.calls or None, internal=bool(server_calls) and not client_calls)
            transcript.append(assistant)
            added.append(assistant)
            if server_calls:
                async for event in self._run_tools(server_calls, transcript, added):
                    yield event
            if client_calls:
                yield ClientToolCalls(client_calls)
            if not server_calls or client_calls:
                yield RunFinished(turn.reason, _total(usage, started), added, round_number)
                return
        notice = (f"I stopped after {self.max_iterations} tool-calling rounds without reaching a final "
                  "answer (the agent's max_iterations limit).")
        yield TextDelta(notice)
        added.append(Message(role="assistant", content=notice))
        yield RunFinished("stop", _total(usage, started), added, self.max_iterations)

    async def _run_tools(
        self, calls: list[ToolCall], transcript: list[Message], added: list[Message]
    ) -> AsyncIterator[AgentEvent]:
        """Run independent calls concurrently; report each start and finish as it happens.

        Plain asyncio tasks rather than a task group: an async generator must not yield inside a
        task group's scope, and if the consumer goes away (client disconnect) the ``finally``
        cancels whatever is still running.
        """
        sources = {spec.name: spec.source for spec in self.toolbox.specs()}
        for call in calls:
            yield ToolStarted(call, sources.get(call.name, ""))
        tasks = [asyncio.ensure_future(self._call_tool(call)) for call in calls]
        results: dict[str, ToolResult] = {}
        try:
            for finished in asyncio.as_completed(tasks):
                call, result = await finished
                results[call.id] = result
                yield ToolFinished(call, result)
        finally:
            for task in tasks:
                task.cancel()
        for call in calls:
            message = Message(role="tool", content=results[call.id].content, tool_call_id=call.id,
                              tool_name=call.name, internal=True)
            transcript.append(message)
            added.append(message)

    async def _call_tool(self, call: ToolCall) -> tuple[ToolCall, ToolResult]:
        """One call; every failure becomes an error result the LLM sees, never an exception."""
        try:
            with anyio.fail_after(self.tool_timeout + 1):
                result = await self.toolbox.call(call.name, call.arguments, timeout=self.tool_timeout)
        except TimeoutError:
            result = ToolResult(content=f"Error: tool {call.name!r} timed out after {self.tool_timeout:g} s",
                                is_error=True)
        except Exception as exc:
            logger.exception("tool %s failed", call.name)
            result = ToolResult(content=f"Error: tool {call.name!r} failed: {exc}", is_error=True)
        return call, result


def _total(usage: Usage, started_ns: int) -> Usage:
    usage.total_duration_ns = time.perf_counter_ns() - started_ns
    return usage
