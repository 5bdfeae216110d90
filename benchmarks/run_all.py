"""Run every benchmark in turn (``make bench``). Most print their figures as ratios against a
baseline measured in the same run; ``bench_streams.py`` is the load test (200 streaming sessions for
60 s, which must end with 0 errors and 0 lost turns). Run them on an otherwise idle machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["bench_chat_overhead.py", "bench_gateway.py", "bench_embedded_model.py", "bench_deploy.py",
              "bench_tool_calls.py", "bench_sessions.py", "bench_long_sessions.py", "bench_streams.py"]


def main() -> int:
    failed = 0
    for name in BENCHMARKS:
        print(f"\n=== {name}", flush=True)
        failed += subprocess.run([sys.executable, str(HERE / name)], cwd=HERE.parent).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
