"""Streaming replies (NDJSON or SSE) with Ollama's error semantics, and collecting them whole.

The producer runs in one task of its own and hands chunks over a queue. That lets the handler
wait for the first chunk and still answer a real status code (404, 502, ...) if the producer fails
before producing anything; once bytes have gone out, a failure becomes a last ``{"error": ...}``
line. When the client disconnects, the response is cancelled and so is the producer task, which
stops the generation and any tool calls in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from atoll import fastjson
from atoll.agent.events import AgentEvent, RunFinished
from atoll.dialects.ollama.render import ollama_error_body, ollama_error_chunk
from atoll.errors import AtollError
from atoll.server.errors import retry_after

if TYPE_CHECKING:
    from atoll.dialects import ErrorBody, Renderer

logger = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
#: Ends an SSE stream that finished normally.
SSE_DONE = b"data: [DONE]\n\n"
_END = object()


def ndjson_line(chunk: dict[str, Any]) -> bytes:
    return fastjson.dumps(chunk) + b"\n"


def sse_event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + fastjson.dumps(chunk) + b"\n\n"


class JSONReply(JSONResponse):
    """A whole reply (``stream: false``), encoded like the streamed chunks."""

    def render(self, content: Any) -> bytes:
        return fastjson.dumps(content)


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, AtollError):
        return exc.message
    logger.error("generation failed", exc_info=exc)
    return f"generation failed: {type(exc).__name__}: {exc}"


class _Pump:
    def __init__(self, chunks: AsyncIterator[dict[str, Any]]) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
        self._task = asyncio.create_task(self._run(chunks))

    async def _run(self, chunks: AsyncIterator[dict[str, Any]]) -> None:
        """Every way the generation ends puts a last item in the queue (the stream's end or the
        failure), so the client always gets a final line; only the pump's own cancellation (the
        client went away) ends it without one."""
        try:
            async for chunk in chunks:
                await self._queue.put(chunk)
            await self._queue.put(_END)
        except BaseException as exc:
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
                raise
            await self._queue.put(exc)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise

    async def next(self) -> Any:
        return await self._queue.get()

    def ready(self) -> Any:
        """The next item if one is already queued, else ``None``."""
        return None if self._queue.empty() else self._queue.get_nowait()

    def cancel(self) -> None:
        self._task.cancel()


@dataclass(frozen=True)
class _Framing:
    """How a stream is written: a chunk's bytes, a failure's body, and what ends a good stream."""

    media_type: str
    encode: Callable[[dict[str, Any]], bytes]
    #: The body of an error answered with a status, before the first byte.
    error_body: ErrorBody
    #: The last chunk of a stream that failed after it started.
    error_chunk: Callable[[str], dict[str, Any]]
    trailer: bytes = b""


async def _stream(chunks: AsyncIterator[dict[str, Any]], framing: _Framing,
                  headers: dict[str, str] | None) -> Response:
    pump = _Pump(chunks)
    try:
        first = await pump.next()
    except asyncio.CancelledError:
        pump.cancel()
        raise
    if isinstance(first, BaseException):
        error = first if isinstance(first, AtollError) else AtollError(_error_message(first))
        return JSONResponse(framing.error_body(error.message, error.status), status_code=error.status,
                            headers=retry_after(error))
    encode = framing.encode

    async def body() -> AsyncIterator[bytes]:
        """Chunks already waiting go out in one write: fewer wakeups and syscalls per token,
        which matters when the model's threads and the event loop share two cores."""
        item = first
        try:
            while True:
                batch: list[bytes] = []
                while item is not None and item is not _END and not isinstance(item, BaseException):
                    batch.append(encode(item))
                    item = pump.ready()
                if isinstance(item, BaseException):
                    batch.append(encode(framing.error_chunk(_error_message(item))))
                elif item is _END and framing.trailer:
                    batch.append(framing.trailer)
                if batch:
                    yield b"".join(batch)
                if item is _END or isinstance(item, BaseException):
                    return
                item = await pump.next()
        finally:
            pump.cancel()

    return StreamingResponse(body(), media_type=framing.media_type, headers=headers)


_NDJSON = _Framing(NDJSON, ndjson_line, ollama_error_body, ollama_error_chunk)


async def stream_ndjson(chunks: AsyncIterator[dict[str, Any]], *, headers: dict[str, str] | None = None) -> Response:
    """Stream ``chunks`` as NDJSON lines; a failure is Ollama's ``{"error": ...}`` (status or last line)."""
    return await _stream(chunks, _NDJSON, headers)


async def stream_sse(chunks: AsyncIterator[dict[str, Any]], *, error_body: ErrorBody,
                     headers: dict[str, str] | None = None) -> Response:
    """Stream ``chunks`` as SSE ``data:`` events ending with ``data: [DONE]``; a failure is
    ``error_body`` (with its status before the first byte, as the last event after it)."""
    framing = _Framing(SSE, sse_event, error_body, lambda message: error_body(message, 500), SSE_DONE)
    return await _stream(chunks, framing, headers)


async def rendered(renderer: Renderer, events: AsyncIterator[AgentEvent]) -> AsyncIterator[dict[str, Any]]:
    """The wire chunks of a streamed reply."""
    async for event in events:
        for chunk in renderer.chunks(event):
            yield chunk


async def collect(request: Request, renderer: Renderer, events: AsyncIterator[AgentEvent]) -> dict[str, Any]:
    """Run the turn to its end and return the whole reply (``stream: false``).

    Runs inline, with no task of its own: most replies finish quickly. Only a generation still
    going after :data:`DISCONNECT_POLL_S` gets a watcher, which cancels it if the client leaves.
    """
    handler = asyncio.current_task()
    watcher: asyncio.Task[None] | None = None

    def start_watching() -> None:
        nonlocal watcher
        if handler is not None:
            watcher = asyncio.ensure_future(_cancel_on_disconnect(request, handler))

    reply: dict[str, Any] | None = None
    timer = asyncio.get_running_loop().call_later(DISCONNECT_POLL_S, start_watching)
    try:
        async for event in events:  # to the end: the session is saved after the last event
            if isinstance(event, RunFinished):
                reply = renderer.reply(event)
            else:
                renderer.take(event)
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()
    if reply is None:
        raise AtollError("the agent stopped without finishing its reply")
    return reply


DISCONNECT_POLL_S = 0.5


async def _cancel_on_disconnect(request: Request, handler: asyncio.Task[Any]) -> None:
    while True:
        if await request.is_disconnected():
            logger.info("client went away; generation cancelled")
            handler.cancel()
            return
        await asyncio.sleep(DISCONNECT_POLL_S)
