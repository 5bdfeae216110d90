"""Keeping what the model is sent within its context: tool results cut to a size, and the history
trimmed oldest turns first (system prompt and the current turn always kept).

Token counts are estimated at 3.5 characters a token (:data:`CHARS_PER_TOKEN`; English and JSON
run nearer four, so the estimate errs long and keeps the prompt inside), plus a few tokens per
message for the chat template's markers: the loop has no tokenizer for every backend.
"""

from __future__ import annotations

import json

from atoll.messages import Message, ToolSpec

CHARS_PER_TOKEN = 3.5
_PER_MESSAGE = 8  # role markers and separators a chat template adds


def cut_result(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with a marker saying how much was cut."""
    if limit <= 0 or len(text) <= limit:
        return text
    cut = len(text) - limit
    return f"{text[:limit]}\n[… {cut} more characters cut by atoll (max_tool_result_chars = {limit})]"


def estimate_tokens(messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
    return _estimate(sum(map(_chars, messages)) + _tools_chars(tools), len(messages))


def _estimate(chars: int, count: int) -> int:
    return int(chars / CHARS_PER_TOKEN) + _PER_MESSAGE * count


def _chars(message: Message) -> int:
    chars = len(message.content)
    if message.thinking:
        chars += len(message.thinking)
    if message.tool_calls:
        chars += sum(len(c.name) + len(json.dumps(c.arguments)) for c in message.tool_calls)
    return chars


def _tools_chars(tools: list[ToolSpec] | None) -> int:
    return sum(len(json.dumps(t.parameters)) + len(t.name) + len(t.description) for t in tools or [])


def trim_history(messages: list[Message], budget: int, tools: list[ToolSpec] | None = None) -> list[Message]:
    """Drop whole earlier turns (a user message and all that followed it), oldest first, until the
    estimate fits ``budget`` tokens. System messages and the current turn (from the last user
    message on) are kept even when they alone exceed the budget.

    The earlier turns are measured newest first, and the first that no longer fits ends the walk:
    each turn kept only adds to the estimate, so the newest turns that fit are exactly those left
    after dropping the oldest until the rest fits. A turn on a long conversation thus measures
    what the model is sent, not the whole transcript."""
    if budget <= 0:
        return list(messages)
    system = [m for m in messages if m.role == "system"]
    first = next((i for i, m in enumerate(messages) if m.role != "system"), len(messages))
    start = next((i for i in range(len(messages) - 1, first - 1, -1) if messages[i].role == "user"), first)
    current = [m for m in messages[start:] if m.role != "system"]
    chars = sum(map(_chars, system)) + sum(map(_chars, current)) + _tools_chars(tools)
    count = len(system) + len(current)
    kept_from = start  # the earlier turns kept so far begin here
    turn_chars = turn_count = 0
    for index in range(start - 1, first - 1, -1):
        message = messages[index]
        if message.role == "system":
            continue
        turn_chars += _chars(message)
        turn_count += 1
        if message.role == "user" or index == first:  # where this turn begins
            if _estimate(chars + turn_chars, count + turn_count) > budget:
                break
            chars, count, kept_from = chars + turn_chars, count + turn_count, index
            turn_chars = turn_count = 0
    if kept_from == first and _estimate(chars, count) <= budget:
        return list(messages)
    return system + [m for m in messages[kept_from:] if m.role != "system"]
