"""Small helpers shared by the client tests."""

from __future__ import annotations

import json
from typing import Any

import httpx

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def tool_command(name: str, **arguments: Any) -> str:
    """The scripted LLM's command for one tool call."""
    return f"/tool {name} {json.dumps(arguments)}"


def active_generations(url: str) -> int:
    return int(httpx.get(url + "/atoll/status").json()["active_generations"])


def ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.text.endswith("\n") and "\n\n" not in response.text
    return [json.loads(line) for line in response.text.splitlines()]


def sse_events(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order (``[DONE]`` included)."""
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if block]
    assert all(block.startswith("data: ") for block in events)
    return [block[len("data: "):] for block in events]
