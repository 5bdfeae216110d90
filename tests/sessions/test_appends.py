"""A turn appends its messages to the stored transcript (every store), the manager writes only what
a turn added, sessions written before the append layout still read back, and thousands of sessions
are counted and cleaned up correctly. (How fast: benchmarks/bench_sessions.py.)"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from atoll.messages import Message, ToolCall
from atoll.sessions import SessionManager, SessionRecord, SessionStore
from atoll.sessions.memory import MemoryStore
from atoll.sessions.sqlite import SqliteStore
from tests.sessions.test_store_contract import EVERY_STORE, new_store, record, store

__all__ = ["new_store", "store"]  # fixtures, imported for pytest


def texts(got: SessionRecord | None) -> list[str]:
    assert got is not None
    return [m.content for m in got.messages]


@EVERY_STORE
@pytest.mark.anyio
async def test_append_adds_to_what_is_stored(store: SessionStore) -> None:
    await store.put(record("s", 10.0, "a", "b"))
    stored = await store.get("s")
    assert stored is not None
    call = ToolCall(name="add", arguments={"a": 1})
    added = [Message(role="user", content="c"), Message(role="assistant", content="", tool_calls=[call])]
    stored.messages.extend(added)
    stored.updated = 20.0
    await store.append(stored, added)
    got = await store.get("s")
    assert got is not None
    assert texts(got) == ["a", "b", "c", ""]
    assert got.messages[3].tool_calls == [call]
    assert (got.created, got.updated) == (10.0, 20.0)
    assert await store.count_since(15.0) == 1


@EVERY_STORE
@pytest.mark.anyio
async def test_append_to_a_session_removed_meanwhile_stores_it_whole(store: SessionStore) -> None:
    await store.put(record("s", 10.0, "a"))
    held = await store.get("s")
    assert held is not None
    assert await store.delete_before(11.0) == 1  # expiry cleanup while a turn was running
    added = [Message(role="assistant", content="b")]
    held.messages.extend(added)
    held.updated = 12.0
    await store.append(held, added)
    assert texts(await store.get("s")) == ["a", "b"]


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []

    async def put(self, record: SessionRecord) -> None:
        self.calls.append(("put", len(record.messages)))
        await super().put(record)

    async def append(self, record: SessionRecord, added: list[Message]) -> None:
        self.calls.append(("append", len(added)))
        await super().append(record, added)


@pytest.mark.anyio
async def test_the_manager_writes_only_what_a_turn_added() -> None:
    counting = CountingStore()
    manager = SessionManager(counting, timeout_minutes=30)
    async with manager.open("s") as opened:
        opened.messages += [Message(role="user", content="1"), Message(role="assistant", content="2")]
    async with manager.open("s") as opened:
        opened.messages += [Message(role="user", content="3"), Message(role="assistant", content="4")]
    async with manager.open("s") as opened:  # a turn that rewrites history is saved whole
        opened.messages[:] = [Message(role="user", content="only")]
    assert counting.calls == [("put", 2), ("append", 2), ("put", 1)]
    assert texts(await manager.get("s")) == ["only"]
    assert manager._gates == {}  # no lock is kept for a session nobody is using


def old_layout_db(path: Path) -> None:
    """A sessions file as the first schema wrote it: the transcript as one JSON array per row."""
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied REAL NOT NULL);
        INSERT INTO _migrations VALUES ('001_sessions', 0);
        CREATE TABLE sessions (id TEXT PRIMARY KEY, owner TEXT NOT NULL DEFAULT '', created REAL NOT NULL,
                               updated REAL NOT NULL, messages TEXT NOT NULL);
        CREATE INDEX sessions_updated ON sessions (updated);
        INSERT INTO sessions VALUES ('old', 'fp', 1.0, 2.0,
            '[{"role":"user","content":"hi"},{"role":"assistant","content":"hello","internal":true}]');
    """)
    db.commit()
    db.close()


@pytest.mark.anyio
async def test_sessions_in_the_old_sqlite_layout_are_migrated(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    old_layout_db(path)
    store = SqliteStore(path)
    try:
        got = await store.get("old")
        assert got is not None
        assert texts(got) == ["hi", "hello"] and got.messages[1].internal
        assert (got.owner, got.created, got.updated) == ("fp", 1.0, 2.0)
        added = [Message(role="user", content="again")]
        got.messages.extend(added)
        await store.append(got, added)
        assert texts(await store.get("old")) == ["hi", "hello", "again"]
    finally:
        await store.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_thousands_of_sessions_are_counted_and_cleaned_up(kind: str, tmp_path: Path) -> None:
    store: SessionStore = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "sessions.db")
    manager = SessionManager(store, timeout_minutes=1)
    now = time.time()
    try:
        for index in range(2000):  # half of them expired
            updated = now - 3600 if index % 2 else now
            await store.put(record(f"s{index}", updated, "q", "a"))
        assert await manager.active_count() == 1000
        assert await manager.cleanup() == 1000
        assert await manager.active_count() == 1000
        assert await store.get("s1") is None and texts(await store.get("s0")) == ["q", "a"]
        if isinstance(store, SqliteStore):  # the expired sessions' messages went with them
            rows = sqlite3.connect(store.path).execute("SELECT count(*) FROM messages").fetchone()[0]
            assert rows == 2000
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_a_parsed_transcript_is_reused_only_while_the_file_agrees(tmp_path: Path) -> None:
    """Two stores on one file, as two processes of one agent (a restart's old and new server)."""
    first, second = SqliteStore(tmp_path / "sessions.db"), SqliteStore(tmp_path / "sessions.db")
    try:
        await first.put(record("s", 10.0, "a"))
        assert texts(await first.get("s")) == ["a"]  # parsed and kept by the first store
        other = await second.get("s")
        assert other is not None
        added = [Message(role="assistant", content="from the other process")]
        other.messages.extend(added)
        other.updated = 20.0
        await second.append(other, added)
        assert texts(await first.get("s")) == ["a", "from the other process"]
        same_time = [Message(role="user", content="in the same clock tick")]
        other.messages.extend(same_time)
        await second.append(other, same_time)  # updated is still 20.0: the message count tells
        assert texts(await first.get("s")) == ["a", "from the other process", "in the same clock tick"]
        await second.put(record("s", 30.0, "rewritten"))
        assert texts(await first.get("s")) == ["rewritten"]
        await second.delete("s")
        assert await first.get("s") is None
    finally:
        await first.aclose()
        await second.aclose()
