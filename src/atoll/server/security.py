"""API keys, rate limits, body size limit and request timeout, as one pure ASGI middleware.

Pure ASGI (not ``BaseHTTPMiddleware``) so NDJSON and SSE streams still flush chunk by chunk and the
per-request cost stays a few dictionary look-ups. Errors raised here never reach the app's
exception handlers, so the middleware answers them itself with the same error bodies.

Checks, in order: API key (401) -> requests per window (429) -> declared body size (413) ->
concurrent generations (429) -> the app, with the body counted as it streams in (413) and the whole
exchange bounded by ``request_timeout`` (504, or a last error line once a stream has started).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atoll.config import env
from atoll.dialects.a2a import A2A_PATH, CARD_PATH
from atoll.dialects.openai.render import openai_error_body
from atoll.errors import AtollError, PayloadTooLarge, RateLimited, Unauthorized
from atoll.httpkit import BodyLimit, TokenSet, header
from atoll.httpkit.body import declared_too_large, too_large_message
from atoll.mcp_http import MCP_PATH
from atoll.server.errors import error_reply

if TYPE_CHECKING:
    from fastapi import FastAPI

    from atoll.config import ServerSection

#: Open to anyone even with keys configured: liveness probes, version checks, the A2A agent card.
PUBLIC_PATHS = frozenset({"/", "/health", "/api/version", CARD_PATH})
#: Requests that run the agent; these count against ``max_concurrent_generations``.
GENERATION_PATHS = frozenset({"/api/chat", "/api/generate", "/v1/chat/completions", "/v1/completions", MCP_PATH,
                              A2A_PATH})
#: Not counted against the per-minute limit, so probes and scrapers never lock a client out.
UNMETERED_PATHS = PUBLIC_PATHS | {"/metrics"}
MAX_BODY_SETTING = "server.max_body_bytes"
#: Set by the deployment server's front door on requests it relays to an agent it spawned: the
#: caller's address, and the agent's own secret proving the header comes from the front door.
FRONT_DOOR_CLIENT, FRONT_DOOR_PROOF = b"x-atoll-client", b"x-atoll-front-door-key"
#: What a client over the concurrency limit is told to wait before retrying.
CONCURRENCY_RETRY_AFTER_S = 1.0


class ApiKeys:
    """The configured keys; ``owner`` checks a request's ``Authorization`` header in constant time."""

    def __init__(self, keys: list[str], deployment_key: str | None = None) -> None:
        keys = [key for key in keys if key]
        # The deployment server's own key for this agent counts only where keys are required at all.
        self._keys = TokenSet([*keys, deployment_key] if keys and deployment_key else keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def owner(self, authorization: str | None) -> str:
        """The fingerprint of the key presented, or ``Unauthorized``. Every key is compared, always."""
        if not authorization:
            raise Unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
        found = self._keys.match(authorization)
        if found is None:
            raise Unauthorized("invalid API key")
        return found


class RequestRateLimiter:
    """At most ``limit`` requests per ``window_s`` per client, as a generic cell rate algorithm.

    One float per client (its "theoretical arrival time"): a burst of ``limit`` is allowed, then one
    request every ``window_s / limit`` seconds; a refused client learns exactly when to retry.
    """

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = window_s / limit
        self.tolerance = window_s - self.interval
        self.clock = clock
        self._arrival: dict[str, float] = {}

    def acquire(self, client: str) -> None:
        now = self.clock()
        arrival = max(self._arrival.get(client, now), now)
        wait = arrival - now - self.tolerance
        if wait > 0:
            raise RateLimited(f"rate limit exceeded: retry in {wait:.1f} s", retry_after=wait)
        self._arrival[client] = arrival + self.interval
        if len(self._arrival) > 10_000:
            self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        """Clients whose arrival time has passed have their full burst back; no need to remember them."""
        self._arrival = {client: t for client, t in self._arrival.items() if t > now}


class ConcurrencyLimiter:
    """At most ``limit`` generations in flight per client."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active: dict[str, int] = {}

    @contextmanager
    def slot(self, client: str) -> Iterator[None]:
        active = self._active.get(client, 0)
        if active >= self.limit:
            raise RateLimited(f"too many concurrent generations (limit {self.limit})",
                              retry_after=CONCURRENCY_RETRY_AFTER_S)
        self._active[client] = active + 1
        try:
            yield
        finally:
            self._active[client] -= 1
            if not self._active[client]:
                del self._active[client]


def _stream_error_line(content_type: str, message: str) -> bytes:
    """The last line of a stream cut short, in the stream's own framing."""
    if "text/event-stream" in content_type:
        return b"data: " + json.dumps(openai_error_body(message, 504)).encode() + b"\n\n"
    if "ndjson" in content_type:
        return json.dumps({"error": message}).encode() + b"\n"
    return b""


class _Exchange:
    """One request's receive/send, wrapped: counts the body, remembers what has been sent."""

    __slots__ = ("_send", "body", "content_type", "finished", "raw_receive", "scope", "started")

    def __init__(self, scope: Scope, receive: Receive, send: Send, max_body: int) -> None:
        self.scope, self.raw_receive, self._send = scope, receive, send
        self.body = BodyLimit(receive, max_body, setting=MAX_BODY_SETTING)
        self.started = False
        self.finished = False
        self.content_type = ""

    async def send(self, message: Message) -> None:
        if self.body.exceeded and not self.started:
            await self.reply(PayloadTooLarge(self.body.message))
            return
        if self.finished:
            return
        if message["type"] == "http.response.start":
            self.started = True
            headers = dict(message.get("headers", []))
            self.content_type = headers.get(b"content-type", b"").decode("latin-1")
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.finished = True
        await self._send(message)

    async def reply(self, exc: AtollError) -> None:
        """Answer with an error, unless a response is already under way."""
        if self.started:
            return
        self.started = self.finished = True
        await error_reply(self.scope["path"], exc)(self.scope, self.raw_receive, self._send)

    async def cut_short(self, message: str) -> None:
        """End a response that started but did not finish in time."""
        if self.finished:
            return
        line = _stream_error_line(self.content_type, message)
        self.finished = True
        await self._send({"type": "http.response.body", "body": line, "more_body": False})


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: ServerSection) -> None:
        self.app = app
        self.keys = ApiKeys(settings.api_keys, env("ATOLL_DEPLOY_AGENT_KEY"))
        #: The secret the deployment server handed this agent at spawn: a client address from the
        #: front door (``X-Atoll-Client``) counts only with it (``X-Atoll-Front-Door-Key``).
        self.front_door_key = env("ATOLL_DEPLOY_AGENT_KEY")
        self.rate = RequestRateLimiter(settings.rate_limit_per_minute, settings.rate_limit_window_s) \
            if settings.rate_limit_per_minute else None
        self.concurrency = ConcurrencyLimiter(settings.max_concurrent_generations) \
            if settings.max_concurrent_generations else None
        self.max_body = settings.max_body_bytes
        self.timeout = settings.request_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(scope, receive, send, self.max_body)
        try:
            client = self._admit(scope)
            # A body is framed by its Content-Length (checked in _admit; with Transfer-Encoding too it
            # was refused by the front layer) or chunked, and then counted as it arrives.
            receive = exchange.raw_receive if header(scope, b"content-length") else exchange.body
            if self.concurrency is not None and scope["path"] in GENERATION_PATHS and scope["method"] == "POST":
                with self.concurrency.slot(client):
                    await self._run(exchange, receive)
            else:
                await self._run(exchange, receive)
        except AtollError as exc:
            await exchange.reply(exc)

    def _admit(self, scope: Scope) -> str:
        """Authenticate and meter the request; the client's identity for the limits."""
        path: str = scope["path"]
        client = self._client_address(scope)
        if self.keys.enabled and path not in PUBLIC_PATHS and scope["method"] != "OPTIONS":
            owner = self.keys.owner(header(scope, b"authorization"))
            scope.setdefault("state", {})["key_owner"] = owner
            client = owner
        if self.rate is not None and path not in UNMETERED_PATHS and scope["method"] != "OPTIONS":
            self.rate.acquire(client)
        if declared_too_large(scope, self.max_body):
            raise PayloadTooLarge(too_large_message(self.max_body, MAX_BODY_SETTING))
        return client

    def _client_address(self, scope: Scope) -> str:
        """The caller's address: the front door's ``X-Atoll-Client`` when it proves itself with this
        agent's secret (any local user could send a bare header), else the connection's peer."""
        forwarded, proof = header(scope, FRONT_DOOR_CLIENT), header(scope, FRONT_DOOR_PROOF)
        if forwarded and proof and self.front_door_key \
                and hmac.compare_digest(proof.encode(), self.front_door_key.encode()):
            with contextlib.suppress(ValueError):
                address = str(ipaddress.ip_address(forwarded.strip()))
                scope["client"] = (address, 0)  # the access line names the real caller too
                return address
        return _address(scope)

    async def _run(self, exchange: _Exchange, receive: Receive) -> None:
        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline:
                await self.app(exchange.scope, receive, exchange.send)
        except TimeoutError:
            if not deadline.expired():
                raise
            message = f"request timed out after {self.timeout:g} s (server.request_timeout)"
            await exchange.reply(AtollError(message, status=504))
            await exchange.cut_short(message)


def _address(scope: Scope) -> str:
    client: Any = scope.get("client")
    return str(client[0]) if client else "-"


def install_security(app: FastAPI, settings: ServerSection) -> None:
    """Add the middleware; the front layer (``install_observability``) goes outside it, so it sees
    and logs every answer this one gives, and answers CORS preflights before a key is asked for."""
    app.add_middleware(SecurityMiddleware, settings=settings)
