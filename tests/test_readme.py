"""The README's examples run as written against a real server on the real embedded model.

This is also the end-to-end test of the default set-up: no agent file, no LLM configured, so the
server runs the embedded SmolLM2 through llama-cpp-python.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import REPO, AgentServer, run_agent_server

pytestmark = pytest.mark.model

README = (REPO / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    folder: Path = tmp_path_factory.mktemp("default-agent")
    with run_agent_server(None, cwd=folder, timeout=120) as server:
        yield server


def on_port(code: str, server: AgentServer) -> str:
    return code.replace("localhost:8100", f"127.0.0.1:{server.port}")


def test_default_server_runs_the_embedded_model(default_server: AgentServer) -> None:
    output = default_server.output()
    assert "local / SmolLM2-135M-Instruct" in output, output
    assert "atoll:latest" in output


# Each example waits on the real model: several replies of up to 512 tokens on a 2-core machine that
# runs other model tests beside it (a generous bound; an example that hangs still fails).
EXAMPLE_TIMEOUT_S = 420


@pytest.mark.timeout(EXAMPLE_TIMEOUT_S + 30)
def test_readme_curl_examples(default_server: AgentServer) -> None:
    script = next(b for b in blocks("bash") if "curl" in b and "/api/chat" in b)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", on_port(script, default_server)],
                            capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('"done":true') == 2 and '"status":"healthy"' in result.stdout


@pytest.mark.timeout(EXAMPLE_TIMEOUT_S + 30)
@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_readme_python_examples(default_server: AgentServer, index: int) -> None:
    code = on_port(blocks("python")[index], default_server)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "the example printed nothing"
