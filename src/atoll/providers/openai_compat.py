"""Any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, LM Studio, OpenAI) as the LLM,
through the official ``openai`` client.

The OpenAI dialect differs from ours in three places this module absorbs: tool-call arguments are
JSON *strings* streamed in pieces (accumulated here into whole calls with object arguments), tool
results must name the call they answer (``tool_call_id``, which Ollama clients never send; we
pair them with the open calls in order), and usage arrives in a last chunk without choices
(``stream_options.include_usage``). Durations are measured here: the API reports none.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import openai

from atoll.client_json import parse_json
from atoll.errors import ProviderError, UpstreamTimeout, UpstreamUnavailable
from atoll.messages import (
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
from atoll.providers.transport import connection_failed

if TYPE_CHECKING:
    from atoll.config import LLMConfig

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
#: One retry: enough for a blip, short enough that an unreachable upstream fails quickly.
DEFAULT_MAX_RETRIES = 1
#: Options that OpenAI-compatible servers (vLLM, llama.cpp) take as extra body fields.
_EXTRA_BODY_OPTIONS = ("top_k", "repeat_penalty")
_THINK_LEVELS = ("low", "medium", "high")


class OpenAIProvider:
    """Chat, tools and embeddings against an OpenAI-compatible ``/v1`` endpoint.

    ``llm.extra``: ``max_retries`` (default 1), ``embedding_model`` (default: the chat model), and
    any other key is sent in the request body as is (``extra_body``), e.g. ``min_p`` for vLLM.
    """

    name = "openai"

    def __init__(self, config: LLMConfig) -> None:
        self.base_url: str = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.model: str = config.model or DEFAULT_MODEL
        self.profile = ModelProfile(family="openai", format="api", context_length=config.context_length,
                                    supports_embeddings=True)
        extra = dict(config.extra)
        self._embedding_model: str = extra.pop("embedding_model", self.model)
        max_retries = int(extra.pop("max_retries", DEFAULT_MAX_RETRIES))
        self._extra_body = extra
        self._defaults = GenerationOptions(
            temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens
        )
        # aiohttp under the SDK (its own ``DefaultAioHttpClient``): the same API and errors at a
        # fraction of httpx's cost per request (benchmarks/bench_gateway.py).
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=config.api_key or "not-needed",
            timeout=config.request_timeout, max_retries=max_retries,
            http_client=openai.DefaultAioHttpClient(timeout=config.request_timeout),
        )

    async def start(self) -> None:
        """Nothing to load; the upstream's state is reported by the server's health check."""

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Stream one chat turn: text/thinking deltas, whole tool calls, then one ``Finished``."""
        turn = _TurnState(started=time.perf_counter_ns())
        with _upstream_errors(self.base_url, self.model):
            chunks = await self._open_stream(self._chat_kwargs(request))
            async with chunks:
                async for chunk in chunks:
                    for event in turn.feed(chunk):
                        yield event
        for event in turn.finish():
            yield event

    async def _open_stream(self, kwargs: dict[str, Any]) -> Any:
        """Start the stream. A server that rejects ``json_schema`` (llama-cpp-python's) is asked
        again in its own dialect: ``json_object`` carrying the ``schema``."""
        try:
            return await self._client.chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            fmt = kwargs.get("response_format") or {}
            if fmt.get("type") != "json_schema" or "json_schema" not in str(exc.body or exc.message):
                raise
            logger.info("upstream rejected response_format json_schema; retrying as json_object + schema")
            schema = fmt["json_schema"]["schema"]
            return await self._client.chat.completions.create(
                **{**kwargs, "response_format": {"type": "json_object", "schema": schema}}
            )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with _upstream_errors(self.base_url, self._embedding_model):
            try:
                response = await self._client.embeddings.create(model=self._embedding_model, input=texts)
            except openai.NotFoundError as exc:  # the route or the model is missing upstream
                raise EmbeddingsNotSupported(self._embedding_model) from exc
        ordered = sorted(response.data, key=lambda item: item.index)
        return [_pooled_unit_vector(item.embedding) for item in ordered]

    async def aclose(self) -> None:
        await self._client.close()

    def _chat_kwargs(self, request: ModelRequest) -> dict[str, Any]:
        options = request.options.merged_over(self._defaults)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages_to_openai(request.messages),
            "stream": True,
            "stream_options": {"include_usage": True},
            **_sampling(options),
        }
        extra_body = {**self._extra_body, **_extra_body(options)}
        if extra_body:
            kwargs["extra_body"] = extra_body
        if request.tools:
            kwargs["tools"] = [_tool_to_openai(t) for t in request.tools]
        if request.format is not None:
            kwargs["response_format"] = response_format(request.format)
        if isinstance(request.think, str) and request.think in _THINK_LEVELS:
            kwargs["reasoning_effort"] = request.think
        return kwargs


