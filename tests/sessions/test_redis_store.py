"""What only the Redis store has: a lock across processes with a timeout, agents sharing one
database, an unreachable server, a TTL that bounds memory; all against a real redis-server."""

from __future__ import annotations

import uuid

import anyio
import pytest
import redis.asyncio as aioredis

from atoll.errors import NotReady
from atoll.sessions import SessionManager, SessionRecord
from atoll.sessions.redis import RedisStore, SessionBusy, redacted
from tests.support.servers import free_port
from tests.support.waiting import wait_until_async


def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


async def test_a_dead_holders_lock_runs_out(redis_url: str) -> None:
    ns = namespace()
    store = RedisStore(redis_url, ns, keep_s=60, lock_timeout_s=0.6)
    async with aioredis.Redis.from_url(redis_url) as raw:
        # what a process that died mid-turn leaves behind: the lock key with its expiry
        await raw.set(f"atoll:{ns}:lock:s", "dead-process-token", px=600)
        started = anyio.current_time()
        async with store.lock("s"):
            waited = anyio.current_time() - started
            assert await raw.get(f"atoll:{ns}:lock:s") != b"dead-process-token"
    assert 0.3 < waited < 5
    await store.aclose()


async def test_a_long_turn_keeps_its_lock_and_a_waiter_gives_up_with_409(redis_url: str) -> None:
    ns = namespace()
    holder = RedisStore(redis_url, ns, keep_s=60, lock_timeout_s=1.5)
    waiter = RedisStore(redis_url, ns, keep_s=60, lock_timeout_s=1.5, wait_timeout_s=4.5)
    try:
        async with holder.lock("s"):
            # the turn outlasts the lock's timeout three times over; renewal keeps it held
            with pytest.raises(SessionBusy) as busy:
                async with waiter.lock("s"):
                    pass
            assert busy.value.status == 409 and "busy" in busy.value.message
        async with waiter.lock("s"):  # released at the end of the turn
            pass
    finally:
        await holder.aclose()
        await waiter.aclose()


async def test_agents_sharing_a_database_see_only_their_own_sessions(redis_url: str) -> None:
    alpha, beta = RedisStore(redis_url, namespace(), keep_s=60), RedisStore(redis_url, namespace(), keep_s=60)
    try:
        await alpha.put(SessionRecord("same-id", [], "", 1.0, 1.0))
        assert await beta.get("same-id") is None
        assert await beta.count_since(0) == 0 and await beta.delete_before(10) == 0
        assert await alpha.get("same-id") is not None
    finally:
        await alpha.aclose()
        await beta.aclose()


async def test_session_documents_carry_a_ttl_past_expiry(redis_url: str) -> None:
    ns = namespace()
    store = RedisStore(redis_url, ns, keep_s=120)
    manager = SessionManager(store, timeout_minutes=0.5)
    async with manager.open("s"):
        pass
    async with aioredis.Redis.from_url(redis_url) as raw:
        ttl = await raw.pttl(f"atoll:{ns}:session:s")
    assert 100_000 < ttl <= 120_000
    await store.aclose()


async def test_an_unreachable_redis_is_a_503_that_hides_the_password() -> None:
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    store = RedisStore(url, namespace(), keep_s=60)
    try:
        with pytest.raises(NotReady) as down:
            await store.get("s")
        assert down.value.status == 503 and "unreachable" in down.value.message
        assert "hunter2" not in down.value.message and "127.0.0.1" in down.value.message
    finally:
        await store.aclose()
    assert redacted(url) == url.replace("hunter2-secret", "***")


async def test_a_waiting_turn_starts_as_soon_as_the_holder_finishes(redis_url: str) -> None:
    ns = namespace()
    first, second = RedisStore(redis_url, ns, keep_s=60), RedisStore(redis_url, ns, keep_s=60)
    order: list[str] = []

    async def hold() -> None:
        async with first.lock("s"):
            order.append("first in")
            await anyio.sleep(0.3)
            order.append("first out")

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(hold)
            await wait_until_async(lambda: order == ["first in"], timeout=5, what="the first turn")
            async with second.lock("s"):
                order.append("second in")
        assert order == ["first in", "first out", "second in"]
    finally:
        await first.aclose()
        await second.aclose()
