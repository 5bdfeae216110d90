"""Relaying one request to an agent (or a remote front door) and its answer back, chunk by chunk.

Shared by the front door (routed by model name) and the per-agent pass-through ``/agent/{name}/``.
The caller's ``Authorization`` goes to the target it asked for (a remote with an ``api_key`` gets
that key instead), the request id goes along, hop-by-hop headers do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from atoll.deploy.config import RemoteServer
from atoll.deploy.directory import AgentAddress
from atoll.deploy.errors import BodyTooLarge, limited
from atoll.deploy.front_context import front_of
from atoll.deploy.remote import HOP_HEADER, front_door_auth
from atoll.httpkit import bearer_token
from atoll.model_names import model_key

if TYPE_CHECKING:
    import aiohttp

    from atoll.deploy.relay_client import RelayClient

#: Headers only the front door sets (see ``_client_headers``); a caller's own are dropped.
CLIENT_HEADERS = ("x-atoll-client", "x-atoll-front-door-key")

#: Headers that belong to one hop of the connection and are not relayed.
HOP_BY_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade",
              "proxy-connection", "te", "trailer"}
#: Response headers not relayed back: those of the hop, and those the front door's own server (uvicorn)
#: writes, which a caller would otherwise see twice.
NOT_RELAYED_BACK = HOP_BY_HOP | {"date", "server"}
#: Largest request body the front door relays (an agent's own default limit is the same).
MAX_ROUTED_BODY = 8 * 1024 * 1024


def error(request: Request, status: int, message: str) -> JSONResponse:
    """An error in the dialect of the path: OpenAI's ``{"error": {"message": ...}}`` under ``/v1``,
    Ollama's ``{"error": "..."}`` elsewhere."""
    if "/v1/" in request.url.path:
        kind = "not_found_error" if status == 404 else "invalid_request_error"
        return JSONResponse({"error": {"message": message, "type": kind, "param": None,
                                       "code": "model_not_found" if status == 404 else None}},
                            status_code=status)
    return JSONResponse({"error": message}, status_code=status)


async def read_body(request: Request) -> bytes | JSONResponse:
    """The request body, or the 413 when it is past :data:`MAX_ROUTED_BODY` (counted, not trusted)."""
    try:
        return await limited(request, MAX_ROUTED_BODY).body()
    except BodyTooLarge as exc:
        return error(request, 413, exc.message)


def caller_auth(request: Request) -> str | None:
    """The caller's ``Authorization``, unless it carries this server's admin token (which is for the
    management API only and must never reach an agent process)."""
    auth = request.headers.get("authorization")
    admin = front_of(request).config.admin_token
    presented = bearer_token(auth)
    if presented is not None and admin and hmac.compare_digest(presented, admin.encode()):
        return None
    return auth


def upstream_headers(request: Request, remote: RemoteServer | None) -> dict[str, str]:
    """The caller's headers minus hop-by-hop ones, with the request id, and for a remote its key
    and the hop mark (a remote front door must not forward again)."""
    headers = {k: v for k, v in request.headers.items()
               if k.lower() not in HOP_BY_HOP and k.lower() not in ("x-request-id", "authorization", *CLIENT_HEADERS)}
    headers["X-Request-ID"] = request.scope.get("state", {}).get("request_id", "")
    auth = caller_auth(request)
    if remote is not None:
        headers[HOP_HEADER] = "1"
        auth = front_door_auth(remote, auth)
    if auth:
        headers["Authorization"] = auth
    return {k: v for k, v in headers.items() if v}


def _client_headers(request: Request, agent: AgentAddress) -> dict[str, str]:
    """For an agent of this server: the caller's address, proven by the agent's own secret, so the
    agent's per-client rate limits see callers, not the front door's address."""
    peer = request.client.host if request.client else None
    if not peer:
        return {}
    return {"X-Atoll-Client": peer, "X-Atoll-Front-Door-Key": agent.key}


