from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_server import run_redis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real redis-server for the whole test session (each test uses its own key namespace)."""
    with run_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url
