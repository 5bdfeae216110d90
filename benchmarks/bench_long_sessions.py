"""Benchmark: long conversations and many sessions.

1. Through a real agent server (scripted LLM, SQLite sessions): the time of one ``/api/chat`` turn on
   a session that already holds 1,000 messages against a turn on a new session, interleaved, one
   client. Target: <= 2x.
2. The stores directly (memory, SQLite, and Redis when ``redis-server`` is installed): 10,000
   sessions counted and then cleaned up (all expired). Target: < 1 s.

    python benchmarks/bench_long_sessions.py [--turns 60] [--sessions 10000]

(``bench_sessions.py`` compares the stores on short conversations.)
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from _common import REPO, run_agent_server, write_agent

from atoll.messages import Message
from atoll.sessions import SessionRecord, SessionStore
from atoll.sessions.memory import MemoryStore
from atoll.sessions.sqlite import SqliteStore

AGENT = """
[agent]
name = "bench"
[llm]
provider = "tests.support.scripted:ScriptedProvider"
[server]
session_db = "sessions.db"
"""


def turn(client: httpx.Client, url: str, session: str, text: str) -> float:
    started = time.perf_counter()
    response = client.post(url, headers={"X-Session-ID": session},
                           json={"model": "bench", "stream": False, "messages": [{"role": "user", "content": text}]})
    response.raise_for_status()
    return time.perf_counter() - started


def long_conversation(turns: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        agent = write_agent(folder, AGENT)
        with run_agent_server(agent, cwd=folder, args=["--log-level", "warning"]) as server, \
                httpx.Client(timeout=60) as client:
            url = server.url + "/api/chat"
            long_id = "long-" + uuid.uuid4().hex
            for index in range(500):  # 500 turns: a user message and a reply each
                turn(client, url, long_id, f"message {index}")
            stored = client.get(f"{server.url}/api/sessions/{long_id}").json()["messages"]
            new, long = [], []
            for index in range(turns):
                new.append(turn(client, url, uuid.uuid4().hex, f"hello {index}"))
                long.append(turn(client, url, long_id, f"more {index}"))
    new_ms, long_ms = statistics.median(new) * 1000, statistics.median(long) * 1000
    ratio = long_ms / new_ms
    print(f"one /api/chat turn, SQLite sessions, {turns} turns each, interleaved (median, range)")
    print(f"  new session                      {new_ms:7.2f} ms  ({min(new) * 1000:.2f}-{max(new) * 1000:.2f})")
    print(f"  session with {len(stored)} messages        {long_ms:7.2f} ms  "
          f"({min(long) * 1000:.2f}-{max(long) * 1000:.2f})")
    print(f"  ratio long/new: {ratio:.2f}  (target <= 2)  {'met' if ratio <= 2 else 'MISSED'}")


async def many_sessions(name: str, open_store: Callable[[], SessionStore], count: int) -> None:
    store = open_store()
    try:
        now = time.time()
        messages = [Message(role="user", content="question"), Message(role="assistant", content="answer")]
        for index in range(count):
            await store.put(SessionRecord(f"s{index}", messages, "", now - 7200, now - 7200))
        started = time.perf_counter()
        counted = await store.count_since(0)
        counted_at = time.perf_counter()
        removed = await store.delete_before(now - 3600)
        finished = time.perf_counter()
        assert counted == removed == count, (counted, removed)
        total = finished - started
        print(f"  {name:8s} count {count} in {(counted_at - started) * 1000:7.1f} ms, clean up in "
              f"{(finished - counted_at) * 1000:7.1f} ms; together {total:.3f} s  (target < 1 s)  "
              f"{'met' if total < 1 else 'MISSED'}")
    finally:
        await store.aclose()


def store_benchmarks(count: int) -> None:
    print(f"{count} sessions in each store: counted, then all expired and cleaned up")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        asyncio.run(many_sessions("memory", MemoryStore, count))
        asyncio.run(many_sessions("sqlite", lambda: SqliteStore(folder / "sessions.db"), count))
        if shutil.which("redis-server") is None:
            print("  redis    not measured: redis-server is not installed (scripts/install-redis.sh)")
            return
        import sys

        sys.path.insert(0, str(REPO))
        from atoll.sessions.redis import RedisStore
        from tests.support.redis_server import run_redis

        with run_redis(folder / "redis") as url:
            asyncio.run(many_sessions("redis", lambda: RedisStore(url, "bench", keep_s=86400), count))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--sessions", type=int, default=10_000)
    args = parser.parse_args()
    long_conversation(args.turns)
    store_benchmarks(args.sessions)


if __name__ == "__main__":
    main()
