"""An Ollama server as the LLM, through the official ``ollama`` Python client.

Ollama speaks our own dialect (it is what atoll imitates), so this provider is mostly a thin
translation: neutral messages and options in, ``ChatResponse`` chunks out. Tool-call arguments are
objects natively (reference §3.2), so no JSON parsing happens here.

Errors are mapped once, in :func:`_upstream_errors`: the upstream's own ``ResponseError`` keeps its
message and status (an unknown model stays a 404 with Ollama's text); an unreachable upstream
becomes :class:`~atoll.errors.UpstreamUnavailable` and a timeout
:class:`~atoll.errors.UpstreamTimeout`, both naming the URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import ollama
import pydantic

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
from atoll.providers.transport import connection_failed, upstream_transport

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

    def __init__(self, config: LLMConfig) -> None:
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
        # One long-lived client whose pool keeps the upstream connections warm. Its transport is
        # aiohttp (httpx-aiohttp): the same httpx API and exceptions underneath the ``ollama`` client,
        # at a fraction of the CPU per request (benchmarks/bench_gateway.py).
        self._client = ollama.AsyncClient(host=self.base_url, timeout=self._timeout, transport=upstream_transport())

    async def start(self) -> None:
        """Fill the profile from ``/api/show``. An unreachable upstream only logs a warning: the
        server still starts and reports the upstream's state through ``/health``."""
        probe = ollama.AsyncClient(host=self.base_url, timeout=min(STARTUP_PROBE_TIMEOUT_S, self._timeout))
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
        """Stream one chat turn. Yields text/thinking deltas, whole tool calls, then one ``Finished``."""
        kwargs = self._chat_kwargs(request)
        done = False
        with _upstream_errors(self.base_url, self.model):
            chunks = await self._client.chat(**kwargs)
            # aclosing: a consumer that stops early must not leave the HTTP response open. One that
            # does not stop reads on past the ``done`` line to the end of the body, so the connection
            # goes back to the pool instead of being closed mid-response (a new TCP connection per turn).
            async with aclosing(chunks):
                async for chunk in chunks:
                    for event in _events_from_chunk(chunk):
                        yield event
                    done = done or bool(chunk.done)
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
        await _close_client(self._client)

    def _chat_kwargs(self, request: ModelRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [_message_to_ollama(m) for m in request.messages],
            "stream": True,
            "options": _options_to_ollama(request.options.merged_over(self._defaults)),
        }
        if request.tools:
            kwargs["tools"] = [_tool_to_ollama(t) for t in request.tools]
        if request.format is not None:
            kwargs["format"] = request.format
        if request.think is not None:
            kwargs["think"] = request.think
        if self._keep_alive is not None:
            kwargs["keep_alive"] = self._keep_alive
        return kwargs


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


def _events_from_chunk(chunk: ollama.ChatResponse) -> Iterator[ModelEvent]:
    message = chunk.message
    if message.thinking:
        yield ThinkingDelta(message.thinking)
    if message.content:
        yield TextDelta(message.content)
    for call in message.tool_calls or ():
        arguments = dict(call.function.arguments or {})
        yield ToolCallRequested(ToolCall(name=call.function.name, arguments=arguments))
    if chunk.done:
        reason: DoneReason = "length" if chunk.done_reason == "length" else "stop"
        yield Finished(reason=reason, usage=_usage(chunk))


def _usage(chunk: ollama.ChatResponse) -> Usage:
    return Usage(
        prompt_tokens=chunk.prompt_eval_count or 0,
        completion_tokens=chunk.eval_count or 0,
        load_duration_ns=chunk.load_duration or 0,
        prompt_eval_duration_ns=chunk.prompt_eval_duration or 0,
        eval_duration_ns=chunk.eval_duration or 0,
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
    except (json.JSONDecodeError, pydantic.ValidationError) as exc:
        raise ProviderError(f"unexpected response from Ollama upstream at {base_url}: {exc}",
                            status=502, model=model) from exc
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