async def forward(request: Request, url: str, body: bytes, to: AgentAddress | RemoteServer, what: str,
                  extra_headers: dict[str, str] | None = None) -> Response:
    """Send ``request`` (method, query, headers, ``body``) to ``url`` (an address of the agent or
    remote ``to``) and stream the answer back;
    502 naming ``what`` when the target cannot be reached. No read timeout (a generation takes
    what it takes), but a caller that goes away before the answer starts ends the wait, and one
    that leaves mid-stream ends the relay (Starlette cancels the stream)."""
    ctx = front_of(request)
    agent = model_key(str(request.scope.get("state", {}).get("model", url)))
    release = ctx.relays.take(agent, ctx.config.max_relays_per_agent)
    if release is None:
        busy = error(request, 429, f"{what} has {ctx.config.max_relays_per_agent} requests open through the "
                     "front door already (max_relays_per_agent): retry shortly")
        busy.headers["Retry-After"] = "1"
        return busy
    try:
        response = await _forward(request, ctx.client, url, body, to, what, extra_headers, release)
    except BaseException:
        release()
        raise
    if not isinstance(response, StreamingResponse):
        release()
    return response


async def _forward(request: Request, client: RelayClient, url: str, body: bytes,
                   to: AgentAddress | RemoteServer, what: str, extra_headers: dict[str, str] | None,
                   release: Callable[[], None]) -> Response:
    import aiohttp
    import yarl

    remote = to if isinstance(to, RemoteServer) else None
    headers = upstream_headers(request, remote) | (extra_headers or {})
    if isinstance(to, AgentAddress):
        headers |= _client_headers(request, to)
    query = request.url.query
    # As written: the path may carry escapes the target must see (``/agent/Mail%5FBot/...``).
    target = yarl.URL(f"{url}?{query}" if query else url, encoded=True)
    session = client.session()

    async def send() -> aiohttp.ClientResponse:
        try:
            return await session.request(request.method, target, data=body or None, headers=headers,
                                         allow_redirects=False, ssl=client.verify(url))
        except aiohttp.ServerDisconnectedError:
            # A pooled keep-alive connection closed by the agent as we reused it (a version that
            # drains after a redeploy): nothing was answered, so send once more on a fresh one.
            return await session.request(request.method, target, data=body or None, headers=headers,
                                         allow_redirects=False, ssl=client.verify(url))

    sending, gone = asyncio.ensure_future(send()), asyncio.ensure_future(_client_gone(request))
    try:
        await asyncio.wait({sending, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not sending.done():  # the caller left before the target answered: stop waiting for it
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await sending
        return Response(status_code=499)
    try:
        response = sending.result()
    except aiohttp.ClientError as exc:
        return error(request, 502, f"{what} is unreachable: {exc or type(exc).__name__}")
    relayed: dict[str, str] = {}
    for key, value in response.headers.items():
        if key.lower() not in NOT_RELAYED_BACK:
            relayed[key] = f"{relayed[key]}, {value}" if key in relayed else value

    async def done() -> None:
        release()
        response.release()

    return StreamingResponse(_relay(response, release), status_code=response.status, headers=relayed,
                             background=BackgroundTask(done))


async def _client_gone(request: Request) -> None:
    """Returns once the caller has disconnected (the body is read by then, so the next ASGI
    message is the disconnect). Starlette does not notice it for a handler still waiting."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _relay(response: aiohttp.ClientResponse, release: Callable[[], None] | None = None) -> AsyncIterator[bytes]:
    """The agent's bytes as they come. If the agent dies mid-stream, the stream ends the way an
    agent's own failing stream does, so clients raise: an ``{"error": ...}`` line in NDJSON, an
    ``error`` event in server-sent events. Read to its end, the connection goes back to the pool;
    a relay cut short (the caller left) closes it, which the agent sees as its caller leaving."""
    import aiohttp

    ends_line = True
    try:
        async for chunk in response.content.iter_any():
            ends_line = chunk.endswith(b"\n")
            yield chunk
    except aiohttp.ClientError as exc:
        kind = response.headers.get("content-type", "")
        message = f"the agent stopped answering mid-stream: {exc or type(exc).__name__}"
        lead = b"" if ends_line else b"\n"
        if kind.startswith("application/x-ndjson"):
            yield lead + json.dumps({"error": message}).encode() + b"\n"
        elif kind.startswith("text/event-stream"):
            yield lead + b"\ndata: " + json.dumps({"error": {"message": message}}).encode() + b"\n\n"
    finally:
        if release is not None:
            release()
        response.release()
