"""Sessions in Redis, so any replica or process of an agent continues any conversation.

Layout (``P`` = ``atoll:<agent name>:``, so agents can share one database)::

    P session:<id>   a JSON document {owner, created, updated}, with a TTL well past expiry
    P messages:<id>  a list of the session's messages, one JSON document each, with the same TTL
                     (a turn appends its messages; the transcript is never rewritten)
    P sessions       a sorted set of session ids scored by ``updated`` (counting and expiry)
    P lock:<id>      the cross-process lock one turn holds (redis-py's Lock: SET NX PX + Lua release)

Expiry follows the session manager exactly as with SQLite: a session last updated longer than the
timeout ago is gone. The key's own TTL (twice the timeout plus a minute) only bounds memory when no
server is left running to clean up. A document written before messages had a list of their own
holds them itself; it is read as is and rewritten in the new layout by its next turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from pydantic import TypeAdapter
from redis.asyncio.lock import Lock
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError
from redis.exceptions import TimeoutError as RedisTimeoutError

from atoll.errors import AtollError, NotReady
from atoll.messages import Message
from atoll.sessions.store import Cursor, SessionRecord, SessionSummary

logger = logging.getLogger(__name__)

_MESSAGES = TypeAdapter(list[Message])


def _encoded(messages: list[Message]) -> list[str]:
    return [json.dumps(m.model_dump(mode="json", exclude_none=True), ensure_ascii=False) for m in messages]

#: Removes the sessions of the index scored below ARGV[1], and their documents, in one atomic step.
_DELETE_BEFORE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for _, id in ipairs(ids) do
    redis.call('DEL', ARGV[2] .. id, ARGV[3] .. id)
    redis.call('ZREM', KEYS[1], id)
end
return #ids
"""


#: Appends ARGV[5..] to a session's messages and saves its head, in one atomic step; 0 (nothing
#: done) when the session is gone or its document still holds its messages (the old layout).
_APPEND = """
local head = redis.call('GET', KEYS[1])
if not head or string.find(head, '"messages"', 1, true) then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 5, #ARGV do
    redis.call('RPUSH', KEYS[2], ARGV[i])
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
return 1
"""


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}{port}", parts.path, parts.query, parts.fragment))


class SessionBusy(AtollError):
    """Another turn on the session held it for longer than a request may wait."""

    status = 409


#: Index entries read per round trip while listing sessions.
PAGE_BATCH = 200


