"""Secrets in ``deployment_servers.json``: ``$VAR`` expansion, the environment override, the loopback
rule, and what agents are not given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atoll.deploy.config import DeploymentConfig, load_deployment_config
from atoll.deploy.discover import AgentSpec
from atoll.deploy.process import child_env
from atoll.errors import ConfigError
from atoll.net import is_loopback


def write(path: Path, data: dict[str, object]) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_secrets_expand_from_the_environment_and_the_env_beats_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_ADMIN", "from-env-var")
    monkeypatch.setenv("LAB_KEY", "lab-key")
    monkeypatch.delenv("ATOLL_ADMIN_TOKEN", raising=False)
    path = write(tmp_path / "d.json", {
        "admin_token": "$MY_ADMIN", "description_of_costs": "$5",
        "remote_servers": [{"name": "lab", "host": "10.0.0.5", "api_key": "${LAB_KEY}",
                            "admin_token": "${LAB_ADMIN:-none}"}]})
    config = load_deployment_config(path)
    assert config.admin_token == "from-env-var"
    assert (config.remote_servers[0].api_key, config.remote_servers[0].admin_token) == ("lab-key", "none")
    assert config.model_extra == {"description_of_costs": "$5"}  # only secret fields are expanded
    assert "from-env-var" not in repr(config) and "lab-key" not in repr(config)

    monkeypatch.setenv("ATOLL_ADMIN_TOKEN", "env-wins")
    assert load_deployment_config(path).admin_token == "env-wins"
    assert load_deployment_config(tmp_path / "missing.json").admin_token == "env-wins"


def test_an_unset_variable_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = write(tmp_path / "d.json", {"remote_servers": [{"name": "x", "host": "h", "api_key": "$NOPE_UNSET"}]})
    with pytest.raises(ConfigError) as caught:
        load_deployment_config(path)
    assert str(path) in str(caught.value) and "remote_servers.0.api_key" in str(caught.value)
    assert "$NOPE_UNSET" in str(caught.value)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True),
    ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("my-host.example", False)])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(DeploymentConfig(host=host).bind_host) is loopback


def test_agents_never_receive_the_admin_token() -> None:
    spec = AgentSpec(name="a", folder=Path("/x"), agent_file=Path("/x/agent.toml"))
    env = child_env(spec, base={"ATOLL_ADMIN_TOKEN": "secret", "ATOLL_API_KEYS": "k", "PATH": "/bin"})
    assert env["ATOLL_API_KEYS"] == "k" and "ATOLL_ADMIN_TOKEN" not in env
    assert "ATOLL_ADMIN_TOKEN" not in child_env(spec, ["ATOLL_ADMIN_TOKEN"], base={"ATOLL_ADMIN_TOKEN": "s"})
