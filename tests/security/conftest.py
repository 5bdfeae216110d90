"""Agent servers with API keys and limits configured, shared by the security tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import AgentServer, run_agent_server, scripted_agent_toml, server_env, write_agent

KEY_A = "sk-alpha-7f3c2a19d0"
KEY_B = "sk-beta-b81e55c604"


def start(folder: Path, server_section: str, **env: str) -> Iterator[AgentServer]:
    """A scripted agent with ``[server]`` set as given; ``env`` reaches the server process."""
    agent = write_agent(folder, scripted_agent_toml("echo", extra=f"[server]\n{server_section}"))
    home = folder / "home"
    home.mkdir(exist_ok=True)
    with run_agent_server(agent, cwd=folder, env=server_env(HOME=str(home), **env)) as server:
        yield server


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    """Two keys: one written in the file, one taken from the environment through ``$BETA_KEY``."""
    folder = tmp_path_factory.mktemp("keyed")
    yield from start(folder, f'api_keys = ["{KEY_A}", "$BETA_KEY"]\nsession_store = "memory"\n', BETA_KEY=KEY_B)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
