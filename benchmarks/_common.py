"""Shared helpers for benchmarks: start servers, drive load, summarise latencies."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.servers import free_port, run_agent_server, server_env, wait_healthy, write_agent  # noqa: E402

__all__ = ["REPO", "LoadResult", "drive", "free_port", "percentile", "run_agent_server", "server_env",
           "wait_healthy", "write_agent"]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def summary(self) -> str:
        p50, p99 = percentile(self.latencies, 0.5) * 1000, percentile(self.latencies, 0.99) * 1000
        mean = statistics.mean(self.latencies) * 1000
        return f"{self.rps:8.1f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   mean {mean:6.2f} ms"


async def drive(url: str, body: dict, *, total: int, concurrency: int, timeout: float = 120) -> LoadResult:
    """POST ``body`` to ``url`` ``total`` times from ``concurrency`` workers sharing one client."""
    latencies: list[float] = []
    remaining = total
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                response = await client.post(url, json=body)
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(len(latencies), elapsed, latencies)
