"""The OpenAI-compatible dialect's bodies (``/v1``): requests and responses.

Requests are lenient like the Ollama side: unknown fields (``tool_choice``, ``n``, ``user``,
``logit_bias``...) are ignored. Shapes follow Ollama's ``openai/openai.go``, which follows OpenAI's
API reference; notably the thinking text is called ``reasoning`` and tool-call ``arguments`` are a
JSON *string* here, where the native API uses an object.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from atoll.messages import GenerationOptions
from atoll.wire import WireTool, WireToolCall


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---- requests ------------------------------------------------------------------------------


class ChatMessage(_Lenient):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[WireToolCall] | None = None
    tool_call_id: str | None = None
    reasoning: str | None = None


class StreamOptions(_Lenient):
    include_usage: bool = False


class JsonSchemaFormat(_Lenient):
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ChatResponseFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class Reasoning(_Lenient):
    effort: str | None = None


class _SamplingRequest(_Lenient):
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None

    @field_validator("stream", mode="before")
    @classmethod
    def _null_is_false(cls, value: Any) -> Any:
        return False if value is None else value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def options(self, max_tokens: int | None = None) -> GenerationOptions:
        """Sampling options; ``max_tokens`` (chat's newer ``max_completion_tokens``) wins over the field."""
        return GenerationOptions(
            temperature=self.temperature, top_p=self.top_p, max_tokens=max_tokens or self.max_tokens,
            seed=self.seed, stop=[self.stop] if isinstance(self.stop, str) else self.stop,
            frequency_penalty=self.frequency_penalty, presence_penalty=self.presence_penalty,
        )


class ChatCompletionRequest(_SamplingRequest):
    messages: list[ChatMessage] = Field(default_factory=list)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    response_format: ChatResponseFormat | None = None
    tools: list[WireTool] | None = None
    reasoning_effort: str | None = None
    reasoning: Reasoning | None = None


class CompletionRequest(_SamplingRequest):
    prompt: str | list[str] = ""
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) > 1:
            raise ValueError("only one prompt per request is supported")
        return value

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else "".join(self.prompt)


class EmbeddingRequest(_Lenient):
    model: str | None = None
    input: str | list[str]
    dimensions: int | None = Field(default=None, gt=0)
    encoding_format: Literal["float", "base64"] = "float"

    @field_validator("encoding_format", mode="before")
    @classmethod
    def _null_is_float(cls, value: Any) -> Any:
        return "float" if value is None else value

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


# ---- responses -----------------------------------------------------------------------------


class UsageBody(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class FunctionCallBody(BaseModel):
    name: str
    arguments: str


class ToolCallBody(BaseModel):
    id: str
    index: int
    type: str = "function"
    function: FunctionCallBody


class ModelObject(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str = "atoll"


class EmbeddingObject(BaseModel):
    object: str = "embedding"
    embedding: list[float] | str
    index: int
