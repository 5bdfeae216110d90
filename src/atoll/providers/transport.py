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

__all__ = ["connection_failed", "upstream_transport"]


def _session() -> aiohttp.ClientSession:
    """No cookie jar: an upstream's cookies are not kept between the requests of different callers,
    and filtering a jar costs more per request than the rest of aiohttp's client does."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())


def upstream_transport() -> AiohttpTransport:
    """The httpx transport for one provider's long-lived client (its session opens on first use)."""
    return AiohttpTransport(client=_session)


def connection_failed(exc: BaseException) -> bool:
    """True when ``exc`` (reported as a timeout, maybe) comes from a connection that failed, was
    refused or was closed, rather than from a timeout."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, aiohttp.ClientError):
            return not isinstance(seen, TimeoutError)
        seen = seen.__cause__ or seen.__context__
    return False
