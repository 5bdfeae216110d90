"""NDJSON streaming with Ollama's error semantics.

The producer runs in one task of its own and hands chunks over a queue. That lets the handler
wait for the first chunk and still answer a real status code (404, 502, ...) if the producer fails
before producing anything; once bytes have gone out, a failure becomes a last ``{"error": ...}``
line. When the client disconnects, the response is cancelled and so is the producer task, which
stops the generation and any tool calls in flight.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from atoll.errors import AtollError
from atoll.server.errors import error_response

logger = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
_END = object()


def ndjson_line(chunk: dict[str, Any]) -> bytes:
    return json.dumps(chunk, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


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
        try:
            async for chunk in chunks:
                await self._queue.put(chunk)
            await self._queue.put(_END)
        except Exception as exc:
            await self._queue.put(exc)

    async def next(self) -> Any:
        return await self._queue.get()

    def ready(self) -> Any:
        """The next item if one is already queued, else ``None``."""
        return None if self._queue.empty() else self._queue.get_nowait()

    def cancel(self) -> None:
        self._task.cancel()


def ollama_error_chunk(message: str) -> dict[str, Any]:
    return {"error": message}


async def stream_ndjson(
    chunks: AsyncIterator[dict[str, Any]],
    *,
    headers: dict[str, str] | None = None,
    encode: Callable[[dict[str, Any]], bytes] = ndjson_line,
    error_chunk: Callable[[str], dict[str, Any]] = ollama_error_chunk,
    media_type: str = NDJSON,
    error_response_for: Callable[[AtollError], Response] = error_response,
) -> Response:
    """Stream ``chunks``; ``encode``/``error_chunk``/``media_type`` let the OpenAI dialect reuse it."""
    pump = _Pump(chunks)
    try:
        first = await pump.next()
    except asyncio.CancelledError:
        pump.cancel()
        raise
    if isinstance(first, AtollError):
        return error_response_for(first)
    if isinstance(first, Exception):
        return error_response_for(AtollError(_error_message(first)))

    async def body() -> AsyncIterator[bytes]:
        """Chunks already waiting go out in one write: fewer wakeups and syscalls per token,
        which matters when the model's threads and the event loop share two cores."""
        item = first
        try:
            while True:
                batch: list[bytes] = []
                while item is not None and item is not _END and not isinstance(item, Exception):
                    batch.append(encode(item))
                    item = pump.ready()
                if isinstance(item, Exception):
                    batch.append(encode(error_chunk(_error_message(item))))
                if batch:
                    yield b"".join(batch)
                if item is _END or isinstance(item, Exception):
                    return
                item = await pump.next()
        finally:
            pump.cancel()

    return StreamingResponse(body(), media_type=media_type, headers=headers)


async def collect(request: Request, chunks: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    """Run the producer to its last chunk (``stream:false``).

    Runs inline, with no task of its own: most replies finish quickly. Only a generation still
    going after :data:`DISCONNECT_POLL_S` gets a watcher, which cancels it if the client leaves.
    """
    last: dict[str, Any] = {}
    handler = asyncio.current_task()
    watcher: asyncio.Task[None] | None = None

    def start_watching() -> None:
        nonlocal watcher
        if handler is not None:
            watcher = asyncio.ensure_future(_cancel_on_disconnect(request, handler))

    timer = asyncio.get_running_loop().call_later(DISCONNECT_POLL_S, start_watching)
    try:
        async for chunk in chunks:
            last = chunk
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()
    return last


DISCONNECT_POLL_S = 0.5


async def _cancel_on_disconnect(request: Request, handler: asyncio.Task[Any]) -> None:
    while True:
        if await request.is_disconnected():
            logger.info("client went away; generation cancelled")
            handler.cancel()
            return
        await asyncio.sleep(DISCONNECT_POLL_S)
