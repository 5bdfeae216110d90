"""Configuration: schema, precedence, variable expansion, and errors that name file and field."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from atoll.config import (
    McpServerConfig,
    expand_vars,
    load_agent_config,
    load_agent_file,
    load_mcp_json,
    normalise_ollama_host,
)
from atoll.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_toml_and_json_have_the_same_structure(tmp_path: Path) -> None:
    toml = write(tmp_path / "agent.toml", """
[agent]
name = "helper"
capabilities = ["search"]
[llm]
provider = "ollama"
model = "qwen3"
temperature = 0.2
[mcp_servers.time]
command = "mcp-server-time"
[sub_agents.child]
url = "http://127.0.0.1:8101"
""")
    data = {"agent": {"name": "helper", "capabilities": ["search"]},
            "llm": {"provider": "ollama", "model": "qwen3", "temperature": 0.2},
            "mcp_servers": {"time": {"command": "mcp-server-time"}},
            "sub_agents": {"child": {"url": "http://127.0.0.1:8101"}}}
    as_json = write(tmp_path / "agent.json", json.dumps(data))
    a, b = load_agent_file(toml), load_agent_file(as_json)
    assert a.model_dump() == b.model_dump()
    assert a.mcp_servers["time"].type == "stdio" and a.sub_agents["child"].url.endswith(":8101")


def test_wrong_type_names_file_and_field(tmp_path: Path) -> None:
    path = write(tmp_path / "agent.toml", '[agent]\nname = "a"\n[llm]\nmax_tokens = "many"\n')
    with pytest.raises(ConfigError) as info:
        load_agent_file(path)
    assert str(path) in str(info.value) and "llm.max_tokens" in str(info.value)


def test_syntax_error_names_file(tmp_path: Path) -> None:
    path = write(tmp_path / "agent.json", '{"agent": {"name": "a",}}')
    with pytest.raises(ConfigError, match=r"agent\.json: invalid JSON at line 1"):
        load_agent_file(path)


def test_unknown_sections_and_keys_warn_but_load(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "agent.toml", '[agent]\nname = "a"\nflavour = "x"\n[telemetry]\non = true\n')
    with caplog.at_level(logging.WARNING):
        config = load_agent_file(path)
    assert config.agent.name == "a"
    assert "unknown section [telemetry]" in caplog.text and "agent.flavour" in caplog.text


def test_invalid_agent_name_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent\.name"):
        load_agent_file(write(tmp_path / "agent.toml", '[agent]\nname = "has space"\n'))


def test_name_defaults_to_folder(tmp_path: Path) -> None:
    folder = tmp_path / "My Agent"
    folder.mkdir()
    assert load_agent_file(write(folder / "agent.toml", "[llm]\nprovider='local'\n")).agent.name == "My-Agent"


def test_env_expansion(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOKEN", "s3cret")
    assert expand_vars({"a": ["$TOKEN", "${TOKEN}x", "${NOPE:-dflt}", "$$TOKEN"]}) == {
        "a": ["s3cret", "s3cretx", "dflt", "$TOKEN"]}
    path = write(tmp_path / "agent.toml", '[agent]\nname = "a"\n[sub_agents.c]\nurl = "http://x"\n'
                                          'auth_token = "$MISSING_TOKEN"\n')
    with pytest.raises(ConfigError) as info:
        load_agent_file(path)
    assert "MISSING_TOKEN" in str(info.value) and "sub_agents.c.auth_token" in str(info.value)


def test_default_is_the_embedded_model(tmp_path: Path) -> None:
    config = load_agent_config(None, cwd=tmp_path)
    assert config.llm.provider == "local" and config.llm.model_path is None


def test_precedence_agent_file_over_ollama_file_over_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ollama_file = write(tmp_path / "ollama.json", json.dumps(
        {"base_url": "http://10.1.2.3", "port": 11500, "model": "from-file", "temperature": 0.3, "max_tokens": 99}))
    monkeypatch.setenv("ATOLL_OLLAMA_CONFIG", str(ollama_file))
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9999")
    monkeypatch.setenv("ATOLL_LLM_MODEL", "from-env")
    only_file = load_agent_config(None, cwd=tmp_path).llm
    assert (only_file.provider, only_file.base_url, only_file.model) == ("ollama", "http://10.1.2.3:11500", "from-file")
    assert only_file.temperature == 0.3 and only_file.max_tokens == 99
    agent = write(tmp_path / "agent.toml", '[agent]\nname = "a"\n[llm]\nmodel = "from-agent"\ntemperature = 0.9\n')
    both = load_agent_config(agent, cwd=tmp_path).llm
    assert (both.model, both.temperature, both.base_url) == ("from-agent", 0.9, "http://10.1.2.3:11500")
    monkeypatch.delenv("ATOLL_OLLAMA_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    env_only = load_agent_config(None, cwd=tmp_path).llm
    assert (env_only.provider, env_only.base_url, env_only.model) == ("ollama", "http://127.0.0.1:9999", "from-env")


def test_bad_ollama_config_names_file_and_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATOLL_OLLAMA_CONFIG", str(write(tmp_path / "o.json", '{"port": "eleven"}')))
    with pytest.raises(ConfigError, match=r"o\.json: port: expected int"):
        load_agent_config(None, cwd=tmp_path)


@pytest.mark.parametrize(("value", "expected"), [
    ("0.0.0.0", "http://127.0.0.1:11434"), ("example:8080", "http://example:8080"),
    ("https://h.example", "https://h.example"), ("http://127.0.0.1:11434/", "http://127.0.0.1:11434"),
    ("https://proxy/ollama", "https://proxy/ollama"), ("http://h.example/ollama/", "http://h.example/ollama"),
    ("[::1]", "http://[::1]:11434"), ("[::1]:9000", "http://[::1]:9000"), ("box:9000/ollama", "http://box:9000/ollama"),
])
def test_ollama_host_like_the_clients(value: str, expected: str) -> None:
    assert normalise_ollama_host(value) == expected


def test_mcp_json_both_formats_and_merge(tmp_path: Path) -> None:
    write(tmp_path / "mcp.json", json.dumps({"servers": {
        "remote": {"type": "streamableHttp", "url": "http://127.0.0.1:1/mcp"},
        "old": {"url": "http://127.0.0.1:1/sse"},
        "off": {"command": "x", "disabled": True}}}))
    servers = load_mcp_json(tmp_path / "mcp.json")
    assert servers["remote"].type == "http" and servers["old"].type == "sse" and not servers["off"].enabled
    write(tmp_path / "mcp.json", json.dumps({"mcpServers": {"t": {"command": "mcp-server-time", "args": ["-v"]}}}))
    agent = write(tmp_path / "agent.toml", '[agent]\nname = "a"\n[mcp_servers.own]\ncommand = "x"\n')
    config = load_agent_config(agent, cwd=tmp_path)
    assert set(config.mcp_servers) == {"own", "t"} and config.mcp_servers["t"].args == ["-v"]


def test_mcp_server_needs_a_target() -> None:
    with pytest.raises(ValueError, match="needs 'command'"):
        McpServerConfig.model_validate({"args": ["x"]})


def test_mcp_json_vscode_variables_and_millisecond_timeouts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCS_TOKEN", "t0k")
    folder = tmp_path / ".vscode"
    folder.mkdir()
    write(folder / "mcp.json", json.dumps({"servers": {"docs": {
        "type": "http", "url": "http://127.0.0.1:1/mcp", "timeout": 2500,
        "headers": {"Authorization": "Bearer ${env:DOCS_TOKEN}"}},
        "fs": {"command": "mcp-server-filesystem", "args": ["${workspaceFolder}/data"]}}}))
    servers = load_mcp_json(folder / "mcp.json")
    assert servers["docs"].headers == {"Authorization": "Bearer t0k"} and servers["docs"].timeout == 2.5
    assert servers["fs"].args == [f"{tmp_path}/data"]
    write(folder / "mcp.json", json.dumps({"servers": {"x": {"command": "c", "env": {"KEY": "${input:key}"}}}}))
    with pytest.raises(ConfigError) as info:
        load_mcp_json(folder / "mcp.json")
    assert "mcp.json" in str(info.value) and "servers.x.env.KEY" in str(info.value) and "input:key" in str(info.value)
