"""One contract for every session store: memory, SQLite and Redis (a real redis-server).

The store tests drive each backend directly; the manager tests drive the same semantics (expiry,
owners, one turn at a time) through :class:`SessionManager` on top of each store.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest

from atoll.errors import NotFound
from atoll.messages import Message, ToolCall
from atoll.sessions import SessionManager, SessionRecord, SessionStore
from atoll.sessions.memory import MemoryStore
from atoll.sessions.redis import RedisStore
from atoll.sessions.sqlite import SqliteStore

StoreFactory = Callable[[], SessionStore]

#: With ``@pytest.mark.anyio`` on the test itself: anyio's collection only sees a mark set there, and
#: without it rebuilds the item for its backend and drops these parameters.
EVERY_STORE = pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])


@pytest.fixture
def new_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A factory of stores of one kind; stores from one factory share their data (same file,
    same Redis namespace), as two processes of one agent would."""
    if kind == "memory":
        shared = MemoryStore()
        return lambda: shared
    if kind == "sqlite":
        return lambda: SqliteStore(tmp_path / "sessions.db")
    url: str = request.getfixturevalue("redis_url")
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    return lambda: RedisStore(url, namespace, keep_s=3600)


@pytest.fixture
async def store(new_store: StoreFactory) -> AsyncIterator[SessionStore]:
    opened = new_store()
    yield opened
    await opened.aclose()


def record(session_id: str, updated: float, *contents: str, owner: str = "") -> SessionRecord:
    messages = [Message(role="user" if i % 2 == 0 else "assistant", content=c) for i, c in enumerate(contents)]
    return SessionRecord(session_id, messages, owner, updated, updated)


@EVERY_STORE
@pytest.mark.anyio
async def test_a_record_comes_back_whole(store: SessionStore) -> None:
    call = ToolCall(name="add", arguments={"a": 1, "b": [2, 3]})
    messages = [
        Message(role="system", content="sys"),
        Message(role="user", content="héllo ✓"),
        Message(role="assistant", content="", tool_calls=[call], internal=True),
        Message(role="tool", content="3", tool_call_id=call.id, tool_name="add", internal=True),
        Message(role="assistant", content="three", thinking="adding"),
    ]
    await store.put(SessionRecord("s1", messages, "owner-fp", 100.0, 101.5))
    got = await store.get("s1")
    assert got == SessionRecord("s1", messages, "owner-fp", 100.0, 101.5)
    assert await store.get("missing") is None


@EVERY_STORE
@pytest.mark.anyio
async def test_the_caller_gets_a_copy(store: SessionStore) -> None:
    await store.put(record("s", 1.0, "a"))
    got = await store.get("s")
    assert got is not None
    got.messages.append(Message(role="user", content="not saved"))
    again = await store.get("s")
    assert again is not None and [m.content for m in again.messages] == ["a"]


@EVERY_STORE
@pytest.mark.anyio
async def test_put_replaces_messages_and_time(store: SessionStore) -> None:
    await store.put(record("s", 10.0, "a"))
    await store.put(SessionRecord("s", [Message(role="user", content="a"), Message(role="assistant", content="b")],
                                  "", 10.0, 20.0))
    got = await store.get("s")
    assert got is not None and [m.content for m in got.messages] == ["a", "b"] and got.updated == 20.0


@EVERY_STORE
@pytest.mark.anyio
async def test_delete_says_whether_there_was_one(store: SessionStore) -> None:
    await store.put(record("s", 1.0, "a"))
    assert await store.delete("s") is True
    assert await store.get("s") is None
    assert await store.delete("s") is False


@EVERY_STORE
@pytest.mark.anyio
async def test_count_and_delete_by_last_update(store: SessionStore) -> None:
    for index, updated in enumerate([100.0, 200.0, 300.0, 400.0]):
        await store.put(record(f"s{index}", updated, "x"))
    assert await store.count_since(200.0) == 3  # at or after the cutoff
    assert await store.count_since(401.0) == 0
    assert await store.delete_before(300.0) == 2  # strictly before
    assert [await store.get(f"s{i}") is None for i in range(4)] == [True, True, False, False]
    assert await store.count_since(0.0) == 2
    assert await store.delete_before(300.0) == 0


