"""Replaying what real models emitted (the corpus in ``tests/fixtures/tool_calls.json``) through the
real agent loop. TEST-ONLY: the provider plays the model, the toolbox records what would have run.
Used by tests/agent/test_robustness.py and benchmarks/bench_tool_calls.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from atoll.agent import AgentRunner, RunFinished
from atoll.agent.loop import RunRequest
from atoll.messages import (
    Finished,
    GenerationOptions,
    Message,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCall,
    ToolCallRequested,
    ToolResult,
    ToolSpec,
    Usage,
)
from atoll.providers.base import ModelProfile

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "tool_calls.json"


def load_corpus() -> dict[str, Any]:
    return json.loads(CORPUS.read_text())  # type: ignore[no-any-return]


class ReplayProvider:
    """Answers each LLM call with the episode's next reply; then a plain final answer."""

    name = "replay"
    model = "replay"
    base_url = None

    def __init__(self, replies: list[dict[str, Any]]) -> None:
        self.replies = list(replies)
        self.profile = ModelProfile(context_length=32768)
        self.requests: list[ModelRequest] = []

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def embed(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.requests.append(request)
        reply = self.replies.pop(0) if self.replies and request.tools else {"content": "Here is the answer."}
        content = reply.get("content", "")
        for start in range(0, len(content), 7):  # streamed in small pieces, as a model does
            yield TextDelta(content[start:start + 7])
        for index, call in enumerate(reply.get("tool_calls", [])):
            yield ToolCallRequested(ToolCall(id=f"call_r{len(self.requests)}_{index}", name=call["name"],
                                             arguments=call["arguments"]))
        yield Finished("stop", Usage(prompt_tokens=1, completion_tokens=1))


@dataclass
class RecordingToolbox:
    """The corpus's tools; a call runs (is recorded) only with arguments valid for its schema, as an
    MCP server would refuse the others."""

    schemas: dict[str, dict[str, Any]]
    ran: list[ToolCall] = field(default_factory=list)

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def status(self) -> dict[str, Any]:
        return {}

    def specs(self) -> list[ToolSpec]:
        return [ToolSpec(name=name, parameters=schema, source="corpus") for name, schema in self.schemas.items()]

    async def call(self, name: str, arguments: dict[str, Any], *, timeout: float) -> ToolResult:
        if name not in self.schemas:
            return ToolResult(content=f"unknown tool {name!r}", is_error=True)
        try:
            jsonschema.validate(arguments, self.schemas[name])
        except jsonschema.ValidationError as exc:
            return ToolResult(content=f"invalid arguments: {exc.message}", is_error=True)
        self.ran.append(ToolCall(name=name, arguments=arguments))
        return ToolResult(content=f"{name} ok")


@dataclass
class Outcome:
    ok: bool
    ran: list[ToolCall]
    text: str
    rounds: int


def judge(episode: dict[str, Any], ran: list[ToolCall]) -> bool:
    """The right tool ran with the expected (valid) arguments, and not more often than allowed;
    for an episode that expects no call, nothing ran."""
    expect = episode["expect"]
    if expect is None:
        return not ran
    hits = [c for c in ran if c.name == expect["name"] and c.arguments == expect["arguments"]]
    return bool(hits) and len(hits) <= expect.get("max_runs", len(hits))


async def replay(episode: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> Outcome:
    """One episode through :class:`AgentRunner` (the loop as it is now)."""
    toolbox = RecordingToolbox(schemas)
    agent = AgentRunner(ReplayProvider(episode["replies"]), toolbox, system_prompt=None,
                        defaults=GenerationOptions(), max_iterations=10)
    text, rounds = "", 0
    async for event in agent.run(RunRequest([Message(role="user", content="Please help.")])):
        if isinstance(event, TextDelta):
            text += event.text
        if isinstance(event, RunFinished):
            rounds = event.rounds
    return Outcome(judge(episode, toolbox.ran), toolbox.ran, text, rounds)


def plain_loop(episode: dict[str, Any], schemas: dict[str, dict[str, Any]], max_iterations: int = 10) -> bool:
    """What the loop before this work did with the same replies, step by step: only structured
    calls were calls; a name the agent does not have went back to the client (ending the turn);
    valid calls ran, invalid ones came back as the tool's error; text ended the turn; no limit on
    repeated calls other than ``max_iterations``."""
    ran: list[ToolCall] = []
    for reply in episode["replies"][:max_iterations]:
        calls = reply.get("tool_calls", [])
        if not calls or any(c["name"] not in schemas for c in calls):
            break
        for c in calls:
            try:
                jsonschema.validate(c["arguments"], schemas[c["name"]])
            except jsonschema.ValidationError:
                continue
            ran.append(ToolCall(name=c["name"], arguments=c["arguments"]))
    return judge(episode, ran)
