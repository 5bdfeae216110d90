"""In-memory sessions: fast, gone on restart."""

from __future__ import annotations

import copy

from atoll.sessions.store import SessionRecord


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, SessionRecord] = {}

    async def get(self, session_id: str) -> SessionRecord | None:
        record = self._records.get(session_id)
        return copy.deepcopy(record) if record else None

    async def put(self, record: SessionRecord) -> None:
        self._records[record.id] = copy.deepcopy(record)

    async def delete(self, session_id: str) -> bool:
        return self._records.pop(session_id, None) is not None

    async def count_since(self, cutoff: float) -> int:
        return sum(1 for r in self._records.values() if r.updated >= cutoff)

    async def delete_before(self, cutoff: float) -> int:
        stale = [key for key, r in self._records.items() if r.updated < cutoff]
        for key in stale:
            del self._records[key]
        return len(stale)

    async def aclose(self) -> None:
        self._records.clear()
