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


async def collect(events: AsyncIterator[ModelEvent]) -> list[ModelEvent]:
    return [event async for event in events]


def text_of(events: list[ModelEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))
