"""Provider-neutral conversation types.

These are what the agent loop, the providers, the tool layer and the session store exchange.
They never appear on the wire as such: each dialect in ``atoll.dialects`` maps them to and from
its own wire format.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

Role = Literal["system", "user", "assistant", "tool"]

_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_call_id() -> str:
    """``call_`` plus 8 lowercase alphanumerics, as Ollama generates them."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


class ToolCall(BaseModel):
    id: str = Field(default_factory=new_call_id)
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    role: Role
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    #: For ``role == "tool"``: which call this answers, and the tool's name.
    tool_call_id: str | None = None
    tool_name: str | None = None
    #: True for the agent's own tool-calling turns (calls to MCP tools and their results), which the
    #: client never sees; sessions keep them, and history matching skips them.
    internal: bool = False
    #: An approval asked for (on the question) or decided (on the tool result): id, tool, decision, who.
    approval: dict[str, Any] | None = None


class ToolSpec(BaseModel):
    """A tool the LLM may call. ``source`` says who runs it: an MCP server name, ``agent:<child>``
    for a child agent, or ``client`` for a tool the HTTP client sent and will run itself."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    source: str = "client"
    #: the ``timeout`` written in the tool's MCP server or child agent entry, if any (never sent to the LLM)
    timeout: float | None = Field(default=None, exclude=True)


class ToolResult(BaseModel):
    content: str
    is_error: bool = False
    source: str = ""
    duration_s: float = 0.0


@dataclass
class Usage:
    """Token counts and durations (nanoseconds, as Ollama reports them)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    load_duration_ns: int = 0
    prompt_eval_duration_ns: int = 0
    eval_duration_ns: int = 0
    #: Wall time of the whole request; set by the agent loop, not by providers.
    total_duration_ns: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.load_duration_ns + other.load_duration_ns,
            self.prompt_eval_duration_ns + other.prompt_eval_duration_ns,
            self.eval_duration_ns + other.eval_duration_ns,
        )


@dataclass
class GenerationOptions:
    """Sampling options in one neutral shape. ``None`` means "the provider's/agent's default"."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    num_ctx: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repeat_penalty: float | None = None
    #: Backend-specific extras passed through untouched (e.g. Ollama's ``mirostat``).
    extra: dict[str, Any] = field(default_factory=dict)

    def merged_over(self, base: GenerationOptions) -> GenerationOptions:
        """These options, with unset fields taken from ``base``."""
        values = {name: base_value if (value := getattr(self, name)) is None else value
                  for name, base_value in zip(_SAMPLING_FIELDS, map(base.__getattribute__, _SAMPLING_FIELDS),
                                              strict=True)}
        return GenerationOptions(**values, extra={**base.extra, **self.extra})


#: Every option but ``extra``, in order (merged once per request by each layer: loop, limits, provider).
_SAMPLING_FIELDS = tuple(name for name in GenerationOptions.__dataclass_fields__ if name != "extra")


#: ``None``: free text; ``"json"``: any JSON object; a dict: a JSON Schema the reply must satisfy.
ResponseFormat = Literal["json"] | dict[str, Any] | None


@dataclass
class ModelRequest:
    messages: list[Message]
    tools: list[ToolSpec] = field(default_factory=list)
    options: GenerationOptions = field(default_factory=GenerationOptions)
    format: ResponseFormat = None
    think: bool | str | None = None


# ---- events a provider streams -------------------------------------------------------------


@dataclass
class TextDelta:
    text: str


@dataclass
class ThinkingDelta:
    text: str


@dataclass
class ToolCallRequested:
    call: ToolCall


DoneReason = Literal["stop", "length"]


@dataclass
class Finished:
    reason: DoneReason = "stop"
    usage: Usage = field(default_factory=Usage)


ModelEvent = TextDelta | ThinkingDelta | ToolCallRequested | Finished
