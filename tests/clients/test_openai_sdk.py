"""The official ``openai`` SDK against ``/v1``, unmodified (checklist items 30-36)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from tests.clients.helpers import WEATHER_TOOL, tool_command
from tests.support.servers import AgentServer


@pytest.fixture
def client(echo_server: AgentServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=echo_server.url + "/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_item_30_models_list(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["echo:latest"]
    assert models.data[0].object == "model" and models.data[0].owned_by and models.data[0].created > 0


def test_item_31_models_retrieve_known_and_unknown(client: openai.OpenAI) -> None:
    assert client.models.retrieve("echo:latest").id == "echo:latest"
    assert client.models.retrieve("Echo").id == "Echo"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-4o")
    assert info.value.status_code == 404
    assert info.value.message == "Error code: 404 - model 'gpt-4o' not found"
    assert info.value.body == {"message": "model 'gpt-4o' not found", "type": "not_found_error",
                               "param": None, "code": None}


def test_item_32_chat_completion_non_stream(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="echo", messages=_user("hello sdk"))
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == "echo"
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == "You said: hello sdk"
    assert choice.finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == 4  # "You said: hello sdk"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 4 and reply.usage.prompt_tokens > 0


def test_item_32_max_tokens_gives_finish_reason_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="echo", messages=_user("/count 9"), max_tokens=2)
    assert reply.choices[0].message.content == "w1 w2" and reply.choices[0].finish_reason == "length"


def test_item_33_stream_without_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="echo", messages=_user("/count 3"), stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices for c in chunks), "no empty-choices chunk unless include_usage was asked for"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "w1 w2 w3"
    finish = chunks[-1].choices[0]
    assert finish.finish_reason == "stop" and finish.delta.content is None and finish.delta.role is None
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1


def test_item_33_stream_with_include_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="echo", messages=_user("/count 2"), stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 2


def test_item_34_tool_calls_non_stream(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="echo", messages=_user(tool_command("get_weather", city="Paris")), tools=[WEATHER_TOOL])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, str) and json.loads(call.function.arguments) == {"city": "Paris"}


def test_item_34_tool_calls_streamed_whole_in_one_delta(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="echo", messages=_user(tool_command("get_weather", city="Oslo")), tools=[WEATHER_TOOL], stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices[0].delta.tool_calls]
    assert len(deltas) == 1
    call = deltas[0].tool_calls[0]
    assert call.index == 0 and call.id and call.type == "function"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_item_34_tool_result_round_trip(client: openai.OpenAI) -> None:
    """The SDK's own tool-call turn (string arguments) and a ``tool`` message with ``tool_call_id``."""
    first = client.chat.completions.create(
        model="echo", messages=_user(tool_command("get_weather", city="Rome")), tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]
    history = [*_user("weather?"), first.choices[0].message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = client.chat.completions.create(model="echo", messages=history, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "Tool results: get_weather=sunny"
    assert second.choices[0].finish_reason == "stop"


def test_response_format_json_object(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="echo", messages=_user("give json"),
                                           response_format={"type": "json_object"})
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


def test_response_format_json_schema(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}},
              "required": ["city", "degrees"]}
    reply = client.chat.completions.create(
        model="echo", messages=_user("weather"),
        response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": schema}})
    assert json.loads(reply.choices[0].message.content or "") == {"city": "weather", "degrees": 42}


def test_item_35_errors_are_openai_shaped(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as empty:
        client.chat.completions.create(model="echo", messages=[])
    assert empty.value.status_code == 400 and "too short" in empty.value.message
    assert empty.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError, match="model 'gpt-4o' not found"):
        client.chat.completions.create(model="gpt-4o", messages=_user("hi"))
    with pytest.raises(openai.InternalServerError, match="provider exploded"):
        client.chat.completions.create(model="echo", messages=_user("/error provider exploded"))


def test_item_35_failure_mid_stream_raises_api_error(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="echo", messages=_user("/error-after lost it"), stream=True)
    with pytest.raises(openai.APIError, match="lost it"):
        for _ in stream:
            pass


def test_item_36_embeddings_default_base64(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="echo", input=["alpha", "beta"])
    assert [d.index for d in result.data] == [0, 1]
    vectors = [d.embedding for d in result.data]
    assert all(len(v) == 8 for v in vectors) and vectors[0] != vectors[1]
    assert abs(sum(x * x for x in vectors[0]) - 1) < 1e-5
    floats = client.embeddings.create(model="echo", input=["alpha", "beta"], encoding_format="float")
    for as_float, as_base64 in zip(floats.data, vectors, strict=True):
        assert as_float.embedding == pytest.approx(as_base64, abs=1e-6)
    assert result.usage.prompt_tokens == 2 and result.model == "echo"


def test_embeddings_dimensions_and_errors(client: openai.OpenAI) -> None:
    short = client.embeddings.create(model="echo", input="alpha", dimensions=4).data[0].embedding
    assert len(short) == 4 and abs(sum(x * x for x in short) - 1) < 1e-5
    with pytest.raises(openai.BadRequestError, match="invalid input"):
        client.embeddings.create(model="echo", input=[])
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")


def test_legacy_completions_stream_and_not(client: openai.OpenAI) -> None:
    whole = client.completions.create(model="echo", prompt="/count 3")
    assert whole.object == "text_completion" and whole.choices[0].text == "w1 w2 w3"
    assert whole.choices[0].finish_reason == "stop" and whole.usage and whole.usage.completion_tokens == 3
    parts = list(client.completions.create(model="echo", prompt="/count 3", stream=True))
    assert "".join(p.choices[0].text for p in parts) == "w1 w2 w3"
    assert parts[-1].choices[0].finish_reason == "stop"


async def test_async_sdk_streams(echo_server: AgentServer) -> None:
    async with openai.AsyncOpenAI(base_url=echo_server.url + "/v1", api_key="unused", max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(model="echo", messages=_user("async sdk"), stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "You said: async sdk"
