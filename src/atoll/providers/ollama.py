"""An Ollama server as the LLM.

Ollama speaks our own dialect (it is what atoll imitates), so this provider is mostly a thin
translation: neutral messages and options in, ``/api/chat`` NDJSON chunks out. Tool-call arguments
are objects natively (reference §3.2), so no JSON parsing happens here.

The chat stream, the hot path, is read straight off a pooled aiohttp session: the same request
body and headers the official ``ollama`` client sends, each NDJSON line decoded once into a dict.
Through the client it cost about twice the CPU per turn (httpx's request building and URL parsing
over the aiohttp transport, then a pydantic ``ChatResponse`` per chunk; ``benchmarks/bench_gateway.py``).
The client still does what it adds value to: ``/api/show`` at start-up and embeddings.

Errors are mapped once, in :func:`_upstream_errors`: the upstream's own error keeps its message
and status (an unknown model stays a 404 with Ollama's text); an unreachable upstream becomes
:class:`~atoll.errors.UpstreamUnavailable` and a timeout :class:`~atoll.errors.UpstreamTimeout`,
both naming the URL; a reply that is not Ollama's NDJSON is a 502.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
import ollama
import pydantic

from atoll import fastjson
from atoll.client_json import parse_json
from atoll.errors import ProviderError, UpstreamTimeout, UpstreamUnavailable
from atoll.messages import (
    DoneReason,
    Finished,
    GenerationOptions,
    Message,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallRequested,
    ToolSpec,
    Usage,
)
from atoll.providers.base import EmbeddingsNotSupported, ModelProfile
from atoll.providers.transport import connection_failed, upstream_session, upstream_transport

if TYPE_CHECKING:
    from atoll.config import LLMConfig

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://127.0.0.1:11434"
DEFAULT_MODEL = "llama3.2"
#: How long ``start()`` waits for ``/api/show`` before giving up on filling the profile.
STARTUP_PROBE_TIMEOUT_S = 5.0
#: ``llm.extra`` keys that are request fields, not ``options``.
_REQUEST_FIELDS = ("keep_alive",)

# Neutral option name -> Ollama option name.
_OPTION_NAMES = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "max_tokens": "num_predict",
    "stop": "stop",
    "seed": "seed",
    "num_ctx": "num_ctx",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "repeat_penalty": "repeat_penalty",
}


class OllamaProvider:
    """Chat, tools and embeddings against an Ollama (or Ollama-compatible) server.

    ``llm.extra`` passes through: ``keep_alive`` as a request field, anything else as an Ollama
    option (``mirostat``, ``num_thread``, ...), under the request's own options.
    """

    name = "ollama"

    def __init__(self, config: LLMConfig, *, headers: dict[str, str] | None = None) -> None:
        self.base_url: str = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.model: str = config.model or DEFAULT_MODEL
        self.profile = ModelProfile(family="", format="gguf", context_length=config.context_length)
        self._timeout = config.request_timeout
        self._defaults = GenerationOptions(
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_tokens,
            num_ctx=config.context_length,
            extra={k: v for k, v in config.extra.items() if k not in _REQUEST_FIELDS},
        )
        self._keep_alive = config.extra.get("keep_alive")
        # Long-lived, so their pools keep the upstream connections warm: the official client (over
        # aiohttp, httpx-aiohttp) for show and embed, and an aiohttp session for the chat stream,
        # opened on the first turn (inside the event loop), sending the client's own headers
        # (its User-Agent, and the Authorization it takes from OLLAMA_API_KEY or ``headers``: the
        # model host's token, ``atoll.providers.model_host``).
        self._client = ollama.AsyncClient(host=self.base_url, timeout=self._timeout, transport=upstream_transport(),
                                          headers=headers)
        self._headers = dict(self._client._client.headers)
        self._chat_url = f"{self.base_url}/api/chat"
        # ``request_timeout`` for each step, as the official client applies it: waiting for a pooled
        # connection, connecting, and between two reads; a long generation is not cut.
        self._chat_timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout, sock_connect=self._timeout,
                                                   sock_read=self._timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Fill the profile from ``/api/show``. An unreachable upstream only logs a warning: the
        server still starts and reports the upstream's state through ``/health``."""
        probe = ollama.AsyncClient(host=self.base_url, timeout=min(STARTUP_PROBE_TIMEOUT_S, self._timeout),
                                   headers=self._headers)
        try:
            with _upstream_errors(self.base_url, self.model):
                shown = await probe.show(self.model)
        except ProviderError as exc:
            logger.warning("Ollama upstream not ready (%s); continuing", exc)
            return
        finally:
            await _close_client(probe)
        _fill_profile(self.profile, shown)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Stream one chat turn. Yields text/thinking deltas, whole tool calls, then one ``Finished``.

        A consumer that stops early (or is cancelled: the client went away) leaves the response
        unread, and aiohttp then closes that connection, which ends the generation upstream. One
        that does not stop reads on past the ``done`` line to the end of the body, so the
        connection goes back to the pool (a new TCP connection per turn otherwise)."""
        body = fastjson.dumps(self._chat_body(request))
        done = False
        with _upstream_errors(self.base_url, self.model):
            if self._session is None:
                self._session = upstream_session()
            async with self._session.post(self._chat_url, data=body, headers=self._headers,
                                          timeout=self._chat_timeout) as response:
                if response.status >= 400:
                    message = _error_text(await response.text(errors="replace"))
                    raise ProviderError(message, status=response.status, model=self.model, body=message)
                async for line in _lines(response.content):
                    chunk = _decode(line, self.model)
                    for event in _events_from_chunk(chunk):
                        yield event
                    done = done or chunk.get("done") is True
        if not done:
            yield Finished()

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with _upstream_errors(self.base_url, self.model):
            try:
                response = await self._client.embed(model=self.model, input=texts)
            except ollama.ResponseError as exc:
                if "does not support embeddings" in exc.error:
                    raise EmbeddingsNotSupported(self.model) from exc
                raise
        return [list(vector) for vector in response.embeddings]

    async def aclose(self) -> None:
        try:
            await _close_client(self._client)
        finally:
            if self._session is not None:
                await self._session.close()

    def _chat_body(self, request: ModelRequest) -> dict[str, Any]:
        """The ``/api/chat`` request body, as the official client writes it (no null fields)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [_message_to_ollama(m) for m in request.messages],
            "stream": True,
            "options": _options_to_ollama(request.options.merged_over(self._defaults)),
        }
        if request.tools:
            body["tools"] = [_tool_to_ollama(t) for t in request.tools]
        if request.format is not None:
            body["format"] = request.format
        if request.think is not None:
            body["think"] = request.think
        if self._keep_alive is not None:
            body["keep_alive"] = self._keep_alive
        return body


