"""Sessions in a SQLite file, so conversations survive a server restart.

One row per session (owner, times) and one row per message, so a turn appends its few new messages
instead of rewriting the whole transcript, and a long conversation costs no more to save than a
short one. Every statement runs on the store's own worker thread, never on the event loop: a slow
disk (fsync of the WAL, a busy file) stalls that thread, not every other request.

The transcripts of the sessions used last are kept parsed, and reused while the file still says
what they say (the same last-update time and message count), so a turn on a long conversation
does not parse it all again. Checking is one indexed look-up, not a count of the rows: a session's
messages are numbered from 0 without gaps, so their count is the last number plus one. Another
process writing the session changes both, and the transcript is read afresh. Stored messages are
shared, never changed in place.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from pydantic import TypeAdapter

from atoll.messages import Message
from atoll.sessions.migrations import migrate
from atoll.sessions.store import Cursor, SessionRecord, SessionSummary

_MESSAGES = TypeAdapter(list[Message])
T = TypeVar("T")
#: How many parsed transcripts the store keeps.
RECENT_SESSIONS = 256


def _encoded(messages: list[Message]) -> list[str]:
    return [json.dumps(m.model_dump(mode="json", exclude_none=True), ensure_ascii=False) for m in messages]


class SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        migrate(self._db)
        #: One thread: the connection is used by one thread at a time, and writes are serialised.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atoll-sessions")
        #: id -> (updated, message count, messages); used on the worker thread only.
        self._recent: OrderedDict[str, tuple[float, int, list[Message]]] = OrderedDict()

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, work)

    async def get(self, session_id: str) -> SessionRecord | None:
        def read() -> SessionRecord | None:
            row = self._db.execute(
                "SELECT owner, created, updated, (SELECT coalesce(max(seq) + 1, 0) FROM messages "
                "WHERE session_id = ?) FROM sessions WHERE id = ?", (session_id, session_id)).fetchone()
            if row is None:
                self._recent.pop(session_id, None)
                return None
            owner, created, updated, count = row
            recent = self._recent.get(session_id)
            if recent is not None and recent[:2] == (updated, count):
                self._recent.move_to_end(session_id)
                return SessionRecord(session_id, list(recent[2]), owner, created, updated)
            lines = self._db.execute("SELECT body FROM messages WHERE session_id = ? ORDER BY seq",
                                     (session_id,)).fetchall()
            messages = _MESSAGES.validate_json("[" + ",".join(line[0] for line in lines) + "]")
            self._remember(session_id, updated, messages)
            return SessionRecord(session_id, messages, owner, created, updated)

        return await self._run(read)

    def _remember(self, session_id: str, updated: float, messages: list[Message]) -> None:
        self._recent[session_id] = (updated, len(messages), list(messages))
        self._recent.move_to_end(session_id)
        while len(self._recent) > RECENT_SESSIONS:
            self._recent.popitem(last=False)

    async def put(self, record: SessionRecord) -> None:
        messages = list(record.messages)

        def write() -> None:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._replace(record, messages)

        await self._run(write)

    async def append(self, record: SessionRecord, added: list[Message]) -> None:
        messages, added = list(record.messages), list(added)

        def write() -> None:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                exists = self._db.execute("SELECT 1 FROM sessions WHERE id = ?", (record.id,)).fetchone()
                if exists is None:  # removed meanwhile: store what the caller holds, all of it
                    self._replace(record, messages)
                    return
                self._upsert(record)
                start = int(self._db.execute("SELECT coalesce(max(seq) + 1, 0) FROM messages WHERE session_id = ?",
                                             (record.id,)).fetchone()[0])
                self._insert(record.id, start, added)
            if start + len(added) == len(messages):  # what is stored is exactly what the caller holds
                self._remember(record.id, record.updated, messages)
            else:
                self._recent.pop(record.id, None)

        await self._run(write)

    def _replace(self, record: SessionRecord, messages: list[Message]) -> None:
        self._upsert(record)
        self._db.execute("DELETE FROM messages WHERE session_id = ?", (record.id,))
        self._insert(record.id, 0, messages)
        self._remember(record.id, record.updated, messages)

    def _upsert(self, record: SessionRecord) -> None:
        self._db.execute(
            "INSERT INTO sessions (id, owner, created, updated) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET updated = excluded.updated",
            (record.id, record.owner, record.created, record.updated),
        )

    def _insert(self, session_id: str, start: int, messages: list[Message]) -> None:
        self._db.executemany("INSERT INTO messages (session_id, seq, body) VALUES (?, ?, ?)",
                             [(session_id, start + index, body) for index, body in enumerate(_encoded(messages))])

    async def delete(self, session_id: str) -> bool:
        def remove() -> bool:
            self._recent.pop(session_id, None)
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
                return self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0

        return await self._run(remove)

    async def count_since(self, cutoff: float) -> int:
        def count() -> int:
            return int(self._db.execute("SELECT count(*) FROM sessions WHERE updated >= ?", (cutoff,)).fetchone()[0])

        return await self._run(count)

    async def delete_before(self, cutoff: float) -> int:
        def remove() -> int:
            self._recent.clear()
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM messages WHERE session_id IN "
                                 "(SELECT id FROM sessions WHERE updated < ?)", (cutoff,))
                return int(self._db.execute("DELETE FROM sessions WHERE updated < ?", (cutoff,)).rowcount)

        return await self._run(remove)

    async def page(self, owner: str | None, since: float, below: Cursor, limit: int) -> list[SessionSummary]:
        def read() -> list[SessionSummary]:
            rows = self._db.execute(
                "SELECT s.id, s.created, s.updated, (SELECT count(*) FROM messages m WHERE m.session_id = s.id "
                "AND json_extract(m.body, '$.role') = 'user') FROM sessions s "
                "WHERE s.updated >= ? AND (? IS NULL OR s.owner = ?) "
                "AND (s.updated < ? OR (s.updated = ? AND s.id < ?)) "
                "ORDER BY s.updated DESC, s.id DESC LIMIT ?",
                (since, owner, owner, below[0], below[0], below[1], limit)).fetchall()
            return [SessionSummary(row[0], row[1], row[2], int(row[3])) for row in rows]

        return await self._run(read)

    async def aclose(self) -> None:
        await self._run(self._db.close)
        self._worker.shutdown(wait=True)
