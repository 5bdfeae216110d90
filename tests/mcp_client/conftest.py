"""Fixtures for the MCP client tests: the real MCP servers that ``scripts/install-mcp-servers.sh``
installs under ``.mcp-servers/`` (tests skip, saying so, when they are missing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from atoll.config import McpServerConfig
from tests.mcp_client.helpers import EVERYTHING_JS, REPO, TIME_BIN, HttpEverything

_NOT_INSTALLED = "MCP servers not installed: run scripts/install-mcp-servers.sh"


@pytest.fixture
def everything_js() -> Path:
    if not EVERYTHING_JS.is_file():
        pytest.skip(f"{_NOT_INSTALLED} (missing {EVERYTHING_JS.relative_to(REPO)})")
    return EVERYTHING_JS


@pytest.fixture
def time_bin() -> Path:
    if not TIME_BIN.is_file():
        pytest.skip(f"{_NOT_INSTALLED} (missing {TIME_BIN.relative_to(REPO)})")
    return TIME_BIN


@pytest.fixture
def everything_stdio(everything_js: Path) -> McpServerConfig:
    return McpServerConfig(command="node", args=[str(everything_js), "stdio"])


@pytest.fixture
def time_stdio(time_bin: Path) -> McpServerConfig:
    return McpServerConfig(command=str(time_bin), args=["--local-timezone", "UTC"])


@pytest.fixture
def everything_http(everything_js: Path) -> Iterator[HttpEverything]:
    server = HttpEverything(everything_js, "streamableHttp")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def everything_sse(everything_js: Path) -> Iterator[HttpEverything]:
    server = HttpEverything(everything_js, "sse")
    server.start()
    yield server
    server.stop()