class RedisStore:
    def __init__(self, url: str, namespace: str, *, keep_s: float, lock_timeout_s: float = 30.0,
                 wait_timeout_s: float = 600.0) -> None:
        self.url = redacted(url)
        self._client: aioredis.Redis = aioredis.Redis.from_url(url, socket_connect_timeout=5)
        self._prefix = f"atoll:{namespace}:"
        self._index = self._prefix + "sessions"
        self._keep_ms = max(1, int(keep_s * 1000))
        self._lock_timeout_s = lock_timeout_s
        self._wait_timeout_s = wait_timeout_s
        self._delete_before = self._client.register_script(_DELETE_BEFORE)
        self._append = self._client.register_script(_APPEND)

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}session:{session_id}"

    def _messages_key(self, session_id: str) -> str:
        return f"{self._prefix}messages:{session_id}"

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """Redis being down is a 503 naming the store (never its password), not a traceback."""
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise NotReady(f"session store {self.url} is unreachable: {exc}") from exc

    async def get(self, session_id: str) -> SessionRecord | None:
        with self._reachable():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.get(self._key(session_id))
                pipe.lrange(self._messages_key(session_id), 0, -1)
                raw, lines = await pipe.execute()
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(raw)
        if "messages" in data:  # written before messages had a list of their own
            messages = _MESSAGES.validate_python(data["messages"])
        else:
            messages = _MESSAGES.validate_json(b"[" + b",".join(lines) + b"]")
        return SessionRecord(session_id, messages, data["owner"], data["created"], data["updated"])

    def _head(self, record: SessionRecord) -> str:
        return json.dumps({"owner": record.owner, "created": record.created, "updated": record.updated})

    async def put(self, record: SessionRecord) -> None:
        lines = _encoded(record.messages)
        with self._reachable():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(self._key(record.id), self._head(record), px=self._keep_ms)
                pipe.delete(self._messages_key(record.id))
                if lines:
                    pipe.rpush(self._messages_key(record.id), *lines)
                    pipe.pexpire(self._messages_key(record.id), self._keep_ms)
                pipe.zadd(self._index, {record.id: record.updated})
                await pipe.execute()

    async def append(self, record: SessionRecord, added: list[Message]) -> None:
        """One round trip, as ``put``: the script appends unless the session is gone or still in
        the old layout, in which case the whole record is stored."""
        with self._reachable():
            appended = await self._append(
                keys=[self._key(record.id), self._messages_key(record.id), self._index],
                args=[self._head(record), self._keep_ms, record.id, repr(record.updated), *_encoded(added)])
        if not appended:
            await self.put(record)

    async def delete(self, session_id: str) -> bool:
        with self._reachable():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(session_id))
                pipe.delete(self._messages_key(session_id))
                pipe.zrem(self._index, session_id)
                deleted, _, _ = await pipe.execute()
        return int(deleted) > 0

    async def count_since(self, cutoff: float) -> int:
        with self._reachable():
            return int(await self._client.zcount(self._index, cutoff, "+inf"))

    async def delete_before(self, cutoff: float) -> int:
        with self._reachable():
            return int(await self._delete_before(keys=[self._index], args=[
                repr(cutoff), self._prefix + "session:", self._prefix + "messages:"]))

    async def page(self, owner: str | None, since: float, below: Cursor, limit: int) -> list[SessionSummary]:
        """Walks the index newest first in batches, reading each candidate's head (for its owner)
        and its messages (to count user turns): a page costs a few round trips."""
        found: list[SessionSummary] = []
        top: float | str = "+inf" if below[0] == float("inf") else repr(below[0])
        offset = 0
        with self._reachable():
            while len(found) < limit:
                batch = await self._client.zrevrangebyscore(self._index, top, since, start=offset,
                                                            num=PAGE_BATCH, withscores=True)
                if not batch:
                    break
                offset += len(batch)
                pairs = cast(list[tuple[bytes, float]], batch)  # withscores=True: (member, score)
                ids = sorted(((float(score), raw.decode()) for raw, score in pairs), reverse=True)
                ids = [(updated, sid) for updated, sid in ids if (updated, sid) < below]
                async with self._client.pipeline(transaction=False) as pipe:
                    for _, sid in ids:
                        pipe.get(self._key(sid))
                        pipe.lrange(self._messages_key(sid), 0, -1)
                    answers = await pipe.execute()
                for (updated, sid), raw, lines in zip(ids, answers[::2], answers[1::2], strict=True):
                    if raw is None:
                        continue
                    head: dict[str, Any] = json.loads(raw)
                    if owner is not None and head.get("owner") != owner:
                        continue
                    messages = head.get("messages") or [json.loads(line) for line in lines]
                    turns = sum(1 for m in messages if m.get("role") == "user")
                    found.append(SessionSummary(sid, float(head["created"]), updated, turns))
        return sorted(found, key=lambda e: (e.updated, e.id), reverse=True)[:limit]

    @asynccontextmanager
    async def lock(self, session_id: str) -> AsyncIterator[None]:
        """Hold the session across every process sharing this Redis for one turn.

        The lock expires ``lock_timeout_s`` after its holder dies; while the holder lives a task
        renews it, so a long turn keeps it. A waiter gives up after ``wait_timeout_s`` with a 409.
        """
        lock = Lock(self._client, f"{self._prefix}lock:{session_id}", timeout=self._lock_timeout_s,
                    sleep=0.02, blocking_timeout=self._wait_timeout_s, thread_local=False)
        with self._reachable():
            acquired = await lock.acquire()
        if not acquired:
            raise SessionBusy(f"session '{session_id}' is busy with another turn; try again later")
        renewer = asyncio.create_task(self._keep_alive(lock, session_id))
        try:
            yield
        finally:
            renewer.cancel()
            with suppress(asyncio.CancelledError):
                await renewer
            with suppress(LockError, RedisConnectionError, RedisTimeoutError):
                await lock.release()

    async def _keep_alive(self, lock: Lock, session_id: str) -> None:
        while True:
            await asyncio.sleep(self._lock_timeout_s / 3)
            try:
                await lock.reacquire()
            except (LockError, RedisConnectionError, RedisTimeoutError) as exc:
                logger.warning("lost the lock on session %s: %s", session_id, exc)
                return

    async def aclose(self) -> None:
        await self._client.aclose()
