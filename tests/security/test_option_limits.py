"""A client's generation options cannot override the operator's limits, through real agent server
processes and the official clients: ``num_predict`` / ``max_tokens`` above ``[llm] max_tokens`` and
``num_ctx`` above ``[llm] context_length`` (else the model's context length) are clamped, load-time
options (``num_gpu``, ``num_thread``...) are dropped, sampling options and lower limits pass."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ollama
import openai
import pytest

from tests.support.servers import AgentServer, run_agent_server, scripted_agent_toml, write_agent

LIMITED = """
[llm]
max_tokens = 3
context_length = 2048
"""


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    folder = tmp_path_factory.mktemp("limited")
    toml = scripted_agent_toml("limited").replace("[llm]\n", LIMITED.strip() + "\n", 1)
    with run_agent_server(write_agent(folder, toml), cwd=folder) as server:
        yield server


def provider_options(server: AgentServer, model: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options the agent's LLM provider received (the scripted LLM's ``/options``)."""
    reply = ollama.Client(host=server.url, timeout=30).chat(
        model=model, messages=[{"role": "user", "content": "/options"}], options=options)
    result: dict[str, Any] = json.loads(reply.message.content)
    return result


def test_num_predict_above_max_tokens_is_clamped(limited: AgentServer) -> None:
    reply = ollama.Client(host=limited.url, timeout=30).chat(
        model="limited", messages=[{"role": "user", "content": "/count 10"}], options={"num_predict": 100})
    assert reply.message.content.split() == ["w1", "w2", "w3"] and reply.done_reason == "length"
    completion = openai.OpenAI(base_url=f"{limited.url}/v1", api_key="unused", timeout=30).chat.completions.create(
        model="limited", messages=[{"role": "user", "content": "/count 10"}], max_tokens=100)
    assert completion.choices[0].message.content is not None
    assert completion.choices[0].message.content.split() == ["w1", "w2", "w3"]
    assert completion.choices[0].finish_reason == "length"


def test_limits_clamp_load_options_drop_and_sampling_passes(limited: AgentServer) -> None:
    got = provider_options(limited, "limited", {"num_predict": 100, "num_ctx": 1_000_000, "num_gpu": 99,
                                                "num_thread": 64, "use_mmap": False, "temperature": 0.3,
                                                "mirostat": 1})
    assert got["max_tokens"] == 3 and got["num_ctx"] == 2048
    assert got["temperature"] == 0.3 and got["extra"] == {"mirostat": 1}
    lower = provider_options(limited, "limited", {"num_predict": 2, "num_ctx": 512})
    assert lower["max_tokens"] == 2 and lower["num_ctx"] == 512


def test_without_a_context_length_num_ctx_stops_at_the_models(tmp_path: Path) -> None:
    with run_agent_server(write_agent(tmp_path, scripted_agent_toml("open")), cwd=tmp_path) as server:
        got = provider_options(server, "open", {"num_ctx": 1_000_000, "num_predict": 100})
    assert got["num_ctx"] == 4096  # the scripted model's own context length
    assert got["max_tokens"] == 100  # no [llm] max_tokens: the client chooses