@EVERY_STORE
@pytest.mark.anyio
async def test_a_second_handle_sees_the_same_sessions(new_store: StoreFactory) -> None:
    first, second = new_store(), new_store()
    try:
        await first.put(record("shared", 5.0, "from the first"))
        got = await second.get("shared")
        assert got is not None and got.messages[0].content == "from the first"
        assert await second.delete("shared") is True
        assert await first.get("shared") is None
    finally:
        await first.aclose()
        if second is not first:
            await second.aclose()


# ---- the same semantics through the session manager ------------------------------------------


@EVERY_STORE
@pytest.mark.anyio
async def test_expired_sessions_are_gone(store: SessionStore) -> None:
    manager = SessionManager(store, timeout_minutes=1)
    await store.put(record("old", time.time() - 61, "stale"))
    await store.put(record("fresh", time.time() - 30, "kept"))
    assert await manager.active_count() == 1
    with pytest.raises(NotFound):
        await manager.get("old")
    async with manager.open("old") as reopened:
        assert reopened.messages == []  # an expired id starts a new conversation
    await store.put(record("old", time.time() - 61, "stale"))
    assert await manager.cleanup() == 1
    assert (await manager.get("fresh")).messages[0].content == "kept"


@EVERY_STORE
@pytest.mark.anyio
async def test_a_session_belongs_to_the_key_that_made_it(store: SessionStore) -> None:
    manager = SessionManager(store, timeout_minutes=30)
    async with manager.open("mine", owner="key-a") as opened:
        opened.messages.append(Message(role="user", content="secret"))
    with pytest.raises(NotFound):
        await manager.get("mine", owner="key-b")
    with pytest.raises(NotFound):
        async with manager.open("mine", owner="key-b"):
            pass
    with pytest.raises(NotFound):
        await manager.delete("mine", owner="key-b")
    assert (await manager.get("mine", owner="key-a")).messages[0].content == "secret"


@EVERY_STORE
@pytest.mark.anyio
async def test_turns_on_one_session_take_turns(new_store: StoreFactory) -> None:
    """Two managers stand for two processes where the store is shared (Redis); elsewhere they
    share one manager, as one process's requests do."""
    first = new_store()
    second = new_store()
    shared = isinstance(first, RedisStore)
    managers = [SessionManager(first, 30), SessionManager(second, 30) if shared else None]
    events: list[str] = []

    async def turn(index: int) -> None:
        manager = managers[index % 2] or managers[0]
        assert manager is not None
        async with manager.open("busy") as opened:
            events.append(f"start {index}")
            await anyio.sleep(0.02)
            opened.messages.append(Message(role="user", content=f"turn {index}"))
            events.append(f"end {index}")

    try:
        async with anyio.create_task_group() as group:
            for index in range(6):
                group.start_soon(turn, index)
        starts_and_ends = [e.split()[0] for e in events]
        assert starts_and_ends == ["start", "end"] * 6, events
        assert len((await managers[0].get("busy")).messages) == 6  # type: ignore[union-attr]
    finally:
        await first.aclose()
        if second is not first:
            await second.aclose()


@EVERY_STORE
@pytest.mark.anyio
async def test_pages_list_one_owners_live_sessions_newest_first(store: SessionStore) -> None:
    from atoll.sessions.store import NO_CURSOR

    now = time.time()
    for index in range(5):
        await store.put(record(f"s{index}", now - index, "hi", "hello", "again", owner="alice"))
    await store.put(record("bob-1", now, "hi", owner="bob"))
    await store.put(record("old", now - 10_000, "hi", owner="alice"))
    first = await store.page("alice", now - 100, NO_CURSOR, 2)
    assert [(e.id, e.turns) for e in first] == [("s0", 2), ("s1", 2)]
    rest = await store.page("alice", now - 100, (first[-1].updated, first[-1].id), 10)
    assert [e.id for e in rest] == ["s2", "s3", "s4"]
    assert {e.id for e in await store.page(None, now - 100, NO_CURSOR, 10)} == {"bob-1", "s0", "s1", "s2", "s3", "s4"}
