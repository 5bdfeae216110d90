"""OpenAI requests -> the neutral :class:`~atoll.agent.loop.RunRequest` (the same one ``/api/chat`` builds)."""

from __future__ import annotations

from atoll.agent.loop import RunRequest
from atoll.dialects._neutral import neutral_message, paired, tool_specs
from atoll.dialects.openai.wire import ChatCompletionRequest, ChatResponseFormat, CompletionRequest
from atoll.errors import RequestError
from atoll.messages import Message, ResponseFormat

#: OpenAI ``reasoning_effort`` -> Ollama ``think`` (as Ollama's middleware maps it).
_EFFORT_TO_THINK: dict[str, bool | str] = {"none": False, "minimal": "low", "low": "low", "medium": "medium",
                                           "high": "high", "max": "max", "xhigh": "max", "ultra": "max"}


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
    if not body.messages:
        raise RequestError("[] is too short - 'messages'")
    messages = paired([neutral_message(i, m.role, m.content, thinking=m.reasoning, tool_calls=m.tool_calls,
                                       tool_call_id=m.tool_call_id) for i, m in enumerate(body.messages)])
    return RunRequest(messages, tool_specs(body.tools), body.options(body.max_completion_tokens),
                      _format(body.response_format), _think(body))


def completion_run_request(body: CompletionRequest) -> RunRequest:
    """``/v1/completions`` is ``/api/generate`` without a session: one user turn."""
    return RunRequest([Message(role="user", content=body.text)], [], body.options())
