"""One chat turn: merge it into the session (if any), run the agent, record what it added."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from atoll.agent.events import AgentEvent, RunFinished
from atoll.agent.loop import RunRequest
from atoll.sessions.manager import new_messages

if TYPE_CHECKING:
    from atoll.server.runtime import AgentRuntime


async def converse(runtime: AgentRuntime, request: RunRequest, *, session_id: str | None,
                   owner: str = "") -> AsyncIterator[AgentEvent]:
    """The agent's events for this turn. With a session, the client may send only its new messages."""
    if session_id is None:
        async for event in runtime.runner.run(request):
            yield event
        return
    async with runtime.sessions.open(session_id, owner) as record:
        record.messages.extend(new_messages(record.messages, request.messages))
        request.messages = list(record.messages)
        async for event in runtime.runner.run(request):
            if isinstance(event, RunFinished):
                record.messages.extend(event.added)
            yield event
