"""One chat turn: merge it into the session (if any), run the agent, record what it added."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from atoll.agent.events import AgentEvent, RunFinished
from atoll.agent.loop import RunRequest
from atoll.sessions.manager import new_messages

if TYPE_CHECKING:
    from atoll.server.runtime import AgentRuntime

EventObserver = Callable[[AgentEvent], None]

_observers: WeakKeyDictionary[AgentRuntime, EventObserver] = WeakKeyDictionary()


def observe_events(runtime: AgentRuntime, observer: EventObserver) -> None:
    """Show ``observer`` every event of every turn ``runtime`` runs (token and tool metrics)."""
    _observers[runtime] = observer


def _ignore(event: AgentEvent) -> None:
    return None


async def converse(runtime: AgentRuntime, request: RunRequest, *, session_id: str | None,
                   owner: str = "") -> AsyncIterator[AgentEvent]:
    """The agent's events for this turn. With a session, the client may send only its new messages.

    ``runtime.active_generations`` counts the turns in progress; it comes back down however the
    turn ends, a client that disconnects included (the caller closes this generator).
    """
    observe = _observers.get(runtime, _ignore)
    runtime.active_generations += 1
    try:
        async with aclosing(_turn(runtime, request, session_id, owner)) as events:
            async for event in events:
                observe(event)
                yield event
    finally:
        runtime.active_generations -= 1


async def _turn(runtime: AgentRuntime, request: RunRequest, session_id: str | None,
                owner: str) -> AsyncIterator[AgentEvent]:
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
