"""One chat turn: merge it into the session (if any), run the agent, record what it added."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING

from atoll.agent.activity import choose_mode, is_background_task, render, strip_activity
from atoll.agent.events import AgentEvent, RunFinished, ToolFinished
from atoll.agent.loop import RunRequest
from atoll.delegation import bind_parent_session, delegation_depth
from atoll.messages import TextDelta
from atoll.sessions.manager import new_messages

if TYPE_CHECKING:
    from atoll.server.runtime import AgentRuntime


def converse(runtime: AgentRuntime, request: RunRequest, *, session_id: str | None,
             owner: str = "", headers: Mapping[str, str] | None = None) -> AsyncIterator[AgentEvent]:
    """The agent's events for this turn, with tool activity rendered into the text as the client
    asked (``X-Atoll-Tool-Activity``, ``options.tool_activity``, ``[agent] show_tool_activity``).

    Checked before any work starts: a request too deep in a chain of delegating agents
    (``X-Atoll-Delegation-Depth`` past ``[server] max_delegation_depth``) raises RequestError."""
    depth = delegation_depth(headers or {}, runtime.config.server.max_delegation_depth)
    return _rendered(runtime, request, session_id=session_id, owner=owner, headers=headers or {}, depth=depth)


async def _rendered(runtime: AgentRuntime, request: RunRequest, *, session_id: str | None, owner: str,
                    headers: Mapping[str, str], depth: int) -> AsyncIterator[AgentEvent]:
    mode = choose_mode(headers, request.options.extra, runtime.config.agent.show_tool_activity)
    request.messages = strip_activity(request.messages)
    request.owner, request.background = owner, is_background_task(request.messages)
    async for event in _converse(runtime, request, session_id=session_id, owner=owner, depth=depth):
        yield event
        if mode != "off" and isinstance(event, ToolFinished):
            yield TextDelta(render(event, mode))


async def _converse(runtime: AgentRuntime, request: RunRequest, *, session_id: str | None,
                    owner: str, depth: int) -> AsyncIterator[AgentEvent]:
    """The agent's events for this turn. With a session, the client may send only its new messages.

    Every event is shown to ``runtime.observe_event`` (token and tool metrics). The loop is closed
    explicitly however the turn ends, so a client that disconnects stops the generation and the
    tool calls in flight at once; ``runtime.active_generations`` counts the turns in progress.
    Tool calls run on behalf of the session and key, so child agents keep one conversation per
    session (a turn without a session gets child sessions of its own).
    """
    observe = runtime.observe_event
    runtime.active_generations += 1
    try:
        with bind_parent_session(session_id, owner, depth):
            if session_id is None:
                async with aclosing(runtime.runner.run(request)) as events:
                    async for event in events:
                        observe(event)
                        yield event
                return
            async with runtime.sessions.open(session_id, owner) as record:
                record.messages.extend(new_messages(record.messages, request.messages))
                request.messages = list(record.messages)
                async with aclosing(runtime.runner.run(request)) as events:
                    async for event in events:
                        observe(event)
                        if isinstance(event, RunFinished):
                            record.messages.extend(event.added)
                        yield event
    finally:
        runtime.active_generations -= 1
