"""uvicorn settings both servers run with, and the drain gate both use when they hand their
clients to a successor (a new agent version, a re-executed deployment server)."""

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


class DrainGate:
    """ASGI middleware: while draining, every response says ``Connection: close`` (uvicorn then
    closes the connection after it, instead of keeping it for a request the next version should get)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.draining = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def closing(message: dict[str, Any]) -> None:
            if self.draining and message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)
