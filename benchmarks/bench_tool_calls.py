"""Benchmark: how often an episode of real small-model output ends with the right tool called with
valid arguments, before (the plain loop: structured calls run as they come, unknown names go back
to the client, text is an answer) and after (atoll's loop: text calls, repair, validation with
precise errors, name resolution, loop limits). By model family; target >= 95 % after.

The episodes are ``tests/fixtures/tool_calls.json`` (each names its source). "After" replays them
through the real :class:`~atoll.agent.AgentRunner`; "before" follows the old loop's rules over
the same replies step by step (that code is gone).

    python benchmarks/bench_tool_calls.py [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict

from _common import REPO  # noqa: F401  (puts the repository on sys.path)

from tests.support.replay import load_corpus, plain_loop, replay


async def main(verbose: bool) -> int:
    corpus = load_corpus()
    tools = corpus["tools"]
    rows: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    misses: list[str] = []
    for episode in corpus["episodes"]:
        after = (await replay(episode, tools)).ok
        before = plain_loop(episode, tools)
        rows[episode["family"]].append((before, after))
        rows["all"].append((before, after))
        if not after:
            misses.append(f"{episode['id']} ({episode['source']})")
        if verbose:
            print(f"  {episode['id']:32} before={'ok' if before else '--'} after={'ok' if after else '--'}")
    print(f"{'family':10} {'episodes':>8} {'before':>8} {'after':>8}")
    for family in sorted(rows, key=lambda f: (f == "all", f)):
        results = rows[family]
        share = [sum(r[i] for r in results) / len(results) * 100 for i in (0, 1)]
        print(f"{family:10} {len(results):>8} {share[0]:>7.1f}% {share[1]:>7.1f}%")
    print("still failing:", "; ".join(misses) if misses else "none")
    overall = sum(r[1] for r in rows["all"]) / len(rows["all"])
    return 0 if overall >= 0.95 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="one line per episode")
    raise SystemExit(asyncio.run(main(parser.parse_args().verbose)))
