"""The front door's connection pool for relays: an aiohttp session, imported on the first relay.

Relaying is the front door's hot path. Through httpx it cost ~3 ms of CPU per relayed chat turn,
most of it in httpcore's pool, which inspects every pooled connection (a ``getpeername`` and a
readability poll each) on every request and every response end; aiohttp's pool costs a fraction
of that (``benchmarks/bench_gateway.py``). aiohttp is imported by the first relay, not at start:
a deployment server that relays nothing stays inside its memory budget.

The session keeps no cookies (an agent's cookies are not kept between callers), never follows a
redirect (the caller gets it), passes bodies through undecoded (``Content-Encoding`` is relayed as
is), adds no ``Content-Type`` the caller did not send, and uses no proxy from the environment. A
remote with a ``ca_bundle`` is verified against it alone; others against the system's CAs.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from atoll.deploy.remote import verify_for

if TYPE_CHECKING:
    import aiohttp

    from atoll.deploy.config import RemoteServer

#: Connecting to an agent or a remote; the answer itself may take as long as a generation takes.
CONNECT_TIMEOUT_S = 5.0
#: Connections kept to all targets at most (httpx's pool before: 200, 40 of them idle).
MAX_CONNECTIONS = 200
#: Seconds an idle connection is kept: agents keep theirs 120 s (``httpkit.serving.KEEP_ALIVE_S``);
#: a remote behind another server may close sooner, and a send that finds it closed is retried.
KEEPALIVE_S = 30.0


class RelayClient:
    def __init__(self, remotes: list[RemoteServer]) -> None:
        self._verify: dict[str, ssl.SSLContext | bool] = {
            r.url: verify_for(r) for r in remotes if r.tls and r.ca_bundle is not None}
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The pooled session (made inside the running event loop on first use)."""
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S),
                cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, skip_auto_headers=("Content-Type",),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=None))
        return self._session

    def verify(self, url: str) -> ssl.SSLContext | bool:
        """How the target at ``url`` is verified (only HTTPS URLs are)."""
        return next((check for base, check in self._verify.items() if url.startswith(base)), True)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
