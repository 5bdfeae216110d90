"""Choosing Redis for sessions: the file, the environment, and the errors that name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.config import load_agent_config
from atoll.errors import ConfigError
from atoll.sessions import open_store
from atoll.sessions.redis import RedisStore
from atoll.sessions.sqlite import SqliteStore
from tests.support.servers import scripted_agent_toml, write_agent


def agent(tmp_path: Path, server: str = "") -> Path:
    return write_agent(tmp_path, scripted_agent_toml("echo", extra=f"[server]\n{server}"))


async def test_redis_without_a_url_names_the_file_and_field(tmp_path: Path) -> None:
    path = agent(tmp_path, 'session_store = "redis"\n')
    with pytest.raises(ConfigError) as missing:
        load_agent_config(path)
    assert str(path) in str(missing.value) and "server.session_url" in str(missing.value)


async def test_a_url_that_is_not_redis_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as wrong:
        load_agent_config(agent(tmp_path, 'session_store = "redis"\nsession_url = "http://x:6379"\n'))
    assert "server.session_url" in str(wrong.value) and "redis://" in str(wrong.value)


async def test_the_environment_url_moves_agents_that_chose_no_store(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOLL_SESSION_URL", "redis://127.0.0.1:1/3")
    plain = load_agent_config(agent(tmp_path / "plain"))
    assert (plain.server.session_store, plain.server.session_url) == ("redis", "redis://127.0.0.1:1/3")
    store = open_store(plain)
    assert isinstance(store, RedisStore)
    await store.aclose()
    pinned = load_agent_config(agent(tmp_path / "pinned", 'session_store = "sqlite"\n'))
    assert pinned.server.session_store == "sqlite"
    store = open_store(pinned)
    assert isinstance(store, SqliteStore)
    await store.aclose()


async def test_a_bad_environment_url_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOLL_SESSION_URL", "localhost:6379")
    with pytest.raises(ConfigError) as wrong:
        load_agent_config(agent(tmp_path))
    assert "ATOLL_SESSION_URL" in str(wrong.value)
