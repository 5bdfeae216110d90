"""Agents asking agents: whose conversation a tool call runs for, and how deep the request is in a
chain of delegations. Shared by every kind of child (atoll over HTTP, A2A, MCP) and every dialect's
server, so that ``[server] max_delegation_depth`` bounds a loop whichever protocols it crosses.

A parent sends with every delegation ``X-Atoll-Delegation-Depth`` (the depth of the request being
served plus one) and ``X-Atoll-Tool-Activity: off`` (a child set to show tool blocks would
otherwise put them into the parent's tool result, and so into its LLM's context). An MCP call
carries no headers of its own (one connection serves every call; stdio has none at all), so it
sends the same as request ``_meta`` (:data:`META_KEYS`). A server refuses a request deeper than its
limit (:func:`delegation_depth`), and a parent does not delegate to a child agent past its own
limit (:func:`refusal`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from atoll.errors import RequestError

__all__ = [
    "DELEGATION_HEADER", "MAX_DELEGATION_DEPTH", "META_KEYS", "bind_parent_session", "delegation_depth",
    "delegation_headers", "delegation_meta", "headers_from_meta", "parent_key", "refusal",
]

#: Sent with every delegation: how many delegations deep the child's request is (1 for the first).
DELEGATION_HEADER = "X-Atoll-Delegation-Depth"
#: The request header choosing the tool-activity mode (see :mod:`atoll.agent.activity`).
_ACTIVITY_HEADER = "X-Atoll-Tool-Activity"
#: Default of ``[server] max_delegation_depth``.
MAX_DELEGATION_DEPTH = 4
#: The delegation headers as MCP request ``_meta`` keys.
META_KEYS = {"atoll/delegation-depth": DELEGATION_HEADER, "atoll/tool-activity": _ACTIVITY_HEADER}


@dataclass(frozen=True)
class _Parent:
    """The turn tool calls run for: whose conversation (``key``) and how deep it is delegated."""

    key: str
    depth: int


#: Set by the conversation around a turn's tool calls; ``None`` outside any turn.
_parent: ContextVar[_Parent | None] = ContextVar("atoll_parent", default=None)


def parent_key() -> str | None:
    """Whose conversation the tool call in progress belongs to (see :func:`bind_parent_session`)."""
    parent = _parent.get()
    return parent.key if parent is not None else None


def _depth() -> int:
    parent = _parent.get()
    return parent.depth if parent is not None else 0


@contextlib.contextmanager
def bind_parent_session(session_id: str | None, owner: str = "", depth: int = 0) -> Iterator[None]:
    """Run the enclosed tool calls (and the tasks they spawn) on behalf of the session
    ``session_id`` of the API key fingerprint ``owner`` (no session: this turn alone), in a request
    that is itself ``depth`` delegations deep."""
    key = f"{owner}#{session_id}" if session_id is not None else f"turn#{os.urandom(16).hex()}"
    token = _parent.set(_Parent(key, depth))
    try:
        yield
    finally:
        _parent.reset(token)


def delegation_headers() -> dict[str, str]:
    """The headers a delegation made now sends (see the module doc)."""
    return {DELEGATION_HEADER: str(_depth() + 1), _ACTIVITY_HEADER: "off"}


def delegation_meta() -> dict[str, Any]:
    """:func:`delegation_headers` as MCP request ``_meta``."""
    headers = delegation_headers()
    return {key: headers[header] for key, header in META_KEYS.items()}


def headers_from_meta(meta: Mapping[str, Any] | None) -> dict[str, str]:
    """The delegation headers an MCP call carried in its ``_meta`` (lower-cased names)."""
    return {header.lower(): str(meta[key]) for key, header in META_KEYS.items() if meta and key in meta}


def refusal(child: str, max_depth: int) -> str | None:
    """Why delegating to ``child`` now would go past ``max_depth`` (the error result the LLM gets),
    or None when it may go ahead."""
    depth = _depth()
    if depth < max_depth:
        return None
    return (f"not delegated to agent {child!r}: this request is already {depth} delegations deep, the most "
            f"this agent allows (server.max_delegation_depth = {max_depth}); answer without it")


def delegation_depth(headers: Mapping[str, str], limit: int) -> int:
    """The depth of a request from its :data:`DELEGATION_HEADER` (0 without it); raises
    :class:`~atoll.errors.RequestError` for a malformed value and past ``limit``."""
    raw = headers.get(DELEGATION_HEADER.lower()) or headers.get(DELEGATION_HEADER)
    if raw is None:
        return 0
    if not raw.isascii() or not raw.isdigit() or len(raw) > 3:
        raise RequestError(f"{DELEGATION_HEADER} must be a small non-negative integer")
    depth = int(raw)
    if depth > limit:
        raise RequestError(f"delegation too deep: this request is {depth} delegations deep and this agent "
                           f"accepts at most {limit} (server.max_delegation_depth); is there a loop of agents "
                           "asking each other?", status=508)
    return depth
