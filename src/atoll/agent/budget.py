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
    return len(message.content) + len(message.thinking or "") + _calls_chars(message)


def _tools_chars(tools: list[ToolSpec] | None) -> int:
    return sum(len(json.dumps(t.parameters)) + len(t.name) + len(t.description) for t in tools or [])


def _calls_chars(message: Message) -> int:
    return sum(len(c.name) + len(json.dumps(c.arguments)) for c in message.tool_calls or [])


def trim_history(messages: list[Message], budget: int, tools: list[ToolSpec] | None = None) -> list[Message]:
    """Drop whole earlier turns (a user message and all that followed it), oldest first, until the
    estimate fits ``budget`` tokens. System messages and the current turn (from the last user
    message on) are kept even when they alone exceed the budget.

    Each message is measured once and the total kept as turns are dropped, so a long conversation
    costs one pass, not one pass per dropped turn."""
    if budget <= 0 or estimate_tokens(messages, tools) <= budget:
        return list(messages)
    system = [m for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    last_user = max((i for i, m in enumerate(rest) if m.role == "user"), default=0)
    earlier, current = rest[:last_user], rest[last_user:]
    turns: list[list[Message]] = []
    for message in earlier:
        if message.role == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    sizes = [sum(map(_chars, turn)) for turn in turns]
    chars = sum(map(_chars, system)) + sum(map(_chars, current)) + _tools_chars(tools) + sum(sizes)
    count = len(system) + len(current) + sum(map(len, turns))
    dropped = 0
    while dropped < len(turns) and _estimate(chars, count) > budget:
        chars -= sizes[dropped]
        count -= len(turns[dropped])
        dropped += 1
    return system + [m for t in turns[dropped:] for m in t] + current
