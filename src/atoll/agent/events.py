"""What the agent loop yields. The server turns these into NDJSON or SSE; the loop never writes HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field

from atoll.messages import DoneReason, Message, TextDelta, ThinkingDelta, ToolCall, ToolResult, Usage


@dataclass
class ToolStarted:
    call: ToolCall
    source: str


@dataclass
class ToolFinished:
    call: ToolCall
    result: ToolResult


@dataclass
class ApprovalRequested:
    """The turn stops here: ``call`` waits for a person to approve it (``approval_id``)."""

    approval_id: str
    call: ToolCall


@dataclass
class ClientToolCalls:
    """Calls to tools the HTTP client offered: returned to the client to run (Ollama semantics)."""

    calls: list[ToolCall]


@dataclass
class RunFinished:
    reason: DoneReason
    usage: Usage
    #: Everything the run added to the conversation (internal tool rounds included), for sessions.
    added: list[Message] = field(default_factory=list)
    rounds: int = 1


AgentEvent = (TextDelta | ThinkingDelta | ToolStarted | ToolFinished | ApprovalRequested | ClientToolCalls
              | RunFinished)
