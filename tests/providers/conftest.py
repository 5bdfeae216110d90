"""Fixtures for the provider tests: the real SmolLM2 GGUF, a real OpenAI-compatible server
(llama-cpp-python's own) and a real atoll server standing in for Ollama, all on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import (
    AgentServer,
    free_port,
    run_agent_server,
    scripted_agent_toml,
    wait_healthy,
    write_agent,
)

SERVER_START_TIMEOUT_S = 90.0


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    """The default model file, located the way the provider locates it."""
    from atoll.providers.llamacpp import resolve_model_path

    return resolve_model_path(None)


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def openai_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` serving SmolLM2 (chat and embeddings); yields its ``/v1`` URL.

    Needs ``llama-cpp-python[server]`` (fastapi, sse-starlette, starlette-context, pydantic-settings).
    """
    if importlib.util.find_spec("starlette_context") is None:
        pytest.skip("llama_cpp.server needs llama-cpp-python[server] (starlette-context is missing)")
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path), "--host", "127.0.0.1",
               "--port", str(port), "--n_threads", "1", "--n_ctx", "2048", "--embedding", "true"]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log, timeout=SERVER_START_TIMEOUT_S, path="/v1/models")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module")
def ollama_like_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    """A real atoll server process (an Ollama-compatible server) whose LLM is the scripted one.
    Its only model is the agent, ``echo``."""
    folder = tmp_path_factory.mktemp("ollama-like")
    agent = write_agent(folder, scripted_agent_toml("echo"))
    with run_agent_server(agent, cwd=folder) as server:
        yield server
