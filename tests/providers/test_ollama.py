"""The Ollama provider through the official client against a real Ollama-compatible server: an
atoll server process on 127.0.0.1 whose LLM is the scripted test LLM (its one model: ``echo``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest

from atoll.config import LLMConfig
from atoll.errors import ProviderError, UpstreamTimeout, UpstreamUnavailable
from atoll.messages import (
    Finished,
    Message,
    TextDelta,
    ToolCallRequested,
    ToolSpec,
)
from atoll.providers.base import Provider, create_provider
from atoll.providers.ollama import OllamaProvider
from tests.providers.helpers import ask, collect, text_of
from tests.support.servers import AgentServer


def make(base_url: str, **settings: object) -> OllamaProvider:
    settings = {"model": "echo", **settings}
    provider = create_provider(LLMConfig(provider="ollama", base_url=base_url, **settings))  # type: ignore[arg-type]
    assert isinstance(provider, OllamaProvider)
    return provider


@pytest.fixture
async def provider(ollama_like_server: AgentServer) -> AsyncIterator[OllamaProvider]:
    llm = make(ollama_like_server.url)
    await llm.start()
    yield llm
    await llm.aclose()


async def test_start_fills_the_profile_from_show(provider: OllamaProvider) -> None:
    assert isinstance(provider, Provider)
    # What the scripted LLM behind the atoll server says about itself, relayed by /api/show.
    profile = provider.profile
    assert (profile.family, profile.parameter_size) == ("scripted", "0M")
    assert (profile.context_length, profile.embedding_length) == (4096, 8)
    assert profile.supports_embeddings


async def test_streams_text_then_one_finished_with_usage(provider: OllamaProvider) -> None:
    events = await collect(provider.stream(ask("hello there")))
    assert text_of(events).endswith("You said: hello there")
    assert len([e for e in events if isinstance(e, TextDelta)]) > 1
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.reason == "stop"
    assert [e for e in events if isinstance(e, Finished)] == [finished]
    assert finished.usage.prompt_tokens > 0 and finished.usage.completion_tokens == 4
    assert finished.usage.eval_duration_ns > 0


async def test_max_tokens_becomes_num_predict(provider: OllamaProvider) -> None:
    events = await collect(provider.stream(ask("/count 10", max_tokens=3)))
    assert text_of(events).split() == ["w1", "w2", "w3"]
    assert isinstance(events[-1], Finished) and events[-1].reason == "length"


async def test_json_schema_format_is_passed(provider: OllamaProvider) -> None:
    request = ask("Ann")
    request.format = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
    reply = json.loads(text_of(await collect(provider.stream(request))))
    assert set(reply) == {"name", "age"} and isinstance(reply["age"], int)


async def test_tool_calls_arrive_whole_with_object_arguments(provider: OllamaProvider) -> None:
    request = ask('/tool get_weather {"city": "Paris"}')
    request.tools = [ToolSpec(name="get_weather", description="weather",
                              parameters={"type": "object", "properties": {"city": {"type": "string"}}})]
    events = await collect(provider.stream(request))
    calls = [e.call for e in events if isinstance(e, ToolCallRequested)]
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert isinstance(events[-1], Finished)


async def test_history_with_tool_results_is_sent(provider: OllamaProvider) -> None:
    request = ask('/tool get_weather {"city": "Paris"}')
    request.tools = [ToolSpec(name="get_weather")]
    calls = [e.call for e in await collect(provider.stream(request)) if isinstance(e, ToolCallRequested)]
    request.messages += [Message(role="assistant", tool_calls=calls),
                         Message(role="tool", content="sunny", tool_name="get_weather")]
    events = await collect(provider.stream(request))
    assert "get_weather=sunny" in text_of(events)


async def test_embeddings(provider: OllamaProvider) -> None:
    vectors = await provider.embed(["a", "b", "a"])
    assert len(vectors) == 3 and vectors[0] == vectors[2] != vectors[1]
    assert await provider.embed([]) == []


async def test_unknown_model_keeps_the_upstreams_404_and_text(ollama_like_server: AgentServer) -> None:
    provider = make(ollama_like_server.url, model="no-such-model")
    await provider.start()  # logs a warning, does not raise
    with pytest.raises(ProviderError) as caught:
        await collect(provider.stream(ask("hi")))
    assert caught.value.status == 404
    assert caught.value.message == "model 'no-such-model' not found"
    await provider.aclose()


async def test_upstream_generation_error_keeps_its_message(provider: OllamaProvider) -> None:
    with pytest.raises(ProviderError, match="boom") as caught:
        await collect(provider.stream(ask("/error boom")))
    assert caught.value.status >= 500


async def test_stopping_early_closes_the_stream(provider: OllamaProvider) -> None:
    async with aclosing(provider.stream(ask("/slow 50 0.05"))) as events:
        async for event in events:
            assert isinstance(event, TextDelta)
            break
    events_after = await collect(provider.stream(ask("still fine")))
    assert isinstance(events_after[-1], Finished)


async def test_timeout_names_the_url(ollama_like_server: AgentServer) -> None:
    provider = make(ollama_like_server.url, request_timeout=0.5)
    with pytest.raises(UpstreamTimeout, match=ollama_like_server.url) as caught:
        await collect(provider.stream(ask("/slow 3 2")))
    assert caught.value.status == 504
    await provider.aclose()


async def test_unreachable_upstream_names_the_url(closed_port_url: str) -> None:
    provider = make(closed_port_url)
    await provider.start()  # a down upstream is a warning at startup, not a failure
    with pytest.raises(UpstreamUnavailable) as caught:
        await collect(provider.stream(ask("hi")))
    assert closed_port_url in str(caught.value)
    assert caught.value.status in (502, 503)
    with pytest.raises(UpstreamUnavailable, match=closed_port_url):
        await provider.embed(["hi"])
    await provider.aclose()
