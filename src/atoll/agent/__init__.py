"""The agent: an LLM plus tools, driven round by round."""

from atoll.agent.events import (
    AgentEvent,
    ClientToolCalls,
    RunFinished,
    ToolFinished,
    ToolStarted,
)
from atoll.agent.loop import AgentRunner

__all__ = ["AgentEvent", "AgentRunner", "ClientToolCalls", "RunFinished", "ToolFinished", "ToolStarted"]
