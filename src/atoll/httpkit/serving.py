"""uvicorn settings both servers run with, and the drain gate both use when they hand their
clients to a successor (a new agent version, a re-executed deployment server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atoll.errors import ConfigError

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


def tls_options(cert: Path | None, key: Path | None, *, where: str) -> dict[str, Any]:
    """uvicorn's options for serving HTTPS with ``cert``/``key`` (PEM files), or none for plain HTTP.
    A half-given pair or an unreadable file is a configuration error naming ``where`` (the file or
    flags it came from), raised before anything listens, never a traceback from uvicorn later."""
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise ConfigError("tls_cert and tls_key go together: give both (PEM files) or neither", path=where)
    for field, path in (("tls_cert", cert), ("tls_key", key)):
        if not path.is_file():
            raise ConfigError(f"{path} is not a readable file", path=where, field=field)
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


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
