"""LiteLLM's ``ollama_chat/`` provider, unmodified (checklist item 37)."""

from __future__ import annotations

import json

import httpx
import litellm
import pytest

from tests.clients.helpers import WEATHER_TOOL, tool_command
from tests.support.servers import AgentServer

# LiteLLM's own typing (a ReadOnly TypedDict) makes pydantic warn while LiteLLM loads lazily.
pytestmark = pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning")


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_item_37_completion_non_streamed_with_usage(echo_server: AgentServer) -> None:
    reply = litellm.completion(model="ollama_chat/echo", api_base=echo_server.url, messages=_user("hi lite"))
    assert reply.choices[0].message.content == "You said: hi lite"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == 4 and reply.usage.prompt_tokens > 0  # "You said: hi lite"


def test_item_37_completion_streamed(echo_server: AgentServer) -> None:
    stream = litellm.completion(model="ollama_chat/echo", api_base=echo_server.url, messages=_user("/count 3"),
                                stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "w1 w2 w3"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_item_37_tools(echo_server: AgentServer) -> None:
    reply = litellm.completion(model="ollama_chat/echo", api_base=echo_server.url, tools=[WEATHER_TOOL],
                               messages=_user(tool_command("get_weather", city="Quito")))
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Quito"}
    assert reply.choices[0].finish_reason == "tool_calls"


def test_item_37_tools_streamed(echo_server: AgentServer) -> None:
    chunks = list(litellm.completion(model="ollama_chat/echo", api_base=echo_server.url, tools=[WEATHER_TOOL],
                                     messages=_user(tool_command("get_weather", city="Lima")), stream=True))
    calls = [t for c in chunks for t in (c.choices[0].delta.tool_calls or [])]
    assert [t.function.name for t in calls] == ["get_weather"]
    assert json.loads(calls[0].function.arguments) == {"city": "Lima"}


def test_item_37_show_with_legacy_name_field(echo_server: AgentServer) -> None:
    shown = httpx.post(echo_server.url + "/api/show", json={"name": "echo"})
    assert shown.status_code == 200
    info = shown.json()["model_info"]
    assert any("context_length" in key and value == 4096 for key, value in info.items())
    assert "tools" in shown.json()["template"].lower()  # how LiteLLM decides the model takes tools
