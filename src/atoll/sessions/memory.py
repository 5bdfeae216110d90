"""In-memory sessions: fast, gone on restart.

Messages are copied once, when they are stored; readers share the stored objects (a stored message
is never changed in place), so reading a long conversation costs a list copy, not a deep copy.
"""

from __future__ import annotations

from atoll.messages import Message
from atoll.sessions.store import Cursor, SessionRecord, SessionSummary


def _copies(messages: list[Message]) -> list[Message]:
    return [m.model_copy(deep=True) for m in messages]


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, SessionRecord] = {}

    async def get(self, session_id: str) -> SessionRecord | None:
        record = self._records.get(session_id)
        if record is None:
            return None
        return SessionRecord(record.id, list(record.messages), record.owner, record.created, record.updated)

    async def put(self, record: SessionRecord) -> None:
        self._records[record.id] = SessionRecord(record.id, _copies(record.messages), record.owner,
                                                 record.created, record.updated)

    async def append(self, record: SessionRecord, added: list[Message]) -> None:
        stored = self._records.get(record.id)
        if stored is None:  # deleted meanwhile: what the caller holds is the whole transcript
            await self.put(record)
            return
        stored.messages.extend(_copies(added))
        stored.updated = record.updated

    async def delete(self, session_id: str) -> bool:
        return self._records.pop(session_id, None) is not None

    async def count_since(self, cutoff: float) -> int:
        return sum(1 for r in self._records.values() if r.updated >= cutoff)

    async def delete_before(self, cutoff: float) -> int:
        stale = [key for key, r in self._records.items() if r.updated < cutoff]
        for key in stale:
            del self._records[key]
        return len(stale)

    async def page(self, owner: str | None, since: float, below: Cursor, limit: int) -> list[SessionSummary]:
        chosen = sorted((r for r in self._records.values()
                         if r.updated >= since and (r.updated, r.id) < below and owner in (None, r.owner)),
                        key=lambda r: (r.updated, r.id), reverse=True)[:limit]
        return [SessionSummary(r.id, r.created, r.updated, sum(m.role == "user" for m in r.messages))
                for r in chosen]

    async def aclose(self) -> None:
        self._records.clear()
