"""One round with the real embedded model (SmolLM2 through llama.cpp) via the ``ollama`` and ``openai``
clients. Replies are not deterministic, so these check shapes and that text came out of the model."""

from __future__ import annotations

from collections.abc import Iterator

import ollama
import openai
import pytest

from tests.support.servers import AgentServer, run_agent_server, write_agent

pytestmark = pytest.mark.model

SMOL_AGENT = """
[agent]
name = "smol"
description = "the embedded model, briefly"

[llm]
provider = "local"
max_tokens = 12
temperature = 0
# one llama.cpp thread: two threads spin against each other on a loaded 2-core machine (tests/conftest.py)
[llm.extra]
n_threads = 1
"""


@pytest.fixture(scope="module")
def smol(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    folder = tmp_path_factory.mktemp("smol")
    with run_agent_server(write_agent(folder, SMOL_AGENT), cwd=folder, timeout=120) as server:
        yield server


def test_ollama_client_chats_and_embeds_with_the_embedded_model(smol: AgentServer) -> None:
    client = ollama.Client(host=smol.url, timeout=120)
    assert client.show("smol").capabilities == ["completion", "embedding"]
    parts = list(client.chat(model="smol", messages=[{"role": "user", "content": "Say hello."}], stream=True))
    assert "".join(p.message.content or "" for p in parts).strip()
    final = parts[-1]
    assert final.done and final.done_reason in ("stop", "length") and 0 < (final.eval_count or 0) <= 12
    vectors = client.embed(model="smol", input=["cat", "dog"]).embeddings
    assert len(vectors) == 2 and len(vectors[0]) == 576 and vectors[0] != vectors[1]


def test_openai_sdk_chats_and_embeds_with_the_embedded_model(smol: AgentServer) -> None:
    with openai.OpenAI(base_url=smol.url + "/v1", api_key="unused", max_retries=0, timeout=120) as sdk:
        reply = sdk.chat.completions.create(model="smol", messages=[{"role": "user", "content": "Name a color."}])
        assert (reply.choices[0].message.content or "").strip()
        assert reply.choices[0].finish_reason in ("stop", "length")
        assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 12
        stream = sdk.chat.completions.create(model="smol", stream=True,
                                             messages=[{"role": "user", "content": "Count to three."}])
        chunks = list(stream)
        assert chunks[0].choices[0].delta.role == "assistant"
        assert "".join(c.choices[0].delta.content or "" for c in chunks).strip()
        embedding = sdk.embeddings.create(model="smol", input="a cat").data[0].embedding
        assert len(embedding) == 576 and abs(sum(x * x for x in embedding) - 1) < 1e-3
