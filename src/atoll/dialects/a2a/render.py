"""Agent events -> A2A task updates: the answer streams as chunks of one artifact, tool activity
as ``working`` status messages; the run's end completes the task, or leaves it ``input-required``
when a tool call waits for a person's approval (the next message on the task decides)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from atoll.agent.events import AgentEvent, ApprovalRequested, ToolFinished, ToolStarted
from atoll.messages import TextDelta

#: The one artifact a task's answer is written into.
ANSWER_ARTIFACT = "answer"


@dataclass
class Update:
    """``answer``: a chunk of the answer artifact; ``status``: a ``working`` status message."""

    kind: Literal["answer", "status"]
    text: str


class TaskRenderer:
    def __init__(self) -> None:
        self.answer = ""
        #: The approval the turn ended on, if any: the task then waits for input instead of completing.
        self.approval: ApprovalRequested | None = None

    def chunks(self, event: AgentEvent) -> list[Update]:
        if isinstance(event, TextDelta):
            self.answer += event.text
            return [Update("answer", event.text)]
        if isinstance(event, ToolStarted):
            return [Update("status", f"calling tool {event.call.name}")]
        if isinstance(event, ToolFinished):
            failed = " (failed)" if event.result.is_error else ""
            return [Update("status", f"tool {event.call.name} finished{failed}")]
        if isinstance(event, ApprovalRequested):
            self.approval = event
        return []
