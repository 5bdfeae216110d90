"""Small helpers shared by the client tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
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


def wait_until(condition: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took, fails past ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
    return time.monotonic() - started


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
