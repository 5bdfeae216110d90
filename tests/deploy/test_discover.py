from __future__ import annotations

import socket
from pathlib import Path

import pytest

from atoll.deploy.config import load_deployment_config, resolve_agents_dir
from atoll.deploy.discover import discover
from atoll.deploy.errors import PortUnavailable
from atoll.deploy.ports import PortAllocator, port_is_free
from atoll.errors import ConfigError
from tests.deploy.conftest import free_base_port, write_agent


def test_valid_invalid_and_duplicate_agents(tmp_path: Path) -> None:
    write_agent(tmp_path, "alpha")
    write_agent(tmp_path, "beta_folder", name="beta")
    (tmp_path / "json_agent").mkdir()
    (tmp_path / "json_agent" / "agent.json").write_text('{"agent": {"name": "gamma"}}')
    write_agent(tmp_path, "broken", extra="[deployment]\nport = -1\n")
    write_agent(tmp_path, "dup1", name="twin")
    write_agent(tmp_path, "dup2", name="Twin")  # clients match model names case-insensitively
    (tmp_path / "not_an_agent").mkdir()
    write_agent(tmp_path, ".staging", name="hidden")

    found = discover(tmp_path)

    assert sorted(s.name for s in found.specs) == ["alpha", "beta", "gamma"]
    reasons = {p.folder.name: p.reason for p in found.problems}
    assert set(reasons) == {"broken", "dup1", "dup2"}
    assert "deployment.port" in reasons["broken"] and "agent.toml" in reasons["broken"]
    assert "duplicate agent name 'twin'" in reasons["dup1"]
    beta = next(s for s in found.specs if s.name == "beta")
    assert beta.folder == (tmp_path / "beta_folder").resolve()


def test_missing_folder_discovers_nothing(tmp_path: Path) -> None:
    found = discover(tmp_path / "absent")
    assert found.specs == [] and found.problems == []


def test_ports_skip_a_port_in_use_and_stay_with_their_agent() -> None:
    base = free_base_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 1))
        taken.listen()
        assert not port_is_free(base + 1)
        ports = PortAllocator(base)
        assert ports.assign("a") == base
        assert ports.assign("b") == base + 2
        assert ports.assign("a") == base
        ports.release("a")
        assert ports.assign("c") == base


def test_port_range_exhausted_is_an_error() -> None:
    ports = PortAllocator(9000, is_free=lambda port: False, limit=5)
    with pytest.raises(PortUnavailable):
        ports.assign("a")


def test_config_file_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "deployment_servers.json"
    path.write_text('{"api_port": "eighty", "remote_servers": []}')
    with pytest.raises(ConfigError) as err:
        load_deployment_config(path)
    assert str(path) in str(err.value) and "api_port" in str(err.value)
    path.write_text('{"remote_servers": [{"name": "x"}]}')
    with pytest.raises(ConfigError, match=r"remote_servers\.0\.host"):
        load_deployment_config(path)


def test_config_defaults_and_agents_dir_precedence(tmp_path: Path, atoll_home: Path) -> None:
    config = load_deployment_config()
    assert (config.api_port, config.base_port, config.host) == (8080, 8100, "127.0.0.1")
    assert resolve_agents_dir(None, config, tmp_path) == tmp_path / "atoll_agents"
    atoll_home.mkdir(parents=True)
    (atoll_home / "deployment_servers.json").write_text('{"agents_directory": "mine"}')
    config = load_deployment_config()
    assert resolve_agents_dir(None, config, tmp_path) == tmp_path / "mine"
    assert resolve_agents_dir("/abs", config, tmp_path) == Path("/abs")
