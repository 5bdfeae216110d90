"""Agent state changes, fanned out to the dashboard's live streams (``GET /agents/events``).

Every change is queued for every subscriber, so a page sees each state an agent passes through
(``restarting`` -> ``starting`` -> ``running``), not only where it ended up. Subscribers and their
queues are bounded; a page too slow to keep up loses changes, not memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from atoll.deploy.errors import ManagementError

MAX_SUBSCRIBERS = 32
QUEUE_LENGTH = 256

#: What a subscriber's queue carries: (agent, state), or None when the server is closing.
Change = tuple[str, str] | None


class StateFeed:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Change]] = set()
        self.closed = False

    def publish(self, name: str, state: str) -> None:
        for queue in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait((name, state))

    def close(self) -> None:
        """End every stream (the server is stopping; open streams would hold its shutdown)."""
        self.closed = True
        for queue in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    def check_room(self) -> None:
        if len(self._subscribers) >= MAX_SUBSCRIBERS:
            raise ManagementError(f"too many live dashboard streams (limit {MAX_SUBSCRIBERS})",
                                  error_code="TOO_MANY_STREAMS", status=429)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Change]]:
        self.check_room()
        queue: asyncio.Queue[Change] = asyncio.Queue(QUEUE_LENGTH)
        if self.closed:
            queue.put_nowait(None)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
