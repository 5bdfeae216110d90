"""The official ``ollama`` Python client, sync and async, unmodified."""

from __future__ import annotations

import ollama
import pytest

from tests.clients.helpers import WEATHER_TOOL, tool_command
from tests.support.servers import AgentServer


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_item_04_list_parses(echo_server: AgentServer) -> None:
    models = ollama.Client(host=echo_server.url).list().models
    assert [(m.model, m.size) for m in models] == [("echo:latest", 0)]
    assert models[0].details is not None and models[0].details.family == "scripted"
    assert models[0].modified_at is not None


def test_item_05_show_reports_honest_capabilities(echo_server: AgentServer, plain: AgentServer) -> None:
    shown = ollama.Client(host=echo_server.url).show("echo")
    assert shown.capabilities == ["completion", "tools", "embedding"]
    info = shown.modelinfo or {}
    assert info["general.architecture"] == "scripted" and info["scripted.context_length"] == 4096
    assert shown.details is not None and shown.details.family == "scripted"
    bare = ollama.Client(host=plain.url).show("plain:latest")
    assert bare.capabilities == ["completion"]


def test_item_07_ps_parses(echo_server: AgentServer) -> None:
    running = ollama.Client(host=echo_server.url).ps().models
    assert [m.model for m in running] == ["echo:latest"]
    assert running[0].expires_at is not None and running[0].size_vram == 0


def test_item_14_sync_chat_and_generate_stream_and_not(echo_server: AgentServer) -> None:
    client = ollama.Client(host=echo_server.url)
    assert client.chat(model="echo", messages=_user("/count 2")).message.content == "w1 w2"
    parts = list(client.chat(model="echo", messages=_user("/count 3"), stream=True))
    assert "".join(p.message.content or "" for p in parts) == "w1 w2 w3" and parts[-1].done
    assert client.generate(model="echo", prompt="/count 2").response == "w1 w2"
    pieces = list(client.generate(model="echo", prompt="/count 3", stream=True))
    assert "".join(p.response for p in pieces) == "w1 w2 w3" and pieces[-1].done


async def test_item_14_async_client_chat_and_generate(echo_server: AgentServer) -> None:
    client = ollama.AsyncClient(host=echo_server.url)
    reply = await client.chat(model="echo", messages=_user("/count 2"))
    assert reply.message.content == "w1 w2"
    text = ""
    async for part in await client.generate(model="echo", prompt="/count 3", stream=True):
        text += part.response
    assert text == "w1 w2 w3"
    assert (await client.list()).models[0].model == "echo:latest"


def test_item_16_tool_call_in_its_own_chunk_with_object_arguments(echo_server: AgentServer) -> None:
    chunks = list(ollama.Client(host=echo_server.url).chat(
        model="echo", messages=_user(tool_command("get_weather", city="Paris")), tools=[WEATHER_TOOL], stream=True))
    with_calls = [c for c in chunks if c.message.tool_calls]
    assert len(with_calls) == 1 and not with_calls[0].done
    call = with_calls[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "Paris"}
    assert chunks[-1].done and chunks[-1].done_reason == "stop" and not chunks[-1].message.tool_calls


def test_item_17_tool_round_trip_without_ids(echo_server: AgentServer) -> None:
    """ollama-python drops tool-call ids, so the result comes back with neither id nor name."""
    client = ollama.Client(host=echo_server.url)
    first = client.chat(model="echo", messages=_user(tool_command("get_weather", city="Rome")), tools=[WEATHER_TOOL])
    history = [*_user("weather?"), first.message, {"role": "tool", "content": "sunny"}]
    second = client.chat(model="echo", messages=history, tools=[WEATHER_TOOL])
    assert second.message.content == "Tool results: get_weather=sunny"


def test_item_20_think_streams_thinking_before_content(thinker: AgentServer) -> None:
    client = ollama.Client(host=thinker.url)
    assert "thinking" in (client.show("thinker").capabilities or [])
    chunks = list(client.chat(model="thinker", messages=_user("/count 2"), think=True, stream=True))
    kinds = ["thinking" if c.message.thinking else "content" for c in chunks if c.message.thinking or c.message.content]
    assert kinds == ["thinking", "thinking", "content", "content"]
    whole = client.chat(model="thinker", messages=_user("/count 2"), think=True)
    assert whole.message.thinking == "Let me think." and whole.message.content == "w1 w2"
    assert client.chat(model="thinker", messages=_user("/count 1"), think=False).message.thinking is None


def test_item_23_unknown_model_raises_404(echo_server: AgentServer) -> None:
    client = ollama.Client(host=echo_server.url)
    for call in (lambda: client.generate(model="llama3", prompt="x"), lambda: client.embed(model="llama3", input="x"),
                 lambda: client.show("llama3")):
        with pytest.raises(ollama.ResponseError) as info:
            call()
        assert info.value.status_code == 404 and info.value.error == "model 'llama3' not found"


def test_item_25_failure_mid_stream_raises_response_error(echo_server: AgentServer) -> None:
    with pytest.raises(ollama.ResponseError, match="lost it"):
        for _ in ollama.Client(host=echo_server.url).generate(model="echo", prompt="/error-after lost it", stream=True):
            pass


def test_item_27_embed_and_legacy_embeddings(echo_server: AgentServer) -> None:
    client = ollama.Client(host=echo_server.url)
    one = client.embed(model="echo", input="alpha").embeddings
    two = client.embed(model="echo", input=["alpha", "beta"]).embeddings
    assert len(one) == 1 and len(two) == 2 and two[0] == one[0] and len(one[0]) == 8
    assert client.embeddings(model="echo", prompt="alpha").embedding == pytest.approx(one[0])
    assert client.embed(model="echo", input=[]).embeddings == []


def test_item_27_embed_unsupported_is_the_documented_400(plain: AgentServer) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=plain.url).embed(model="plain", input="x")
    assert info.value.status_code == 400 and info.value.error == '"plain" does not support embeddings'


def test_item_28_pull_known_agent_streamed_and_not(echo_server: AgentServer) -> None:
    client = ollama.Client(host=echo_server.url)
    assert client.pull("echo").status == "success"
    statuses = [p.status for p in client.pull("echo:latest", stream=True)]
    assert statuses[-1] == "success" and len(statuses) >= 2
    with pytest.raises(ollama.ResponseError) as info:
        client.pull("llama3")
    assert info.value.status_code == 404


def test_item_29_delete_copy_create_push_are_refused(echo_server: AgentServer) -> None:
    client = ollama.Client(host=echo_server.url)
    with pytest.raises(ollama.ResponseError) as unknown:
        client.delete("unknown")
    assert unknown.value.status_code == 404 and unknown.value.error == "model 'unknown' not found"
    for call in (lambda: client.delete("echo"), lambda: client.copy("echo", "echo2"),
                 lambda: client.create("echo2", from_="echo"), lambda: client.push("echo")):
        with pytest.raises(ollama.ResponseError) as refused:
            call()
        assert refused.value.status_code == 403 and "defined by their agent file" in refused.value.error
