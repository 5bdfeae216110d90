"""Sessions in a SQLite file, so conversations survive a server restart.

Every statement is a sub-millisecond primary-key or indexed operation on a local file, so the
connection is used directly from the event loop rather than paying a thread hop per call.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from pydantic import TypeAdapter

from atoll.messages import Message
from atoll.sessions.migrations import migrate
from atoll.sessions.store import SessionRecord

_MESSAGES = TypeAdapter(list[Message])


class SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        migrate(self._db)

    async def get(self, session_id: str) -> SessionRecord | None:
        row = self._db.execute(
            "SELECT id, owner, created, updated, messages FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        if row is None:
            return None
        return SessionRecord(row[0], _MESSAGES.validate_json(row[4]), row[1], row[2], row[3])

    async def put(self, record: SessionRecord) -> None:
        payload = json.dumps([m.model_dump(exclude_none=True) for m in record.messages])
        self._db.execute(
            "INSERT INTO sessions (id, owner, created, updated, messages) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET updated = excluded.updated, messages = excluded.messages",
            (record.id, record.owner, record.created, record.updated, payload),
        )

    async def delete(self, session_id: str) -> bool:
        return self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0

    async def count_since(self, cutoff: float) -> int:
        return int(self._db.execute("SELECT count(*) FROM sessions WHERE updated >= ?", (cutoff,)).fetchone()[0])

    async def delete_before(self, cutoff: float) -> int:
        return self._db.execute("DELETE FROM sessions WHERE updated < ?", (cutoff,)).rowcount

    async def aclose(self) -> None:
        self._db.close()
