"""The HTTP client the upstream providers share: one pooled aiohttp session per provider.

The Ollama provider streams ``/api/chat`` on it directly (NDJSON lines read as they come), and
``ollama``'s and ``openai``'s own clients run on aiohttp too (httpx-aiohttp; openai's
``DefaultAioHttpClient``), which costs a fraction of httpx's own connection pool per request
(``benchmarks/bench_gateway.py``). One difference is absorbed here: httpx-aiohttp reports every
aiohttp connection error (refused, reset, closed early) as ``httpx.ConnectTimeout``;
:func:`connection_failed` tells those from real timeouts.
"""

from __future__ import annotations

import aiohttp
from httpx_aiohttp import AiohttpTransport

__all__ = ["KEEPALIVE_S", "MAX_CONNECTIONS", "connection_failed", "upstream_session", "upstream_transport"]

#: Connections one provider keeps to its upstream at most (httpx's default, which it had before).
MAX_CONNECTIONS = 100
#: Seconds an idle upstream connection is kept: under uvicorn's 5 s keep-alive (vLLM, llama.cpp's
#: Python server), so the client drops an idle connection before the server can close it under a reuse.
KEEPALIVE_S = 4.0


def upstream_session() -> aiohttp.ClientSession:
    """A pooled session for one provider (call it inside the event loop that will use it).

    No cookie jar: an upstream's cookies are not kept between the requests of different callers,
    and filtering a jar costs more per request than the rest of aiohttp's client does. No proxy
    from the environment (``trust_env`` off), as with the official clients on a given transport."""
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


def upstream_transport() -> AiohttpTransport:
    """The httpx transport for one provider's long-lived client (its session opens on first use)."""
    return AiohttpTransport(client=upstream_session)


def connection_failed(exc: BaseException) -> bool:
    """True when ``exc`` (reported as a timeout, maybe) comes from a connection that failed, was
    refused or was closed, rather than from a timeout."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, aiohttp.ClientError):
            return not isinstance(seen, TimeoutError)
        seen = seen.__cause__ or seen.__context__
    return False
