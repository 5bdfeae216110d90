"""Wire dialects around one neutral request and one event stream.

Every dialect is a small package with a ``parse`` module (its wire request -> the neutral
:class:`~atoll.agent.loop.RunRequest`) and a ``render`` module (the agent's events -> its wire
chunks). None imports another; what they share (message shape, content parts, tool-result pairing)
lives in :mod:`atoll.dialects._neutral`. A renderer answers the :class:`Renderer` protocol, so one
driver serves them all: streaming, each event becomes chunks as it happens; collecting
(``stream: false``), events are taken in and the final one yields the whole reply.

This package root is also the one place that decides, by path, in which dialect an error is
answered (the exception handlers and the security middleware ask it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from atoll.dialects.ollama.render import ollama_error_body
from atoll.dialects.openai.render import openai_error_body

if TYPE_CHECKING:
    from atoll.agent.events import AgentEvent, RunFinished

__all__ = ["ErrorBody", "Renderer", "error_body_for"]

#: ``(message, status) -> body``: how a dialect words an error.
ErrorBody = Callable[[str, int], dict[str, Any]]


class Renderer(Protocol):
    """Turns one turn's agent events into a dialect's wire chunks."""

    def chunks(self, event: AgentEvent) -> list[dict[str, Any]]:
        """Streaming: the chunks this event becomes (often none)."""

    def take(self, event: AgentEvent) -> None:
        """Collecting: remember what this (non-final) event adds to the reply."""

    def reply(self, event: RunFinished) -> dict[str, Any]:
        """Collecting: the whole reply, once the run has finished."""


def error_body_for(path: str) -> ErrorBody:
    """OpenAI's error object under ``/v1/``, Ollama's ``{"error", "detail"}`` everywhere else."""
    return openai_error_body if path.startswith("/v1/") else ollama_error_body
