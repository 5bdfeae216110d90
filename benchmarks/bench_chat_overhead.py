"""Benchmark 1: ``/api/chat`` requests/s and latency of atoll with an instant scripted LLM,
against a bare Starlette app doing the same JSON round trip. Same client, same run; the figure
that matters is the ratio (target: atoll >= 70 % of the bare app's requests/s).

    python benchmarks/bench_chat_overhead.py [--requests 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, drive, free_port, run_agent_server, server_env, wait_healthy, write_agent

AGENT = """
[agent]
name = "bench"
[llm]
provider = "tests.support.scripted:ScriptedProvider"
[server]
session_store = "memory"
"""


def body() -> dict:
    return {"model": "bench", "stream": False, "messages": [{"role": "user", "content": "hello benchmark"}]}


async def measure(url: str, total: int, concurrency: int) -> object:
    await drive(url, body(), total=min(200, total), concurrency=concurrency)  # warm-up
    return await drive(url, body(), total=total, concurrency=concurrency)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        agent = write_agent(folder, AGENT)
        port = free_port()
        log = folder / "bare.log"
        bare = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "bare_app.py"), str(port)],
                                stdout=log.open("w"), stderr=subprocess.STDOUT, env=server_env())
        try:
            bare_url = f"http://127.0.0.1:{port}"
            wait_healthy(bare_url, bare, log)
            with run_agent_server(agent, cwd=folder, args=["--log-level", "warning"]) as atoll:
                results: dict[str, list] = {"bare": [], "atoll": []}
                for _ in range(args.rounds):  # interleave, so machine noise hits both alike
                    for name, url in (("bare", bare_url), ("atoll", atoll.url)):
                        results[name].append(asyncio.run(measure(url + "/api/chat", args.requests,
                                                                 args.concurrency)))
        finally:
            bare.terminate()
            bare.wait(10)
    best = {name: max(runs, key=lambda r: r.rps) for name, runs in results.items()}
    print(f"/api/chat, {args.requests} requests x {args.rounds} rounds, concurrency {args.concurrency} (best round)")
    for name in ("bare", "atoll"):
        print(f"  {name:6s} {best[name].summary()}")
    ratio = best["atoll"].rps / best["bare"].rps
    print(f"  ratio atoll/bare requests/s: {ratio:.2f}  (target >= 0.70)  {'OK' if ratio >= 0.7 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
