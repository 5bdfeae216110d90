"""Request body limits: a body is framed once, and counted as it arrives whatever it declared.

``Content-Length`` together with ``Transfer-Encoding`` is refused (400): servers and proxies that
disagree about which one frames the body are how requests get smuggled, and a short declared
length in front of a chunked body would otherwise escape the size check.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Message, Receive, Scope

from atoll.errors import PayloadTooLarge, RequestError
from atoll.httpkit.requests import header


def too_large_message(limit: int, setting: str = "") -> str:
    return f"request body too large: the limit is {limit} bytes" + (f" ({setting})" if setting else "")


def framing_problem(scope: Scope) -> RequestError | None:
    """Why the body's framing is refused (both length and chunking, a bad length), or None."""
    length = header(scope, b"content-length")
    if length is None:
        return None
    if header(scope, b"transfer-encoding") is not None:
        return RequestError("a request may not carry both Content-Length and Transfer-Encoding")
    if not length.strip().isdigit():
        return RequestError(f"invalid Content-Length: {length!r}")
    return None


def declared_too_large(scope: Scope, limit: int) -> bool:
    length = header(scope, b"content-length")
    return length is not None and length.strip().isdigit() and int(length) > limit


class BodyLimit:
    """A ``receive`` that counts the body and raises ``error`` past ``limit`` bytes (chunked bodies
    declare no length, so the count is what holds)."""

    __slots__ = ("error", "exceeded", "limit", "message", "receive", "received")

    def __init__(self, receive: Receive, limit: int,
                 error: Callable[[str], Exception] = PayloadTooLarge, setting: str = "") -> None:
        self.receive, self.limit, self.error = receive, limit, error
        self.message = too_large_message(limit, setting)
        self.received = 0
        self.exceeded = False

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.exceeded = True
                raise self.error(self.message)
        return message

