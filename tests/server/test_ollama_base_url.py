"""An agent file's Ollama ``base_url`` is used as written, path included (behind a reverse proxy at
``/ollama``, with the scheme's own port); only ``OLLAMA_HOST``-style ``host[:port]`` gets port 11434."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.servers import run_agent_server, server_env, write_agent

AGENT = """
[agent]
name = "proxied"

[llm]
provider = "ollama"
model = "m"
base_url = "{url}"
"""


def status_base_url(tmp_path: Path, url: str, **env: str) -> str:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    agent = write_agent(tmp_path, AGENT.format(url=url).replace('base_url = ""\n', ""))
    with run_agent_server(agent, cwd=tmp_path, env=server_env(HOME=str(home), **env)) as server:
        return str(httpx.get(server.url + "/atoll/status", timeout=10).json()["llm"]["base_url"])


def test_a_url_is_kept_as_written_path_included(tmp_path: Path) -> None:
    assert status_base_url(tmp_path, "http://localhost/ollama/") == "http://localhost/ollama"


def test_an_ollama_host_value_gets_the_default_port(tmp_path: Path) -> None:
    assert status_base_url(tmp_path, "", OLLAMA_HOST="localhost") == "http://localhost:11434"
