"""The wire contract: requests parse the lenient way Ollama's decoder does, and the chunks the
server builds as plain dicts on its hot path match the models in atoll.wire field for field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from atoll.agent.events import ClientToolCalls, RunFinished, ToolFinished, ToolStarted
from atoll.dialects.ollama.parse import messages_from_wire, options_from_wire
from atoll.dialects.ollama.render import ChunkEncoder
from atoll.messages import TextDelta, ThinkingDelta, ToolCall, ToolResult, Usage
from atoll.model_names import model_key
from atoll.wire import ChatChunk, ChatRequest, GenerateChunk, GenerateRequest, Metrics

CALL = ToolCall(id="call_abcdefgh", name="get_weather", arguments={"city": "Tokyo"})
USAGE = Usage(prompt_tokens=5, completion_tokens=2, total_duration_ns=9, eval_duration_ns=3)

EVENTS: dict[str, Any] = {
    "text": TextDelta("Hi"),
    "thinking": ThinkingDelta("hmm"),
    "client tool calls": ClientToolCalls([CALL]),
    "tool progress": ToolStarted(CALL, "weather"),
    "tool result": ToolFinished(CALL, ToolResult(content="sunny", source="weather")),
    "final": RunFinished("stop", USAGE),
}


@pytest.mark.parametrize("case", list(EVENTS))
@pytest.mark.parametrize("generate", [False, True], ids=["chat", "generate"])
def test_streamed_chunks_match_the_wire_models(case: str, generate: bool) -> None:
    encoder = ChunkEncoder("Echo:latest", generate=generate, context=[1, 2] if generate else None)
    chunks = encoder.chunks(EVENTS[case])
    if not chunks:
        assert generate and case == "client tool calls"  # generate has no tool calls
        return
    [chunk] = chunks
    model = GenerateChunk if generate else ChatChunk
    assert model.model_validate(chunk).model_dump(exclude_none=True) == chunk
    assert chunk["model"] == "Echo:latest" and chunk["created_at"].endswith("Z")
    if case == "final":
        assert chunk["done"] is True and chunk["done_reason"] == "stop"
        assert {k: chunk[k] for k in Metrics.model_fields} == Metrics(
            total_duration=9, prompt_eval_count=5, eval_count=2, eval_duration=3).model_dump()


def test_collecting_returns_one_whole_reply() -> None:
    encoder = ChunkEncoder("echo")
    for event in (TextDelta("a"), TextDelta("b"), ClientToolCalls([CALL])):
        encoder.take(event)
    final = encoder.reply(RunFinished("length", USAGE))
    assert final["message"]["content"] == "ab" and final["done_reason"] == "length"
    assert final["message"]["tool_calls"] == [
        {"id": "call_abcdefgh", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}}}]


def test_requests_are_lenient_like_ollama() -> None:
    request = ChatRequest.model_validate({
        "model": "m", "extra_field": 1, "keep_alive": "5m", "format": "", "images": [],
        "messages": [{"role": "Developer", "content": None},
                     {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1}'}}]},
                     {"role": "tool", "content": "42"}]})
    assert request.streaming and request.format is None
    messages = messages_from_wire(request.messages or [])
    assert [m.role for m in messages] == ["system", "assistant", "tool"]
    assert messages[1].tool_calls and messages[1].tool_calls[0].arguments == {"a": 1}
    assert messages[2].tool_name == "f"  # matched to the call, as langchain sends neither name nor id
    assert GenerateRequest.model_validate({"model": "m", "stream": None}).streaming


@pytest.mark.parametrize(("options", "field", "value"), [
    ({"num_predict": 5}, "max_tokens", 5), ({"num_predict": -1}, "max_tokens", None),
    ({"stop": "x"}, "stop", ["x"]), ({"temperature": None}, "temperature", None),
    ({"mirostat": 2}, "extra", {"mirostat": 2}),
])
def test_options_map_onto_generation_options(options: dict[str, Any], field: str, value: Any) -> None:
    assert getattr(options_from_wire(options), field) == value


@pytest.mark.parametrize("bad", [{"format": 3}, {"think": "extreme"}, {"messages": "hi"}])
def test_invalid_fields_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ChatRequest.model_validate({"model": "m", **bad})


@pytest.mark.parametrize(("name", "key"), [("Echo", "echo"), ("echo:latest", "echo"), (" ECHO:Latest ", "echo"),
                                           ("team/agent:v2", "team/agent:v2")])
def test_model_names_match_as_ollama_matches(name: str, key: str) -> None:
    assert model_key(name) == key
