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
        #: Callers with requests waiting, each with its own queue, in order of arrival.
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._busy = False
        #: When each caller was last given the model (a count of turns), for the rotation.
        self._last_turn: dict[str, int] = {}
        self._turns = 0
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
            self._granted(caller)
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
        """The next turn goes to the waiting caller served least recently (never served first,
        then the longest ago; ties in order of arrival): round-robin over the agents."""
        if not self._waiting:
            self._busy = False
            return
        caller = min(self._waiting, key=lambda name: self._last_turn.get(name, -1))
        queue = self._waiting[caller]
        granted = queue.popleft()
        if not queue:
            del self._waiting[caller]
        self._granted(caller)
        granted.set_result(None)

    def _granted(self, caller: str) -> None:
        self._turns += 1
        self._last_turn[caller] = self._turns
        self.served[caller] += 1

    def _forget(self, caller: str, granted: asyncio.Future[None]) -> None:
        queue = self._waiting.get(caller)
        if queue is None:
            return
        queue.remove(granted)
        if not queue:
            del self._waiting[caller]
