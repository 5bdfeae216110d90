"""The HTTP transport the upstream providers share: aiohttp underneath the official clients.

``ollama`` and ``openai`` speak httpx; httpx-aiohttp puts aiohttp under httpx's API, which costs a
fraction of httpx's own connection pool per request (``benchmarks/bench_gateway.py``), while the
clients, their types and the httpx exceptions stay the same. One difference is absorbed here:
httpx-aiohttp reports every aiohttp connection error (refused, reset, closed early) as
``httpx.ConnectTimeout``; :func:`connection_failed` tells those from real timeouts.
"""

from __future__ import annotations

import aiohttp
from httpx_aiohttp import AiohttpTransport

__all__ = ["AiohttpTransport", "connection_failed"]


def connection_failed(exc: BaseException) -> bool:
    """True when ``exc`` (reported as a timeout, maybe) comes from a connection that failed, was
    refused or was closed, rather than from a timeout."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, aiohttp.ClientError):
            return not isinstance(seen, TimeoutError)
        seen = seen.__cause__ or seen.__context__
    return False