# ---- translation ----------------------------------------------------------------------------


def _message_to_ollama(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.thinking:
        out["thinking"] = message.thinking
    if message.images:
        out["images"] = message.images
    if message.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": call.name, "arguments": call.arguments}} for call in message.tool_calls
        ]
    if message.tool_name:
        out["tool_name"] = message.tool_name
    return out


def _tool_to_ollama(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


def _options_to_ollama(options: GenerationOptions) -> dict[str, Any]:
    """Neutral options as Ollama's ``options`` map; unset ones are left to the upstream."""
    mapped = {k: v for k, v in options.extra.items() if v is not None}
    for neutral, native in _OPTION_NAMES.items():
        value = getattr(options, neutral)
        if value is not None:
            mapped[native] = value
    return mapped


# ---- the NDJSON stream ----------------------------------------------------------------------


class MalformedChunk(ValueError):
    """A line of the upstream's stream that is not an Ollama chat chunk."""


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The non-blank lines of an NDJSON body, as the bytes arrive (a line may be of any length)."""
    pending = b""
    async for data in content.iter_any():
        pending += data
        if b"\n" not in data:
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def _decode(line: bytes, model: str) -> dict[str, Any]:
    """One chunk; an ``{"error": ...}`` line (the upstream failed mid-generation) raises it."""
    chunk = fastjson.loads(line)
    if not isinstance(chunk, dict):
        raise MalformedChunk(f"expected a JSON object, got {line[:80]!r}")
    if error := chunk.get("error"):
        raise ProviderError(str(error), status=500, model=model, body=str(error))
    return chunk


def _error_text(text: str) -> str:
    """The message of an error answer: Ollama's ``{"error": "..."}``, else the text as it came."""
    try:
        parsed = parse_json(text)
    except ValueError:  # not JSON, or nested too deeply
        return text
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return str(error) if error else text


def _events_from_chunk(chunk: dict[str, Any]) -> Iterator[ModelEvent]:
    message = chunk.get("message") or {}
    if not isinstance(message, dict):
        raise MalformedChunk(f"'message' is not an object: {message!r:.80}")
    if thinking := message.get("thinking"):
        yield ThinkingDelta(str(thinking))
    if content := message.get("content"):
        yield TextDelta(str(content))
    for call in message.get("tool_calls") or ():
        yield ToolCallRequested(_tool_call(call))
    if chunk.get("done") is True:
        reason: DoneReason = "length" if chunk.get("done_reason") == "length" else "stop"
        yield Finished(reason=reason, usage=_usage(chunk))


def _tool_call(call: Any) -> ToolCall:
    function = call.get("function") if isinstance(call, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    arguments = function.get("arguments") or {} if isinstance(function, dict) else None
    if not isinstance(name, str) or not isinstance(arguments, dict):
        raise MalformedChunk(f"not a tool call (function with a name and object arguments): {call!r:.120}")
    return ToolCall(name=name, arguments=dict(arguments))


def _usage(chunk: dict[str, Any]) -> Usage:
    def count(key: str) -> int:
        value = chunk.get(key)
        return value if isinstance(value, int) else 0

    return Usage(
        prompt_tokens=count("prompt_eval_count"),
        completion_tokens=count("eval_count"),
        load_duration_ns=count("load_duration"),
        prompt_eval_duration_ns=count("prompt_eval_duration"),
        eval_duration_ns=count("eval_duration"),
    )


def _fill_profile(profile: ModelProfile, shown: ollama.ShowResponse) -> None:
    details = shown.details
    if details is not None:
        profile.family = details.family or profile.family
        profile.format = details.format or profile.format
        profile.parameter_size = details.parameter_size or ""
        profile.quantization_level = details.quantization_level or ""
    capabilities = set(shown.capabilities or ())
    if capabilities:
        profile.supports_tools = "tools" in capabilities
        profile.supports_thinking = "thinking" in capabilities
        profile.supports_embeddings = "embedding" in capabilities
    for key, value in (shown.modelinfo or {}).items():
        if key.endswith(".context_length") and profile.context_length is None:
            profile.context_length = int(value)
        elif key.endswith(".embedding_length"):
            profile.embedding_length = int(value)


# ---- errors ---------------------------------------------------------------------------------


@contextmanager
def _upstream_errors(base_url: str, model: str) -> Iterator[None]:
    """Map the ``ollama`` client's and ``httpx``'s exceptions onto :mod:`atoll.errors`."""
    try:
        yield
    except ollama.ResponseError as exc:
        # An error line inside a stream has no status (-1): the upstream failed mid-generation.
        status = exc.status_code if exc.status_code >= 400 else 500
        raise ProviderError(exc.error, status=status, model=model, body=exc.error) from exc
    except (json.JSONDecodeError, UnicodeDecodeError, MalformedChunk, pydantic.ValidationError) as exc:
        raise ProviderError(f"unexpected response from Ollama upstream at {base_url}: {exc}",
                            status=502, model=model) from exc
    except TimeoutError as exc:  # aiohttp's timeouts (connecting, or between two reads of the stream)
        raise UpstreamTimeout(f"Ollama upstream at {base_url} timed out", model=model) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamUnavailable(f"cannot reach Ollama upstream at {base_url}: {_reason(exc)}",
                                  model=model) from exc
    except httpx.TransportError as exc:
        if isinstance(exc, httpx.TimeoutException) and not connection_failed(exc):
            raise UpstreamTimeout(f"Ollama upstream at {base_url} timed out", model=model) from exc
        raise UpstreamUnavailable(f"cannot reach Ollama upstream at {base_url}: {_reason(exc)}",
                                  model=model) from exc
    except ConnectionError as exc:
        raise UpstreamUnavailable(f"cannot reach Ollama upstream at {base_url}: {_reason(exc)}",
                                  model=model) from exc


def _reason(exc: BaseException) -> str:
    """The root cause's text: the ``ollama`` client replaces ``ConnectError`` with a long hint."""
    cause = exc.__cause__ or exc.__context__
    return str(cause or exc) or type(exc).__name__


async def _close_client(client: ollama.AsyncClient) -> None:
    await client.close()  # type: ignore[no-untyped-call]  # unannotated in ollama 0.6
