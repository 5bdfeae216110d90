"""Session semantics on top of a store: one writer per session, expiry, history merging."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from itertools import islice
from operator import is_
from typing import TYPE_CHECKING

from atoll.client_json import parse_json
from atoll.errors import ConfigError, NotFound, RequestError
from atoll.messages import Message
from atoll.sessions.store import NO_CURSOR, Cursor, SessionRecord, SessionStore, SessionSummary, SharedStore

if TYPE_CHECKING:
    from atoll.config import AgentConfig

logger = logging.getLogger(__name__)


def open_store(config: AgentConfig) -> SessionStore:
    server = config.server
    if server.session_store == "memory":
        from atoll.sessions.memory import MemoryStore

        return MemoryStore()
    if server.session_store == "redis":
        from atoll.sessions.redis import RedisStore

        if not server.session_url:
            raise ConfigError('session_store = "redis" needs session_url (or ATOLL_SESSION_URL)',
                              path=str(config.source) if config.source else None, field="server.session_url")
        timeout_s = server.session_timeout_minutes * 60
        return RedisStore(server.session_url, config.agent.name, keep_s=2 * timeout_s + 60,
                          wait_timeout_s=server.request_timeout)
    from atoll.sessions.paths import session_file
    from atoll.sessions.sqlite import SqliteStore

    return SqliteStore(session_file(config))


def encode_cursor(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(json.dumps([cursor[0], cursor[1]]).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    try:
        updated, session_id = parse_json(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return float(updated), str(session_id)
    except (ValueError, TypeError) as exc:
        raise RequestError(f"invalid cursor {text[:40]!r}: use the next_cursor of a previous page") from exc


def _key(message: Message) -> tuple[str, str]:
    return (message.role, message.content)


def _authored(message: Message) -> bool:
    """A message a client authors and resends verbatim: user, system or client tool result."""
    return message.role != "assistant" and not message.internal


def new_messages(stored: list[Message], incoming: list[Message]) -> list[Message]:
    """The part of ``incoming`` that the session does not hold yet.

    A client either sends only its new turn, or resends the whole conversation. The rule:
    ``incoming`` is a resend when the messages it authored (every role but ``assistant``) begin
    with all those the session holds, in order and equal in role, content and images, **and**
    something follows the last of them; then what follows it is new (assistant turns resent right
    after it are the client's copy of our replies, which lack our internal tool rounds, and are
    dropped). Otherwise all of ``incoming`` is new: a repeated identical message (``"yes"`` twice)
    is a new turn.

    ``stored`` is read only as far as ``incoming`` could match it: a client that sends just its new
    turn costs a look at the session's first messages, not at the whole transcript.
    """
    # One more than ``incoming`` authored is enough: then it cannot hold them all, and is all new.
    known = list(islice(filter(_authored, stored), sum(map(_authored, incoming)) + 1))
    if not known:
        return incoming
    seen = 0
    for index, message in enumerate(incoming):
        if not _authored(message):
            continue
        if seen < len(known) and _key(message) == _key(known[seen]):
            seen += 1
            if seen == len(known):
                rest = incoming[index + 1:]
                if not rest:
                    return incoming
                while rest and rest[0].role == "assistant":
                    rest = rest[1:]
                return rest
            continue
        break
    return incoming


def _extends(messages: list[Message], loaded: list[Message]) -> bool:
    """True when ``messages`` is ``loaded`` (the very same objects) with messages added at the end."""
    return len(messages) >= len(loaded) and all(map(is_, loaded, messages))


class _Gate:
    """One session's lock and how many requests hold or wait for it (the entry goes with the last)."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class SessionManager:
    def __init__(self, store: SessionStore, timeout_minutes: float) -> None:
        self.store = store
        self.timeout_minutes = timeout_minutes
        self._gates: dict[str, _Gate] = {}

    @property
    def timeout_s(self) -> float:
        return self.timeout_minutes * 60

    @asynccontextmanager
    async def _lock(self, session_id: str) -> AsyncIterator[None]:
        """This process's lock on the session, kept only while a request holds or awaits it."""
        gate = self._gates.get(session_id)
        if gate is None:
            gate = self._gates[session_id] = _Gate()
        gate.users += 1
        try:
            async with gate.lock:
                yield
        finally:
            gate.users -= 1
            if not gate.users:
                del self._gates[session_id]

    def _shared_lock(self, session_id: str) -> AbstractAsyncContextManager[None]:
        """The lock other processes honour too (after the local one, so a process queues its own
        turns in memory and only one of them waits on the store)."""
        if isinstance(self.store, SharedStore):
            return self.store.lock(session_id)
        return nullcontext()

    async def _live(self, session_id: str, owner: str) -> SessionRecord | None:
        """The session if it exists, has not expired, and belongs to ``owner``.

        A session created with another API key is reported as not found, not as forbidden, so a
        key cannot even learn that the id exists.
        """
        record = await self.store.get(session_id)
        if record is None:
            return None
        if record.owner != owner:
            raise NotFound(f"session '{session_id}' not found")
        if record.updated < time.time() - self.timeout_s:
            await self.store.delete(session_id)
            return None
        return record

    @asynccontextmanager
    async def open(self, session_id: str, owner: str = "") -> AsyncIterator[SessionRecord]:
        """Hold the session for one request: concurrent requests on it queue up, never interleave.

        The caller appends to ``record.messages``; what it appended is saved even when the request
        fails or the client goes away, so a retry continues from the same transcript. Only what
        was appended is written (``store.append``); a transcript changed otherwise is rewritten.
        """
        async with self._lock(session_id), self._shared_lock(session_id):
            record = await self._live(session_id, owner)
            loaded: list[Message] | None = None
            if record is None:
                now = time.time()
                record = SessionRecord(session_id, [], owner, now, now)
            else:
                loaded = list(record.messages)
            try:
                yield record
            finally:
                record.updated = time.time()
                if loaded is not None and _extends(record.messages, loaded):
                    await self.store.append(record, record.messages[len(loaded):])
                else:
                    await self.store.put(record)

    async def get(self, session_id: str, owner: str = "") -> SessionRecord:
        record = await self._live(session_id, owner)
        if record is None:
            raise NotFound(f"session '{session_id}' not found")
        return record

    async def delete(self, session_id: str, owner: str = "") -> None:
        """Waits for a turn in progress on the session, so its save cannot bring the session back."""
        async with self._lock(session_id), self._shared_lock(session_id):
            await self.get(session_id, owner)
            await self.store.delete(session_id)

    async def active_count(self) -> int:
        return await self.store.count_since(time.time() - self.timeout_s)

    async def page(self, owner: str, limit: int, cursor: str | None) -> tuple[list[SessionSummary], str | None]:
        """One page of ``owner``'s live sessions, newest first, and the cursor of the next page
        (None on the last). Raises ``RequestError`` for a cursor this server did not give out."""
        below = decode_cursor(cursor) if cursor else NO_CURSOR
        found = await self.store.page(owner, time.time() - self.timeout_s, below, limit + 1)
        more = len(found) > limit
        found = found[:limit]
        return found, encode_cursor((found[-1].updated, found[-1].id)) if more else None

    async def cleanup(self) -> int:
        removed = await self.store.delete_before(time.time() - self.timeout_s)
        if removed:
            logger.info("cleaned up %d expired session(s)", removed)
        return removed

    async def cleanup_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.cleanup()
            except Exception:
                logger.exception("session cleanup failed")
