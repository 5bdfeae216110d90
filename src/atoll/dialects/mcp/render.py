"""Agent events -> MCP: progress notifications while the agent works, then the tool's result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp import types

from atoll.agent.events import AgentEvent, RunFinished, ToolFinished, ToolStarted
from atoll.messages import TextDelta


@dataclass
class Progress:
    """One ``notifications/progress``: how many characters of the answer so far, and what happened."""

    progress: float
    message: str


@dataclass
class AnswerRenderer:
    """Streams the answer as progress notifications (text as it comes, tool calls as they run) and
    collects it for the tool's result."""

    session_id: str
    answer: str = ""

    def chunks(self, event: AgentEvent) -> list[Progress]:
        if isinstance(event, TextDelta):
            self.answer += event.text
            return [Progress(len(self.answer), event.text)]
        if isinstance(event, ToolStarted):
            return [Progress(len(self.answer), f"[calling tool {event.call.name}]")]
        if isinstance(event, ToolFinished):
            failed = " (failed)" if event.result.is_error else ""
            return [Progress(len(self.answer), f"[tool {event.call.name} finished{failed}]")]
        return []

    def take(self, event: AgentEvent) -> None:
        if isinstance(event, TextDelta):
            self.answer += event.text

    def reply(self, event: RunFinished) -> dict[str, Any]:
        return {"answer": self.answer, "session_id": self.session_id, "done_reason": event.reason}


def answer_result(reply: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=reply["answer"])], structured_content=reply)


def error_result(message: str) -> types.CallToolResult:
    """A failure the calling LLM sees (and can correct), as MCP asks tools to report them."""
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def tool_result(content: str, *, is_error: bool) -> types.CallToolResult:
    """A re-exported tool's result, as the agent's toolbox returned it."""
    return types.CallToolResult(content=[types.TextContent(text=content)], is_error=is_error)
