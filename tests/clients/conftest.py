"""Agent servers for the client-library tests: the scripted LLM, and variants with other capabilities."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.servers import AgentServer, run_agent_server, write_agent

# LiteLLM fetches its model price list from the internet at import time unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def _agent_toml(name: str, provider: str, extra: str = "") -> str:
    return f"""
[agent]
name = "{name}"
description = "client test agent"

[llm]
provider = "{provider}"
system_prompt = "You are {name}."
{extra}
"""


@pytest.fixture(scope="module")
def thinker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    """An agent whose LLM has a separate thinking stream."""
    folder = tmp_path_factory.mktemp("thinker")
    agent = write_agent(folder, _agent_toml("thinker", "tests.clients.providers:ThinkingProvider"))
    with run_agent_server(agent, cwd=folder) as server:
        yield server


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    """An agent on an LLM that can neither embed nor call tools, and has no tools of its own; it also
    lets one more browser origin in."""
    folder = tmp_path_factory.mktemp("plain")
    agent = write_agent(folder, _agent_toml("plain", "tests.clients.providers:NoEmbeddingsProvider",
                                            '[server]\ncors_origins = ["https://chat.example.org"]'))
    with run_agent_server(agent, cwd=folder) as server:
        yield server
