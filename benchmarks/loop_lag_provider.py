"""BENCHMARK FIXTURE, not part of atoll: the scripted test LLM plus a watch on the agent's event loop.

``benchmarks/bench_streams.py`` runs its agent with ``[llm] provider =
"benchmarks.loop_lag_provider:LoopLagProvider"``. Started in the agent's own event loop (the
provider's ``start``), a task sleeps :data:`TICK_S` again and again and records how late each wake-up
is: the event-loop lag every request on that loop waits through. The last message ``/loop-lag``
answers the figures so far as one JSON text (``max_ms``, ``p99_ms``, ``p50_ms``, ``samples``) and
clears them; anything else is the scripted LLM's answer (``tests/support/scripted.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from atoll.config import LLMConfig
from atoll.messages import Finished, ModelEvent, ModelRequest, TextDelta
from tests.support.scripted import ScriptedProvider

#: How often the watch wakes up (seconds); its lateness is the lag.
TICK_S = 0.01
REPORT = "/loop-lag"


class LoopLagProvider(ScriptedProvider):
    def __init__(self, config: LLMConfig) -> None:
        super().__init__(config)
        self._lags: list[float] = []
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await super().start()
        self._watch = asyncio.create_task(self._watch_loop())

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        await super().aclose()

    async def _watch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(TICK_S)
            self._lags.append(max(0.0, loop.time() - before - TICK_S))

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        if request.messages and request.messages[-1].content.strip() == REPORT:
            lags, self._lags = sorted(self._lags), []
            figures = {"samples": len(lags), "max_ms": lags[-1] * 1000 if lags else 0.0,
                       "p99_ms": lags[int(0.99 * (len(lags) - 1))] * 1000 if lags else 0.0,
                       "p50_ms": lags[len(lags) // 2] * 1000 if lags else 0.0}
            yield TextDelta(json.dumps(figures))
            yield Finished()
            return
        async for event in super().stream(request):
            yield event
