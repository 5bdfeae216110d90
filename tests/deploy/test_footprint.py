"""The supervisor's memory is budgeted (<= 50 MB with 10 agents; benchmarks/bench_deploy.py measures
it). Its cheapest guard: the deployment server does not import the agent server's heavy parts."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("fastapi", "atoll.wire", "atoll.server", "atoll.agent", "llama_cpp", "mcp", "openai", "ollama",
         "prometheus_client")


def test_deployment_server_imports_stay_light() -> None:
    code = ("import sys, atoll.cli, atoll.deploy.cli, atoll.deploy.service; atoll.cli.build_parser(); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""
