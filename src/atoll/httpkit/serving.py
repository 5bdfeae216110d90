"""uvicorn settings both servers run with."""

from __future__ import annotations

from typing import Any

#: Seconds an idle keep-alive connection stays open. Above the idle lifetimes of common client pools
#: (httpx 5 s, Node 5 s, aiohttp 15 s, Go 90 s), so it is the client that closes an idle connection:
#: at uvicorn's 5 s default the server closed connections just as httpx reused them (ReadError).
KEEP_ALIVE_S = 120

UVICORN_OPTIONS: dict[str, Any] = {
    "timeout_keep_alive": KEEP_ALIVE_S,
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 by default: any local user could then pick the
    # client address rate limits are kept by. No forwarded header is trusted unless configured.
    "proxy_headers": False,
}
