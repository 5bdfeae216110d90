"""The OpenAI-compatible dialect (``/v1``): its request and response bodies, and the translation
of a request into the same neutral :class:`~atoll.agent.loop.RunRequest` the Ollama routes build.

Requests are lenient like the Ollama side: unknown fields (``tool_choice``, ``n``, ``user``,
``logit_bias``...) are ignored. Shapes follow Ollama's ``openai/openai.go``, which follows OpenAI's
API reference; notably the thinking text is called ``reasoning`` and tool-call ``arguments`` are a
JSON *string* here, where the native API uses an object.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from atoll.agent.loop import RunRequest
from atoll.errors import RequestError
from atoll.messages import GenerationOptions, ResponseFormat
from atoll.server.translate import messages_from_wire, tools_from_wire
from atoll.wire import WireMessage, WireTool, WireToolCall

#: What Ollama puts in ``system_fingerprint``; some clients log it, none check it.
FINGERPRINT = "fp_ollama"

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error"}

#: OpenAI ``reasoning_effort`` -> Ollama ``think`` (as Ollama's middleware maps it).
_EFFORT_TO_THINK: dict[str, bool | str] = {"none": False, "minimal": "low", "low": "low", "medium": "medium",
                                           "high": "high", "max": "max", "xhigh": "max", "ultra": "max"}


def openai_error_body(message: str, status: int) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def openai_error_chunk(message: str) -> dict[str, Any]:
    """The last SSE event when a stream fails after it started; the SDK raises ``APIError``."""
    return openai_error_body(message, 500)


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


# ---- request -> neutral --------------------------------------------------------------------


def _image(part: dict[str, Any], index: int) -> str:
    """OpenAI sends images as data URLs; Ollama (and our providers) want bare base64."""
    url = part.get("image_url")
    url = url.get("url", "") if isinstance(url, dict) else str(url or "")
    if not url.startswith("data:"):
        raise RequestError(f"messages[{index}]: only base64 data URLs are supported for images")
    return url.partition(",")[2]


def _wire_message(message: ChatMessage, index: int) -> WireMessage:
    content, images = message.content, []
    if isinstance(content, list):
        images = [_image(p, index) for p in content if p.get("type") == "image_url"]
        content = "".join(str(p.get("text", "")) for p in content if p.get("type") in ("text", "input_text"))
    return WireMessage(role=message.role, content=content or "", thinking=message.reasoning,
                       images=images or None, tool_calls=message.tool_calls, tool_call_id=message.tool_call_id)


def _format(response_format: ChatResponseFormat | None) -> ResponseFormat:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return "json"
    schema = response_format.json_schema.schema_ if response_format.json_schema else None
    if not schema:
        raise RequestError("response_format.json_schema.schema is required for type json_schema")
    return schema


def _think(body: ChatCompletionRequest) -> bool | str | None:
    effort = body.reasoning_effort or (body.reasoning.effort if body.reasoning else None)
    if effort is None:
        return None
    if effort not in _EFFORT_TO_THINK:
        raise RequestError(f"invalid reasoning value: '{effort}' (must be one of {', '.join(_EFFORT_TO_THINK)})")
    return _EFFORT_TO_THINK[effort]


def chat_run_request(body: ChatCompletionRequest) -> RunRequest:
    """The same neutral request ``/api/chat`` builds, from an OpenAI chat completion request."""
    if not body.messages:
        raise RequestError("[] is too short - 'messages'")
    wire = [_wire_message(m, i) for i, m in enumerate(body.messages)]
    return RunRequest(messages_from_wire(wire), tools_from_wire(body.tools),
                      body.options(body.max_completion_tokens), _format(body.response_format), _think(body))


def completion_run_request(body: CompletionRequest) -> RunRequest:
    """``/v1/completions`` is ``/api/generate`` without a session: one user turn."""
    return RunRequest(messages_from_wire([WireMessage(role="user", content=body.text)]), [], body.options())


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
