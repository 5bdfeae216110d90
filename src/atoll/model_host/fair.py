"""Fair turns on the one model: a generation at a time, handed round-robin between callers.

llama.cpp already uses every core for one generation (``n_threads``), so running two at once only
splits the same CPU (and its OpenMP teams slow each other down, see ``atoll.providers.llamacpp``).
What matters with many agents is who goes next: a FIFO lets one busy agent with ten queued
requests keep another waiting behind all ten. Here each caller has its own queue and the turn goes
to the next caller in rotation that is waiting, so every waiting agent gets one generation per round.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairQueue:
    def __init__(self) -> None:
        #: Callers with requests waiting, in rotation order (a dict keeps insertion order).
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._busy = False
        #: Turns granted per caller since start.
        self.served: Counter[str] = Counter()

    @asynccontextmanager
    async def turn(self, caller: str) -> AsyncIterator[None]:
        """Hold the model for ``caller`` (waiting for its turn); a waiter that is cancelled leaves
        the queue, a turn that ends hands the model to the next caller in rotation."""
        await self._acquire(caller)
        try:
            yield
        finally:
            self._release()

    def waiting(self) -> dict[str, int]:
        return {caller: len(queue) for caller, queue in self._waiting.items()}

    @property
    def busy(self) -> bool:
        return self._busy

    async def _acquire(self, caller: str) -> None:
        if not self._busy:
            self._busy = True
            self.served[caller] += 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(caller, deque()).append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # the turn came just as the caller gave up: pass it on
            else:
                self._forget(caller, granted)
            raise

    def _release(self) -> None:
        for caller, queue in self._waiting.items():
            granted = queue.popleft()
            # The caller served goes to the back of the rotation (if it still waits at all).
            del self._waiting[caller]
            if queue:
                self._waiting[caller] = queue
            self.served[caller] += 1
            granted.set_result(None)
            return
        self._busy = False

    def _forget(self, caller: str, granted: asyncio.Future[None]) -> None:
        queue = self._waiting.get(caller)
        if queue is None:
            return
        queue.remove(granted)
        if not queue:
            del self._waiting[caller]
