"""The model host's HTTP API in-process, with the scripted LLM as its model and the official
``ollama`` client as the caller (what an agent's ``provider = "local"`` uses to reach it): Ollama's
chunks, its error shapes, and a token that names the calling agent on every call."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import ollama
import pytest

from atoll.config import LLMConfig
from atoll.httpkit import signed_token
from atoll.model_host.app import ModelHost, create_app
from tests.support.scripted import ScriptedProvider

pytestmark = pytest.mark.anyio

SECRET = b"a-secret-of-more-than-sixteen-bytes"


@pytest.fixture
async def host() -> AsyncIterator[ModelHost]:
    host = ModelHost(ScriptedProvider(LLMConfig(model="smol")), SECRET)
    host.loaded = True
    yield host


def client(host: ModelHost, token: str | None) -> ollama.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return ollama.AsyncClient(host="http://127.0.0.1:11500", headers=headers,
                              transport=httpx.ASGITransport(app=create_app(host)))


async def test_a_chat_streams_ollama_chunks_and_counts_the_caller(host: ModelHost) -> None:
    agent = client(host, signed_token(SECRET, "alpha"))
    chunks = [c async for c in await agent.chat(model="smol", messages=[{"role": "user", "content": "/count 3"}],
                                                 stream=True, options={"num_predict": 50})]
    assert "".join(c.message.content or "" for c in chunks).split() == ["w1", "w2", "w3"]
    assert chunks[-1].done and chunks[-1].done_reason == "stop" and chunks[-1].eval_count
    assert host.queue.served == {"alpha": 1}


async def test_options_reach_the_model(host: ModelHost) -> None:
    agent = client(host, signed_token(SECRET, "alpha"))
    reply = await agent.chat(model="smol", messages=[{"role": "user", "content": "/options"}],
                             options={"temperature": 0.25, "num_predict": 7, "min_p": 0.1})
    options = json.loads(reply.message.content or "")
    assert options["temperature"] == 0.25 and options["max_tokens"] == 7 and options["extra"] == {"min_p": 0.1}


async def test_an_error_before_the_first_token_keeps_its_status(host: ModelHost) -> None:
    agent = client(host, signed_token(SECRET, "alpha"))
    with pytest.raises(ollama.ResponseError) as caught:
        await agent.chat(model="smol", messages=[{"role": "user", "content": "/error the template broke"}])
    assert caught.value.status_code == 500 and "the template broke" in caught.value.error


async def test_an_error_after_the_first_token_is_the_last_line(host: ModelHost) -> None:
    agent = client(host, signed_token(SECRET, "alpha"))
    stream = await agent.chat(model="smol", messages=[{"role": "user", "content": "/error-after gone"}], stream=True)
    with pytest.raises(ollama.ResponseError, match="gone"):
        async for _ in stream:
            pass
    assert not host.queue.busy


async def test_show_and_embed(host: ModelHost) -> None:
    agent = client(host, signed_token(SECRET, "alpha"))
    shown = await agent.show("smol")
    assert shown.capabilities == ["completion", "embedding"]
    assert shown.details is not None and shown.details.family == "scripted"
    assert (shown.modelinfo or {})["scripted.embedding_length"] == 8
    vectors = (await agent.embed(model="smol", input=["cat", "dog"])).embeddings
    assert len(vectors) == 2 and vectors[0] != vectors[1]


@pytest.mark.parametrize("token", [None, "alpha", "alpha.0000", signed_token(b"another-secret-entirely", "alpha")],
                         ids=["none", "unsigned", "bad-mac", "other-secret"])
async def test_every_model_call_needs_a_token_signed_by_this_host(host: ModelHost, token: str | None) -> None:
    agent = client(host, token)
    for call in (agent.chat(model="smol", messages=[{"role": "user", "content": "hi"}]), agent.show("smol"),
                 agent.embed(model="smol", input="cat")):
        with pytest.raises(ollama.ResponseError) as caught:
            await call
        assert caught.value.status_code == 401
    assert host.queue.served == {}


async def test_health_and_version_need_no_token_and_health_waits_for_the_model(host: ModelHost) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(host)),
                                 base_url="http://127.0.0.1:11500") as bare:
        assert (await bare.get("/api/version")).status_code == 200
        assert (await bare.get("/health")).json()["status"] == "ok"
        host.loaded = False
        assert (await bare.get("/health")).status_code == 503


async def test_a_bad_body_is_a_400_naming_the_problem(host: ModelHost) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(host)),
                                 base_url="http://127.0.0.1:11500",
                                 headers={"Authorization": f"Bearer {signed_token(SECRET, 'alpha')}"}) as agent:
        response = await agent.post("/api/chat", content=b'{"messages": "not a list"}')
        assert response.status_code == 400 and "invalid request body" in response.json()["error"]
        response = await agent.post("/api/chat", content=b"x" * (17 * 1024 * 1024))
        assert response.status_code == 413
