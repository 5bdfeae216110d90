"""The Ollama HTTP API contract: every body we read or write, with Ollama's names and defaults.

Requests are lenient the way Ollama's Go decoder is: unknown fields are ignored, ``content`` may be
missing or null, tool-call ``arguments`` may arrive as a JSON string, ``keep_alive`` may be a number
or a duration string. Responses follow ``api/types.go``: fields that Go marks ``omitempty`` are
left out when unset (we dump with ``exclude_none``), and durations are integer nanoseconds.
This module imports nothing from the package but the leaf ``atoll.client_json``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from atoll.client_json import parse_json


def timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 in UTC with microseconds and ``Z`` (safe for every client's parser)."""
    if moment is not None:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    global _second
    second, nanos = divmod(time.time_ns(), 1_000_000_000)
    if second != _second[0]:
        _second = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S."))
    return f"{_second[1]}{nanos // 1000:06d}Z"


#: The current second, formatted: every streamed chunk carries a timestamp, and formatting a whole
#: one per chunk cost more than encoding the chunk.
_second: tuple[int, str] = (-1, "")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---- requests ------------------------------------------------------------------------------


class WireFunctionCall(_Lenient):
    index: int | None = None
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    @field_validator("arguments", mode="before")
    @classmethod
    def _parse_string_arguments(cls, value: Any) -> Any:
        """OpenAI-style clients replay arguments as a JSON string; accept it (Ollama would 400)."""
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            parsed = parse_json(value)  # nested too deeply: a ValueError, so a 400 naming the field
            if not isinstance(parsed, dict):
                raise ValueError("tool call arguments must be a JSON object")
            return parsed
        return value


class WireToolCall(_Lenient):
    id: str | None = None
    type: str | None = None
    function: WireFunctionCall


class WireMessage(_Lenient):
    role: str
    #: Text, or OpenAI-style content parts (the dialect parser flattens them).
    content: str | list[dict[str, Any]] | None = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[WireToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class WireFunction(_Lenient):
    name: str
    description: str | None = ""
    parameters: dict[str, Any] | None = None


class WireTool(_Lenient):
    type: str = "function"
    function: WireFunction


class _GenerationRequest(_Lenient):
    model: str | None = None
    stream: bool | None = None
    format: Any = None
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None
    think: bool | str | None = None
    #: atoll extension: opt into server-side session tracking (or send ``X-Session-ID``).
    session_id: str | None = None

    @field_validator("format")
    @classmethod
    def _check_format(cls, value: Any) -> Any:
        if value is None or value == "" or value == "json" or isinstance(value, dict):
            return None if value == "" else value
        raise ValueError(f'invalid format: {json.dumps(value)}; expected "json" or a valid JSON Schema object')

    @field_validator("think")
    @classmethod
    def _check_think(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in ("low", "medium", "high", "max"):
            raise ValueError(f'invalid think value: "{value}" (expected true, false, "low", "medium", '
                             '"high" or "max")')
        return value

    @property
    def streaming(self) -> bool:
        """Ollama streams unless ``stream`` is explicitly false."""
        return self.stream is not False

    @property
    def unload(self) -> bool:
        return self.keep_alive in (0, 0.0, "0", "0s", "0m")


class ChatRequest(_GenerationRequest):
    messages: list[WireMessage] | None = None
    tools: list[WireTool] | None = None


class GenerateRequest(_GenerationRequest):
    prompt: str | None = None
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool | None = None
    images: list[str] | None = None


class ModelNameRequest(_Lenient):
    """``/api/show``, ``/api/pull``, ``/api/delete``...: ``model``, or the legacy ``name``."""

    model: str | None = None
    name: str | None = None
    stream: bool | None = None

    @property
    def requested(self) -> str | None:
        return self.model or self.name


class EmbedRequest(_Lenient):
    model: str | None = None
    input: str | list[str] | None = None
    truncate: bool | None = None
    dimensions: int | None = Field(default=None, gt=0)
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


class EmbeddingsRequest(_Lenient):
    model: str | None = None
    prompt: str | None = None
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


# ---- responses -----------------------------------------------------------------------------


class Metrics(BaseModel):
    """The six metrics on every final chunk. Always emitted: clients compute usage from them."""

    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0


class OutFunctionCall(BaseModel):
    index: int
    name: str
    arguments: dict[str, Any]


class OutToolCall(BaseModel):
    id: str
    function: OutFunctionCall


class OutMessage(BaseModel):
    role: str = "assistant"
    content: str = ""
    thinking: str | None = None
    tool_calls: list[OutToolCall] | None = None


class _FinalFields(BaseModel):
    """On the ``done:true`` chunk only: why it ended, and the six metrics (all ints, nanoseconds)."""

    done_reason: str | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None
    #: atoll extension on intermediate chunks: tool progress. Standard clients ignore it.
    atoll: dict[str, Any] | None = None


class ChatChunk(_FinalFields):
    model: str
    created_at: str
    message: OutMessage
    done: bool


class GenerateChunk(_FinalFields):
    model: str
    created_at: str
    response: str = ""
    thinking: str | None = None
    done: bool
    context: list[int] | None = None


class ModelDetails(BaseModel):
    parent_model: str = ""
    format: str = "agent"
    family: str = "agent"
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""
    context_length: int | None = None
    embedding_length: int | None = None


class ModelEntry(BaseModel):
    """One entry of ``/api/tags`` (and, with ``expires_at``/``size_vram``, of ``/api/ps``)."""

    name: str
    model: str
    modified_at: str
    size: int = 0
    digest: str
    details: ModelDetails
    capabilities: list[str] | None = None
    expires_at: str | None = None
    size_vram: int | None = None
    context_length: int | None = None


class ShowResponse(BaseModel):
    license: str | None = None
    modelfile: str = ""
    parameters: str = ""
    template: str = ""
    system: str | None = None
    details: ModelDetails
    model_info: dict[str, Any] = Field(default_factory=dict)
    capabilities: list[str] = Field(default_factory=list)
    modified_at: str


def error_body(message: str) -> dict[str, str]:
    """Ollama clients read ``error``; the seed document shows ``detail``. We send both."""
    return {"error": message, "detail": message}
