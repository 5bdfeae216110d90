"""Open the SDK transport a server's config asks for: stdio, streamable HTTP or SSE.

For stdio, the child's stderr goes to a pipe read by a small thread: each line is logged (debug)
under the server's name and the last lines are kept, so a server that dies at start-up fails with
its own error message rather than a bare "Connection closed".
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO, Any, TextIO, cast

import anyio
import anyio.to_thread
import httpx2
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from atoll.config import McpServerConfig

logger = logging.getLogger(__name__)

#: connect/write/pool timeout for HTTP transports; reads may wait long on an open SSE stream.
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
STDERR_TAIL_LINES = 20


class StderrTail:
    """Reads a child's stderr through a pipe on a daemon thread; keeps the last lines."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.lines: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        read_fd, write_fd = os.pipe()
        self._reader = os.fdopen(read_fd, "r", encoding="utf-8", errors="replace")
        #: Handed to the child as its stderr; ours is closed by :meth:`release` once spawned.
        self.writer: IO[str] = os.fdopen(write_fd, "w", encoding="utf-8")
        self._thread = threading.Thread(target=self._pump, name=f"mcp-stderr-{server}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        with self._reader:
            for line in self._reader:
                line = line.rstrip()
                if line:
                    self.lines.append(line)
                    logger.debug("[%s stderr] %s", self.server, line)

    def release(self) -> None:
        """Close our copy of the write end: the thread ends when the child's copy closes too."""
        if not self.writer.closed:
            self.writer.close()

    async def drain(self, timeout: float = 0.5) -> None:
        """Wait briefly for the lines a dead child wrote last (the thread ends at EOF)."""
        self.release()
        await anyio.to_thread.run_sync(self._thread.join, timeout)

    def text(self) -> str:
        return " | ".join(self.lines)


@asynccontextmanager
async def open_transport(
    config: McpServerConfig, stderr: StderrTail | None = None
) -> AsyncIterator[tuple[Any, Any]]:
    """The ``(read, write)`` streams for ``config``; ``stderr`` is used for stdio servers."""
    if config.type == "stdio":
        assert config.command is not None
        params = StdioServerParameters(
            command=config.command, args=config.args, env=config.env or None, cwd=config.cwd
        )
        errlog = cast(TextIO, stderr.writer) if stderr is not None else sys.stderr
        async with stdio_client(params, errlog=errlog) as streams:
            yield streams
    elif config.type == "sse":
        assert config.url is not None
        async with sse_client(config.url, headers=config.headers or None, timeout=30.0) as streams:
            yield streams
    else:
        assert config.url is not None
        async with (
            httpx2.AsyncClient(headers=config.headers, timeout=HTTP_TIMEOUT) as http,
            streamable_http_client(config.url, http_client=http) as streams,
        ):
            yield streams
