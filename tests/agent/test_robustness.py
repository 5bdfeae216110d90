"""Tool calling that survives small local models: the corpus of what real models emit, replayed
through the real loop, and each rule on its own (text calls, repair, validation, unknown names,
loops, round limit, result size, context budget)."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from atoll.agent import AgentRunner, RunFinished, ToolFinished, ToolStarted
from atoll.agent.arguments import check_call
from atoll.agent.budget import cut_result, estimate_tokens, trim_history
from atoll.agent.loop import RunRequest
from atoll.agent.textcalls import find_text_calls
from atoll.messages import GenerationOptions, Message, TextDelta, ToolCall, ToolSpec
from tests.support.replay import RecordingToolbox, ReplayProvider, load_corpus, plain_loop, replay

CORPUS = load_corpus()
TOOLS: dict[str, dict[str, Any]] = CORPUS["tools"]
SPECS = {name: ToolSpec(name=name, parameters=schema, source="corpus") for name, schema in TOOLS.items()}
#: Honest misses: the corpus keeps cases the loop does not handle yet (see docs/robustness.md).
KNOWN_MISSES = {"natural-language-intent"}


@pytest.mark.parametrize("episode", CORPUS["episodes"], ids=[e["id"] for e in CORPUS["episodes"]])
def test_corpus_episode(episode: dict[str, Any]) -> None:
    assert episode["source"], "every case names where it comes from"
    outcome = anyio.run(replay, episode, TOOLS)
    assert outcome.ok is (episode["id"] not in KNOWN_MISSES), (outcome.ran, outcome.text)


async def test_corpus_share_beats_the_plain_loop() -> None:
    episodes = CORPUS["episodes"]
    after = [(await replay(e, TOOLS)).ok for e in episodes]
    before = [plain_loop(e, TOOLS) for e in episodes]
    assert sum(after) / len(episodes) >= 0.95
    assert sum(before) < sum(after)


def test_text_calls_only_for_tools_that_exist() -> None:
    known = {"get_weather"}
    found = find_text_calls('<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>', known)
    assert found is not None and found.calls[0].arguments == {"city": "Oslo"} and found.remainder == ""
    assert find_text_calls('<tool_call>{"name": "launch", "arguments": {}}</tool_call>', known) is None
    assert find_text_calls('Use {"name": "x"} as a template.', known) is None
    assert find_text_calls("get_weather is a tool I have.", known) is None


def test_invalid_arguments_get_a_precise_error() -> None:
    missing = check_call(ToolCall(name="get_weather", arguments={"town": "Oslo"}), SPECS)
    assert missing.error is not None and "'city' is required but missing" in missing.error
    assert '"required":["city"]' in missing.error  # the schema comes with it
    wrong = check_call(ToolCall(name="search_web", arguments={"query": "x", "max_results": "many"}), SPECS)
    assert wrong.error is not None and "field 'max_results': expected integer, got 'many'" in wrong.error
    enum = check_call(ToolCall(name="get_weather", arguments={"city": "Oslo", "unit": "kelvin"}), SPECS)
    assert enum.error is not None and "'unit'" in enum.error and "celsius" in enum.error
    repaired = check_call(ToolCall(name="search_web", arguments={"_raw": "{'query': 'x', 'max_results': '3',}"}),
                          SPECS)
    assert repaired.error is None and repaired.repaired and repaired.call.arguments == {"query": "x", "max_results": 3}


def test_unknown_names_list_the_closest_real_ones() -> None:
    checked = check_call(ToolCall(name="get_wether", arguments={"city": "Oslo"}), SPECS)
    assert checked.error is not None
    assert "no tool named 'get_wether'" in checked.error and "Did you mean 'get_weather'" in checked.error
    assert "get_current_time" in checked.error  # the full list of real names follows
    alias = check_call(ToolCall(name="functions.Get_Weather", arguments={"city": "Oslo"}), SPECS)
    assert alias.error is None and alias.call.name == "get_weather"


def events_of(agent: AgentRunner, text: str = "go", **kwargs: Any) -> Any:
    async def collect() -> list[Any]:
        return [e async for e in agent.run(RunRequest([Message(role="user", content=text)], **kwargs))]
    return collect()


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_an_invented_name_is_an_error_result_and_the_loop_goes_on() -> None:
    toolbox = RecordingToolbox(TOOLS)
    replies = [{"tool_calls": [{"name": "weather_now", "arguments": {"city": "Oslo"}}]}]
    agent = AgentRunner(ReplayProvider(replies), toolbox, system_prompt=None, defaults=GenerationOptions())
    client_tool = ToolSpec(name="show_map", source="client")
    events = await events_of(agent, client_tools=[client_tool])
    finished = [e for e in events if isinstance(e, ToolFinished)]
    assert finished[0].result.is_error and "get_weather" in finished[0].result.content
    assert "show_map" in finished[0].result.content  # the client's tools are real names too
    assert not any(type(e).__name__ == "ClientToolCalls" for e in events)
    assert text_of(events) == "Here is the answer." and isinstance(events[-1], RunFinished)


async def test_text_call_markup_never_reaches_the_client_but_prose_streams() -> None:
    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    replies = [{"content": "Checking now. " + call}]
    toolbox = RecordingToolbox(TOOLS)
    agent = AgentRunner(ReplayProvider(replies), toolbox, system_prompt=None, defaults=GenerationOptions())
    events = await events_of(agent)
    assert "tool_call" not in text_of(events) and "Checking now." in text_of(events)
    assert [c.arguments for c in toolbox.ran] == [{"city": "Oslo"}]
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    first_tool = next(i for i, e in enumerate(events) if isinstance(e, ToolStarted))
    assert first_text < first_tool  # the prose went out before the call was even parsed


async def test_json_nested_too_deeply_by_the_model_is_a_bad_call_not_a_crash() -> None:
    """A model (or a prompt injection in a tool result) can write arguments nested deeper than the
    JSON parser goes: as a text call, and as an ``arguments`` string. Each is refused like any other
    unreadable call (a RecursionError escaped the loop before), and the loop goes on to its answer."""
    deep = "[" * 100_000
    text_call = '<tool_call>{"name": "get_weather", "arguments": ' + deep + "</tool_call>"
    assert find_text_calls(text_call, {"get_weather"}) is None
    raw = check_call(ToolCall(name="get_weather", arguments={"_raw": '{"city": ' + deep}), SPECS)
    assert raw.error is not None and raw.call.name == "get_weather"
    replies = [{"tool_calls": [{"name": "get_weather", "arguments": {"_raw": deep}}]}, {"content": text_call}]
    toolbox = RecordingToolbox(TOOLS)
    agent = AgentRunner(ReplayProvider(replies), toolbox, system_prompt=None, defaults=GenerationOptions())
    events = await events_of(agent)
    [finished] = [e for e in events if isinstance(e, ToolFinished)]
    assert finished.result.is_error and toolbox.ran == []
    assert isinstance(events[-1], RunFinished)  # the unreadable text call is the model's answer


async def test_plain_answers_stream_piece_by_piece() -> None:
    replies = [{"content": "The weather is fine today, no tool needed."}]
    agent = AgentRunner(ReplayProvider(replies), RecordingToolbox(TOOLS), system_prompt=None,
                        defaults=GenerationOptions())
    events = await events_of(agent)
    assert len([e for e in events if isinstance(e, TextDelta)]) > 3
    assert text_of(events) == "The weather is fine today, no tool needed."


async def test_repeated_calls_stop_with_an_answer_that_says_why() -> None:
    replies = [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}] * 10
    toolbox = RecordingToolbox(TOOLS)
    agent = AgentRunner(ReplayProvider(replies), toolbox, system_prompt=None, defaults=GenerationOptions(),
                        max_repeated_calls=3)
    events = await events_of(agent)
    assert len(toolbox.ran) == 2
    text = text_of(events)
    assert text.startswith("Here is the answer.")  # the model's answer from what it has
    assert "'get_weather' was requested with the same arguments 3 times" in text
    assert isinstance(events[-1], RunFinished) and events[-1].added[-1].content == text


async def test_round_limit_ends_with_the_best_answer_so_far() -> None:
    replies = [{"tool_calls": [{"name": "get_weather", "arguments": {"city": f"City {n}"}}]} for n in range(10)]
    provider = ReplayProvider(replies)
    agent = AgentRunner(provider, RecordingToolbox(TOOLS), system_prompt=None, defaults=GenerationOptions(),
                        max_iterations=3)
    events = await events_of(agent)
    assert text_of(events).startswith("Here is the answer.\n\nI stopped after 3 tool-calling rounds")
    assert provider.requests[-1].tools == []  # the last round offered no tools
    assert "Do not call any tool" in provider.requests[-1].messages[-1].content


async def test_big_tool_results_are_cut_with_a_marker() -> None:
    class Big(RecordingToolbox):
        async def call(self, name: str, arguments: dict[str, Any], *, timeout: float) -> Any:
            result = await super().call(name, arguments, timeout=timeout)
            result.content = "x" * 5000
            return result

    replies = [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}]
    provider = ReplayProvider(replies)
    agent = AgentRunner(provider, Big(TOOLS), system_prompt=None, defaults=GenerationOptions(),
                        max_tool_result_chars=1000)
    await events_of(agent)
    sent = provider.requests[-1].messages[-1]
    assert sent.role == "tool" and sent.content.startswith("x" * 1000)
    assert "[… 4000 more characters cut by atoll (max_tool_result_chars = 1000)]" in sent.content
    assert cut_result("short", 1000) == "short"


def test_history_is_trimmed_oldest_turns_first() -> None:
    system = Message(role="system", content="You are helpful.")
    old = [Message(role="user", content=f"question {n} " + "word " * 200) for n in range(5)]
    turns: list[Message] = []
    for n, question in enumerate(old):
        turns += [question, Message(role="assistant", content=f"answer {n} " + "word " * 200)]
    current = [Message(role="user", content="the question now"),
               Message(role="assistant", content="", tool_calls=[ToolCall(name="get_weather")]),
               Message(role="tool", content="sunny", tool_name="get_weather")]
    history = [system, *turns, *current]
    budget = estimate_tokens([system, *turns[-4:], *current])
    trimmed = trim_history(history, budget)
    assert trimmed[0] == system and trimmed[-3:] == current
    assert trimmed[1:-3] == turns[-4:]  # whole turns, the newest kept
    assert trim_history([system, *current], 1) == [system, *current]  # never drops the current turn


def trimmed_by_definition(messages: list[Message], budget: int, tools: list[ToolSpec] | None) -> list[Message]:
    """What trim_history promises, the slow way: drop the oldest earlier turn and measure it all again."""
    if budget <= 0 or estimate_tokens(messages, tools) <= budget:
        return list(messages)
    system = [m for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    last_user = max((i for i, m in enumerate(rest) if m.role == "user"), default=0)
    starts = [i for i, m in enumerate(rest[:last_user]) if i == 0 or m.role == "user"]
    for start in [*starts, last_user]:
        kept = [*system, *rest[start:]]
        if estimate_tokens(kept, tools) <= budget:
            return kept
    return kept


def test_trimming_matches_its_definition_on_every_shape_of_history() -> None:
    """Histories with system messages anywhere, turns that begin without a user message, tool calls,
    thinking, no user message at all; budgets from nothing to everything."""
    rng = random.Random(7)
    roles = ["user", "user", "assistant", "assistant", "tool", "system"]
    for _ in range(3000):
        history = [Message(role=rng.choice(roles), content="w" * rng.randint(0, 80),
                           thinking="t" * rng.randint(1, 20) if rng.random() < 0.2 else None,
                           tool_calls=[ToolCall(name="f", arguments={"q": "x" * rng.randint(0, 30)})]
                           if rng.random() < 0.2 else None)
                   for _ in range(rng.randint(0, 16))]
        tools = [ToolSpec(name="t", description="d" * rng.randint(0, 40))] if rng.random() < 0.3 else None
        budget = rng.randint(-1, estimate_tokens(history, tools) + 5)
        expected = trimmed_by_definition(history, budget, tools)
        got = trim_history(history, budget, tools)
        assert [id(m) for m in got] == [id(m) for m in expected], (history, budget, tools)


async def test_the_model_is_sent_a_history_that_fits_its_context() -> None:
    replies = [{"content": "ok"}]
    provider = ReplayProvider(replies)
    agent = AgentRunner(provider, RecordingToolbox(TOOLS), system_prompt="sys", defaults=GenerationOptions())
    long_history = [Message(role="user" if n % 2 == 0 else "assistant", content="word " * 400) for n in range(40)]
    request = RunRequest([*long_history, Message(role="user", content="now")],
                         options=GenerationOptions(num_ctx=2048, max_tokens=256))
    [e async for e in agent.run(request)]
    sent = provider.requests[0].messages
    assert sent[0].content == "sys" and sent[-1].content == "now"
    assert estimate_tokens(sent, provider.requests[0].tools) <= 2048 - 256 < estimate_tokens(long_history)
