"""The OpenAI-compatible provider against a real OpenAI-compatible server: llama-cpp-python's
own (``python -m llama_cpp.server``) serving SmolLM2 on 127.0.0.1."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator

import jsonschema
import pytest

from atoll.config import LLMConfig
from atoll.errors import ProviderError, UpstreamTimeout, UpstreamUnavailable
from atoll.messages import (
    Finished,
    Message,
    TextDelta,
    ToolCall,
    ToolSpec,
)
from atoll.providers.base import create_provider
from atoll.providers.openai_compat import OpenAIProvider, messages_to_openai
from tests.providers.helpers import collect, text_of
from tests.providers.helpers import greedy_ask as ask
from tests.support.servers import AgentServer


def make(base_url: str, **settings: object) -> OpenAIProvider:
    settings = {"model": "smollm2", **settings}
    provider = create_provider(LLMConfig(provider="openai", base_url=base_url, **settings))  # type: ignore[arg-type]
    assert isinstance(provider, OpenAIProvider)
    return provider


@pytest.fixture
async def provider(openai_server: str) -> AsyncIterator[OpenAIProvider]:
    llm = make(openai_server)
    await llm.start()
    yield llm
    await llm.aclose()


@pytest.mark.model
async def test_streams_text_then_one_finished(provider: OpenAIProvider) -> None:
    events = await collect(provider.stream(ask("Say hello in one short sentence.", max_tokens=16)))
    assert isinstance(events[-1], Finished)
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    assert len(events) > 2 and text_of(events).strip()
    usage = events[-1].usage
    # llama-cpp-python's server sends no usage chunk: completion tokens are counted from deltas.
    assert 0 < usage.completion_tokens <= 16
    assert usage.prompt_eval_duration_ns > 0 and usage.eval_duration_ns > 0


@pytest.mark.model
async def test_max_tokens_ends_with_length(provider: OpenAIProvider) -> None:
    events = await collect(provider.stream(ask("Count from 1 to 500, one number per line.", max_tokens=6)))
    assert isinstance(events[-1], Finished) and events[-1].reason == "length"


@pytest.mark.model
async def test_json_format(provider: OpenAIProvider) -> None:
    request = ask("Describe a cat as JSON.", max_tokens=64)
    request.format = "json"
    assert isinstance(json.loads(text_of(await collect(provider.stream(request)))), dict)


@pytest.mark.model
async def test_json_schema_format(provider: OpenAIProvider) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    request = ask("Invent a person.", max_tokens=48)
    request.format = schema
    jsonschema.validate(json.loads(text_of(await collect(provider.stream(request)))), schema)


@pytest.mark.model
async def test_embeddings(provider: OpenAIProvider) -> None:
    vectors = await provider.embed(["the cat sat", "quantum field theory"])
    assert len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) > 0
    assert all(math.isclose(math.hypot(*v), 1.0, rel_tol=1e-6) for v in vectors)
    assert vectors[0] != pytest.approx(vectors[1], abs=1e-3)


async def test_unreachable_upstream_names_the_url(closed_port_url: str) -> None:
    provider = make(f"{closed_port_url}/v1", extra={"max_retries": 0})
    await provider.start()
    with pytest.raises(UpstreamUnavailable) as caught:
        await collect(provider.stream(ask("hi")))
    assert f"{closed_port_url}/v1" in str(caught.value)
    assert caught.value.status in (502, 503)
    with pytest.raises(UpstreamUnavailable, match=closed_port_url):
        await provider.embed(["hi"])
    await provider.aclose()


async def test_upstream_status_error_keeps_message_and_status(ollama_like_server: AgentServer) -> None:
    """atoll's own /v1 (an OpenAI-compatible server too): an unknown model is its 404 and text."""
    provider = make(f"{ollama_like_server.url}/v1")
    with pytest.raises(ProviderError) as caught:
        await collect(provider.stream(ask("hi")))
    assert caught.value.status == 404
    assert "smollm2" in caught.value.message and "not found" in caught.value.message
    await provider.aclose()


async def test_streamed_tool_calls_and_timeouts_against_atoll_v1(ollama_like_server: AgentServer) -> None:
    """Tool-call deltas accumulate into whole calls with object arguments."""
    provider = make(f"{ollama_like_server.url}/v1", model="echo")
    request = ask('/tool get_weather {"city": "Paris"} ;; get_time {"zone": "UTC"}')
    request.tools = [ToolSpec(name="get_weather"), ToolSpec(name="get_time")]
    events = await collect(provider.stream(request))
    calls = [e.call for e in events if hasattr(e, "call")]
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Paris"}),
                                                       ("get_time", {"zone": "UTC"})]
    assert isinstance(events[-1], Finished)
    await provider.aclose()

    slow = make(f"{ollama_like_server.url}/v1", model="echo", request_timeout=0.5,
                extra={"max_retries": 0})
    with pytest.raises(UpstreamTimeout, match=ollama_like_server.url) as caught:
        await collect(slow.stream(ask("/slow 3 2")))
    assert caught.value.status == 504
    await slow.aclose()


def test_tool_results_without_ids_answer_the_open_calls_in_order() -> None:
    calls = [ToolCall(id="call_a", name="f", arguments={"x": 1}), ToolCall(id="call_b", name="g")]
    wire = messages_to_openai([
        Message(role="user", content="go"),
        Message(role="assistant", tool_calls=calls),
        Message(role="tool", content="G", tool_name="g"),
        Message(role="tool", content="F"),
    ])
    assert wire[1]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x": 1}'}
    assert [(m["tool_call_id"], m["content"]) for m in wire[2:]] == [("call_b", "G"), ("call_a", "F")]
