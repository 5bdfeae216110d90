"""Session turns/s of one agent server (instant scripted LLM) per session store: memory (the
baseline), SQLite, and Redis (a real redis-server on loopback, started here). The figures that
matter are the ratios against memory, measured in the same run: what keeping a conversation in a
file or in Redis (read, lock, write per turn) costs per request.

Each worker holds its own session and sends only its new message, as a client with ``X-Session-ID``
does; every ``--turns`` turns it starts a new session, so histories stay the size of a chat.

    python benchmarks/bench_sessions.py [--requests 600] [--concurrency 4] [--turns 10]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
from _common import LoadResult, run_agent_server, write_agent

from tests.support.redis_server import run_redis

AGENT = """
[agent]
name = "bench"
[llm]
provider = "tests.support.scripted:ScriptedProvider"
[server]
{store}
"""


async def session_turns(url: str, total: int, concurrency: int, turns: int) -> LoadResult:
    latencies: list[float] = []
    remaining = total
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            nonlocal remaining
            session, done = uuid.uuid4().hex, 0
            while remaining > 0:
                remaining -= 1
                if done == turns:
                    session, done = uuid.uuid4().hex, 0
                started = time.perf_counter()
                response = await client.post(f"{url}/api/chat", headers={"X-Session-ID": session}, json={
                    "model": "bench", "stream": False, "messages": [{"role": "user", "content": f"turn {done}"}]})
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(len(latencies), elapsed, latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--turns", type=int, default=10, help="turns per session before a new one")
    args = parser.parse_args()
    results: dict[str, LoadResult] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        redis_url = stack.enter_context(run_redis(root / "redis"))
        stores = {"memory": 'session_store = "memory"', "sqlite": 'session_store = "sqlite"',
                  "redis": f'session_store = "redis"\nsession_url = "{redis_url}"'}
        for name, store in stores.items():
            folder = root / name
            agent = write_agent(folder, AGENT.format(store=store))
            with run_agent_server(agent, cwd=folder) as server:
                asyncio.run(session_turns(server.url, min(100, args.requests), args.concurrency, args.turns))  # warm
                results[name] = asyncio.run(session_turns(server.url, args.requests, args.concurrency, args.turns))
            print(f"{name:7s} {results[name].summary()}", flush=True)
    baseline = results["memory"].rps
    for name in ("sqlite", "redis"):
        print(f"{name} / memory: {results[name].rps / baseline:.0%} of the turns/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
