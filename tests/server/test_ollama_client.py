"""The agent server driven by the official ollama Python client, as users drive Ollama."""

from __future__ import annotations

import ollama
import pytest

from tests.support.servers import AgentServer


def test_list_show_ps_parse_with_the_official_client(echo_server: AgentServer) -> None:
    client = ollama.Client(host=echo_server.url)
    models = client.list().models
    assert [m.model for m in models] == ["echo:latest"]
    assert models[0].size == 0 and len(models[0].digest or "") == 64
    shown = client.show("echo")
    assert "completion" in (shown.capabilities or [])
    assert shown.modelinfo is not None and shown.modelinfo["general.basename"] == "echo"
    running = client.ps().models
    assert [m.model for m in running] == ["echo:latest"] and running[0].expires_at is not None


def test_chat_non_streaming(echo_server: AgentServer) -> None:
    reply = ollama.Client(host=echo_server.url).chat(
        model="echo", messages=[{"role": "user", "content": "hello agent"}])
    assert reply.message.role == "assistant"
    assert reply.message.content == "You said: hello agent"
    assert reply.done and reply.done_reason == "stop"
    assert reply.eval_count == 4 and reply.prompt_eval_count and reply.total_duration


def test_chat_streaming_yields_pieces_then_one_done(echo_server: AgentServer) -> None:
    chunks = list(ollama.Client(host=echo_server.url).chat(
        model="ECHO:latest", messages=[{"role": "user", "content": "one two three"}], stream=True))
    assert "".join(c.message.content or "" for c in chunks) == "You said: one two three"
    assert [c.done for c in chunks].count(True) == 1 and chunks[-1].done
    assert chunks[-1].model == "ECHO:latest"  # the name as the request spelled it
    assert len(chunks) > 2


def test_generate_streaming_and_not(echo_server: AgentServer) -> None:
    client = ollama.Client(host=echo_server.url)
    whole = client.generate(model="echo", prompt="hi there")
    assert whole.response == "You said: hi there" and whole.done
    pieces = list(client.generate(model="echo", prompt="hi there", stream=True))
    assert "".join(p.response for p in pieces) == "You said: hi there"
    assert pieces[-1].done and pieces[-1].eval_count == 4


async def test_async_client_streams(echo_server: AgentServer) -> None:
    client = ollama.AsyncClient(host=echo_server.url)
    text = ""
    async for part in await client.chat(model="echo", messages=[{"role": "user", "content": "async works"}],
                                        stream=True):
        text += part.message.content or ""
    assert text == "You said: async works"
    reply = await client.generate(model="echo", prompt="/count 3")
    assert reply.response == "w1 w2 w3"


def test_unknown_model_raises_response_error_404(echo_server: AgentServer) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=echo_server.url).chat(model="llama2", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 404
    assert info.value.error == "model 'llama2' not found"


def test_failure_after_stream_started_raises_response_error(echo_server: AgentServer) -> None:
    stream = ollama.Client(host=echo_server.url).chat(
        model="echo", messages=[{"role": "user", "content": "/error-after upstream broke"}], stream=True)
    with pytest.raises(ollama.ResponseError, match="upstream broke"):
        for _ in stream:
            pass


def test_system_prompt_first_then_client_system(echo_server: AgentServer) -> None:
    reply = ollama.Client(host=echo_server.url).chat(model="echo", messages=[
        {"role": "system", "content": "Client rules."}, {"role": "user", "content": "/system"}])
    assert reply.message.content == "You are echo. | Client rules."


def test_format_json_schema_is_honoured(echo_server: AgentServer) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"]}
    reply = ollama.Client(host=echo_server.url).chat(
        model="echo", messages=[{"role": "user", "content": "Paris"}], format=schema)
    import json

    data = json.loads(reply.message.content or "")
    assert data == {"city": "Paris", "population": 42}


def test_options_keep_alive_think_images_are_accepted(echo_server: AgentServer) -> None:
    reply = ollama.Client(host=echo_server.url).chat(
        model="echo", messages=[{"role": "user", "content": "/count 10", "images": ["aGVsbG8="]}],
        options={"num_predict": 3, "temperature": 0.1, "mirostat": None}, keep_alive="5m", think=False)
    assert reply.message.content == "w1 w2 w3" and reply.done_reason == "length"


def test_client_tools_come_back_as_tool_calls(echo_server: AgentServer) -> None:
    def get_weather(city: str) -> str:
        """Get the weather.

        Args:
          city: the city
        """
        return "sunny"

    reply = ollama.Client(host=echo_server.url).chat(
        model="echo", messages=[{"role": "user", "content": '/tool get_weather {"city": "Tokyo"}'}],
        tools=[get_weather])
    calls = reply.message.tool_calls or []
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [("get_weather", {"city": "Tokyo"})]
    followup = ollama.Client(host=echo_server.url).chat(model="echo", tools=[get_weather], messages=[
        {"role": "user", "content": '/tool get_weather {"city": "Tokyo"}'},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather",
                                                                          "arguments": {"city": "Tokyo"}}}]},
        {"role": "tool", "content": "sunny"},
    ])
    assert followup.message.content == "Tool results: get_weather=sunny"
