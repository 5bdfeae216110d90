"""Benchmark 2: embedded-model tokens/s and time-to-first-token through the atoll server
(streamed /api/chat) against llama-cpp-python called directly in this process, same GGUF, same
prompt, same settings, interleaved rounds. Target: server >= 95 % of direct tokens/s.

Benchmark 3 (--concurrency 8): latency of typical prompts with 8 concurrent clients, p50/p95,
against one client alone in the same run. The seed's target: p95 < 5 s.

    python benchmarks/bench_embedded_model.py [--tokens 64] [--rounds 3] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _common import percentile, run_agent_server, write_agent

from atoll.providers.llamacpp import resolve_model_path

PROMPT = "Write a short paragraph about the sea."
TYPICAL = ["What is the capital of France?", "Give me three tips for sleeping better.",
           "Explain what an API is in one sentence.", "Translate 'good morning' into Spanish.",
           "What is 12 times 12?", "Name a famous painting.", "Why is the sky blue?", "Suggest a name for a cat."]

AGENT = """
[agent]
name = "bench"
[llm]
provider = "local"
[server]
session_store = "memory"
"""


def direct(tokens: int) -> tuple[float, float, int]:
    """(time to first token, tokens/s after the first, tokens) calling llama-cpp-python directly."""
    import llama_cpp

    global _LLAMA
    if "_LLAMA" not in globals():
        _LLAMA = llama_cpp.Llama(str(resolve_model_path(None)), n_ctx=2048, n_threads=2, verbose=False)
    started = time.perf_counter()
    stamps = []
    for chunk in _LLAMA.create_chat_completion(messages=[{"role": "user", "content": PROMPT}], stream=True,
                                               max_tokens=tokens, temperature=0.0, seed=0):
        if chunk["choices"][0]["delta"].get("content"):
            stamps.append(time.perf_counter())
    return stamps[0] - started, (len(stamps) - 1) / (stamps[-1] - stamps[0]), len(stamps)


def through_server(url: str, tokens: int) -> tuple[float, float, int]:
    body = {"model": "bench", "messages": [{"role": "user", "content": PROMPT}],
            "options": {"num_predict": tokens, "temperature": 0.0, "seed": 0}}
    started = time.perf_counter()
    stamps = []
    with httpx.stream("POST", url + "/api/chat", json=body, timeout=300) as response:
        for line in response.iter_lines():
            if json.loads(line)["message"]["content"]:
                stamps.append(time.perf_counter())
    return stamps[0] - started, (len(stamps) - 1) / (stamps[-1] - stamps[0]), len(stamps)


async def one(client: httpx.AsyncClient, url: str, prompt: str, tokens: int) -> float:
    started = time.perf_counter()
    response = await client.post(url + "/api/chat", json={
        "model": "bench", "stream": False, "messages": [{"role": "user", "content": prompt}],
        "options": {"num_predict": tokens}})
    response.raise_for_status()
    return time.perf_counter() - started


async def concurrent(url: str, clients: int, tokens: int, rounds: int) -> list[float]:
    async with httpx.AsyncClient(timeout=600) as client:
        latencies: list[float] = []
        for _ in range(rounds):
            latencies += await asyncio.gather(*(one(client, url, TYPICAL[i % len(TYPICAL)], tokens)
                                                for i in range(clients)))
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--typical-tokens", type=int, default=48)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        agent = write_agent(Path(tmp), AGENT)
        with run_agent_server(agent, cwd=Path(tmp), args=["--log-level", "warning"], timeout=120) as server:
            through_server(server.url, 8)  # warm-up both paths
            direct(8)
            runs: dict[str, list[tuple[float, float, int]]] = {"direct": [], "server": []}
            for _ in range(args.rounds):
                runs["direct"].append(direct(args.tokens))
                runs["server"].append(through_server(server.url, args.tokens))
            print(f"Embedded SmolLM2, {args.tokens} tokens, {args.rounds} interleaved rounds (median)")
            med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v),
                       statistics.median(r[2] for r in v)) for k, v in runs.items()}
            for name, (ttft, rate, count) in med.items():
                print(f"  {name:7s} TTFT {ttft * 1000:7.1f} ms   {rate:6.1f} tokens/s   ({count:.0f} tokens)")
            ratio = med["server"][1] / med["direct"][1]
            print(f"  ratio server/direct tokens/s: {ratio:.3f}  (target >= 0.95)  "
                  f"{'OK' if ratio >= 0.95 else 'BELOW TARGET'};  TTFT overhead "
                  f"{(med['server'][0] - med['direct'][0]) * 1000:+.1f} ms")

            alone = asyncio.run(concurrent(server.url, 1, args.typical_tokens, 4))
            crowd = asyncio.run(concurrent(server.url, args.clients, args.typical_tokens, 2))
            print(f"Typical prompts, num_predict {args.typical_tokens}: 1 client vs {args.clients} concurrent clients")
            for name, lat in (("1 client", alone), (f"{args.clients} clients", crowd)):
                print(f"  {name:10s} p50 {percentile(lat, .5):6.2f} s   p95 {percentile(lat, .95):6.2f} s   "
                      f"({len(lat)} requests)")
            p95 = percentile(crowd, .95)
            print(f"  p95 with {args.clients} clients: {p95:.2f} s (seed target < 5 s: "
                  f"{'OK' if p95 < 5 else 'MISSED'}); ratio p95 crowd/alone "
                  f"{p95 / percentile(alone, .95):.1f}x")


if __name__ == "__main__":
    main()
