"""Per-request access to the agent runtime and the caller's identity."""

from __future__ import annotations

from starlette.requests import Request

from atoll.server.runtime import AgentRuntime


def runtime_from(request: Request) -> AgentRuntime:
    """The agent behind this app (what hot routes call directly, skipping dependency solving)."""
    runtime: AgentRuntime = request.app.state.runtime
    return runtime


async def runtime_of(request: Request) -> AgentRuntime:
    """:func:`runtime_from` as a FastAPI dependency. ``async`` on purpose: FastAPI runs a plain
    ``def`` dependency in a worker thread, a thread hop on every request."""
    return runtime_from(request)


def caller(request: Request) -> str:
    """A fingerprint of the API key the request authenticated with ("" without keys).

    Sessions are bound to it, so one key cannot read another key's conversations.
    """
    return str(getattr(request.state, "key_owner", ""))