# ---- the streamed reply ---------------------------------------------------------------------


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class _TurnState:
    """What a stream has said so far: tool-call pieces by index, finish reason, usage, timing."""

    started: int
    first_token_at: int = 0
    calls: dict[int, _PendingCall] = field(default_factory=dict)
    reason: str | None = None
    usage: Any = None
    deltas: int = 0

    def feed(self, chunk: Any) -> Iterator[ModelEvent]:
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            self.first_token_at = self.first_token_at or time.perf_counter_ns()
            delta = choice.delta
            extra = delta.model_extra or {}
            reasoning = extra.get("reasoning_content") or extra.get("reasoning")
            if reasoning:
                self.deltas += 1
                yield ThinkingDelta(reasoning)
            if delta.content:
                self.deltas += 1
                yield TextDelta(delta.content)
            for piece in delta.tool_calls or ():
                self._add_piece(piece)
            if choice.finish_reason:
                self.reason = choice.finish_reason

    def finish(self) -> Iterator[ModelEvent]:
        for index in sorted(self.calls):
            yield ToolCallRequested(_whole_call(self.calls[index]))
        ended = time.perf_counter_ns()
        first = self.first_token_at or ended
        # Servers that ignore include_usage (llama-cpp-python's): one streamed delta ≈ one token.
        usage = Usage(
            prompt_tokens=getattr(self.usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(self.usage, "completion_tokens", 0) or self.deltas,
            prompt_eval_duration_ns=first - self.started,
            eval_duration_ns=ended - first,
        )
        yield Finished(reason="length" if self.reason == "length" else "stop", usage=usage)

    def _add_piece(self, piece: Any) -> None:
        call = self.calls.setdefault(piece.index, _PendingCall())
        call.id = call.id or piece.id or ""
        if piece.function is not None:
            call.name += piece.function.name or ""
            call.arguments += piece.function.arguments or ""


def _whole_call(call: _PendingCall) -> ToolCall:
    """Arguments as an object, as our dialect wants them. Text that is not a JSON object is kept
    under ``_raw`` so the tool (and the model, from its error) can see what went wrong."""
    text = call.arguments.strip()
    try:
        arguments = parse_json(text) if text else {}
    except ValueError:  # not JSON, or nested too deeply
        arguments = None
    if not isinstance(arguments, dict):
        logger.warning("tool call %s: arguments are not a JSON object: %r", call.name, text[:200])
        arguments = {"_raw": text}
    if call.id:
        return ToolCall(id=call.id, name=call.name, arguments=arguments)
    return ToolCall(name=call.name, arguments=arguments)


def _pooled_unit_vector(embedding: Any) -> list[float]:
    """One L2-normalised vector, as Ollama's ``/api/embed`` returns them. llama-cpp-python's
    server answers with one vector per token for a model without a pooling type: mean-pool those."""
    if embedding and isinstance(embedding[0], list):
        embedding = [sum(column) / len(embedding) for column in zip(*embedding, strict=True)]
    norm = math.sqrt(sum(x * x for x in embedding))
    return [x / norm for x in embedding] if norm else list(embedding)


# ---- translation ----------------------------------------------------------------------------


def messages_to_openai(messages: list[Message]) -> list[dict[str, Any]]:
    """Our messages in the OpenAI shape. A tool result without ``tool_call_id`` answers the oldest
    open call of the same name (or simply the oldest open call)."""
    out: list[dict[str, Any]] = []
    open_calls: list[ToolCall] = []
    for message in messages:
        if message.role == "assistant" and message.tool_calls:
            open_calls = list(message.tool_calls)
        if message.role == "tool":
            out.append(_tool_result(message, open_calls))
        else:
            out.append(_message_to_openai(message))
    return out


def _message_to_openai(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": _content(message)}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in message.tool_calls
        ]
    return out


def _content(message: Message) -> str | list[dict[str, Any]]:
    if not message.images:
        return message.content
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    for image in message.images:
        parts.append({"type": "image_url", "image_url": {"url": f"data:{_image_type(image)};base64,{image}"}})
    return parts


def _image_type(base64_data: str) -> str:
    """The MIME type from the first bytes (Ollama sends bare base64, OpenAI wants a data URL)."""
    for prefix, mime in (("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"), ("UklGR", "image/webp")):
        if base64_data.startswith(prefix):
            return mime
    return "image/png"


def _tool_result(message: Message, open_calls: list[ToolCall]) -> dict[str, Any]:
    call_id = message.tool_call_id
    if not call_id and open_calls:
        match = next((c for c in open_calls if c.name == message.tool_name), open_calls[0])
        open_calls.remove(match)
        call_id = match.id
    elif call_id:
        open_calls[:] = [c for c in open_calls if c.id != call_id]
    return {"role": "tool", "tool_call_id": call_id or "", "content": message.content}


def _tool_to_openai(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


def response_format(value: Any) -> dict[str, Any]:
    """``"json"`` → JSON mode; a schema → structured output (``json_schema``)."""
    if value == "json":
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": value}}


def _sampling(options: GenerationOptions) -> dict[str, Any]:
    values = {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "max_tokens": options.max_tokens,
        "stop": options.stop or None,
        "seed": options.seed,
        "presence_penalty": options.presence_penalty,
        "frequency_penalty": options.frequency_penalty,
    }
    return {k: v for k, v in values.items() if v is not None}


def _extra_body(options: GenerationOptions) -> dict[str, Any]:
    body = {name: getattr(options, name) for name in _EXTRA_BODY_OPTIONS if getattr(options, name) is not None}
    body.update({k: v for k, v in options.extra.items() if v is not None})
    return body


# ---- errors ---------------------------------------------------------------------------------


@contextmanager
def _upstream_errors(base_url: str, model: str) -> Iterator[None]:
    """Map the ``openai`` client's exceptions onto :mod:`atoll.errors`, naming the upstream."""
    try:
        yield
    except openai.APIConnectionError as exc:  # APITimeoutError included
        if isinstance(exc, openai.APITimeoutError) and not connection_failed(exc):
            raise UpstreamTimeout(f"OpenAI-compatible upstream at {base_url} timed out", model=model) from exc
        raise UpstreamUnavailable(f"cannot reach OpenAI-compatible upstream at {base_url}: {_cause(exc)}",
                                  model=model) from exc
    except openai.APIStatusError as exc:
        raise _status_error(exc, base_url, model) from exc
    except openai.APIError as exc:  # an error event inside the stream, or an unreadable reply
        raise ProviderError(f"OpenAI-compatible upstream at {base_url} failed: {_upstream_message(exc)}",
                            status=502, model=model, body=_body_text(exc)) from exc


def _status_error(exc: openai.APIStatusError, base_url: str, model: str) -> ProviderError:
    """The upstream's message and status, except that its auth failures are ours to report as
    a bad gateway: passing a 401 through would tell our client its own key is wrong."""
    message = _upstream_message(exc)
    status = exc.status_code
    if status in (401, 403):
        message = f"OpenAI-compatible upstream at {base_url} rejected the API key: {message}"
        status = 502
    return ProviderError(message, status=status, model=model, body=_body_text(exc))


def _upstream_message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    if isinstance(body, str) and body:
        return body
    return exc.message


def _body_text(exc: openai.APIError) -> str | None:
    if exc.body is None:
        return None
    return exc.body if isinstance(exc.body, str) else json.dumps(exc.body, default=str)


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return str(cause) if cause is not None and str(cause) else str(exc)
