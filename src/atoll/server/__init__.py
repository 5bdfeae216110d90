"""The agent server: an Ollama-compatible HTTP API in front of one agent."""

from atoll.server.app import create_app
from atoll.server.runtime import AgentRuntime

__all__ = ["AgentRuntime", "create_app"]
