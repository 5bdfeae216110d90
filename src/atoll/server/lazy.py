"""An ASGI app built, with its heavy imports, on its first request."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send


class LazyApp:
    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self.build = build
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = self.build()
        await self._app(scope, receive, send)
