"""The storage protocol every session backend implements."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from atoll.messages import Message


@dataclass
class SessionRecord:
    id: str
    messages: list[Message] = field(default_factory=list)
    #: A fingerprint of the API key that created the session ("" without keys); other keys can't see it.
    owner: str = ""
    created: float = 0.0
    updated: float = 0.0


@dataclass(frozen=True)
class SessionSummary:
    """One line of a session listing: no transcript, the number of user turns."""

    id: str
    created: float
    updated: float
    turns: int


#: Listing order and cursor: (updated, id), newest first; a page holds the entries below the cursor.
Cursor = tuple[float, str]
NO_CURSOR: Cursor = (float("inf"), "")


class SessionStore(Protocol):
    async def get(self, session_id: str) -> SessionRecord | None: ...

    async def put(self, record: SessionRecord) -> None:
        """Store the whole record, replacing any transcript stored under its id."""
        ...

    async def append(self, record: SessionRecord, added: list[Message]) -> None:
        """Save the record's times and add ``added`` (the new tail of ``record.messages``) to its
        stored transcript without rewriting what is stored already (a long conversation costs no
        more per turn than a short one). A store that no longer holds the session stores it whole."""
        ...

    async def delete(self, session_id: str) -> bool: ...

    async def count_since(self, cutoff: float) -> int:
        """Sessions updated at or after ``cutoff`` (unix time)."""
        ...

    async def delete_before(self, cutoff: float) -> int:
        """Delete sessions last updated before ``cutoff``; return how many."""
        ...

    async def page(self, owner: str | None, since: float, below: Cursor, limit: int) -> list[SessionSummary]:
        """Sessions updated at or after ``since`` whose (updated, id) is below ``below``, newest first,
        at most ``limit``; only ``owner``'s when it is not None."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class SharedStore(Protocol):
    """A store several processes use at once (Redis): it serialises turns on a session itself."""

    def lock(self, session_id: str) -> AbstractAsyncContextManager[None]: ...
