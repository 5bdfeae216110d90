"""Small helpers shared by the provider tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from atoll.messages import GenerationOptions, Message, ModelEvent, ModelRequest, TextDelta


def ask(text: str, **options: Any) -> ModelRequest:
    """One user turn; ``options`` go to :class:`GenerationOptions`."""
    return ModelRequest(messages=[Message(role="user", content=text)], options=GenerationOptions(**options))


def greedy_ask(text: str, **options: Any) -> ModelRequest:
    """:func:`ask` with deterministic sampling, so a real model's replies are reproducible."""
    return ask(text, **{"temperature": 0.0, "seed": 7, **options})


def openai_agent_toml(name: str, port: int) -> str:
    """An agent on the ``openai`` provider whose upstream is the test's own server on ``port``."""
    return (f'[agent]\nname = "{name}"\n\n[llm]\nprovider = "openai"\nmodel = "m"\napi_key = "x"\n'
            f'base_url = "http://127.0.0.1:{port}/v1"\n')


async def collect(events: AsyncIterator[ModelEvent]) -> list[ModelEvent]:
    return [event async for event in events]


def text_of(events: list[ModelEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))
