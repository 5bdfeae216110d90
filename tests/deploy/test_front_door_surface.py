"""The front door is one URL for every agent: the official ``ollama`` and ``openai`` clients use the
whole surface through it (listings merged, requests routed by model name), and ``/agent/{name}/``
reaches any path of one agent with the caller's own credentials."""

from __future__ import annotations

from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.deploy.conftest import running_server, write_agent

pytestmark = pytest.mark.anyio

KEYED = 'api_keys = ["key-k"]\n'  # goes into the agent file's [server] section


async def test_ollama_client_sees_the_whole_ollama_surface(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "alpha")
    write_agent(agents, "beta")
    async with running_server(agents) as run:
        client = ollama.AsyncClient(host=run.url)
        loaded = await client.ps()
        assert sorted(m.model for m in loaded.models) == ["alpha:latest", "beta:latest"]
        shown = await client.show("beta")
        assert "completion" in (shown.capabilities or [])
        embedded = await client.embed(model="alpha", input=["one", "two"])
        assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) == 8
        legacy = await client.embeddings(model="alpha", prompt="one")
        assert len(legacy.embedding) == 8
        pulled = await client.pull("alpha")
        assert pulled.status == "success"
        reply = await client.generate(model="beta", prompt="hi")
        assert reply.response == "You said: hi"
        with pytest.raises(ollama.ResponseError) as missing:
            await client.chat(model="gamma", messages=[{"role": "user", "content": "hi"}])
        assert missing.value.status_code == 404
        assert "gamma" in missing.value.error and "alpha, beta" in missing.value.error


async def test_openai_client_through_the_front_door(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "alpha")
    write_agent(agents, "beta")
    async with running_server(agents) as run, \
            openai.AsyncOpenAI(base_url=f"{run.url}/v1", api_key="unused", max_retries=0) as client:
        listed = await client.models.list()
        assert sorted(m.id for m in listed.data) == ["alpha:latest", "beta:latest"]
        assert (await client.models.retrieve("beta")).id == "beta"
        chat = await client.chat.completions.create(model="alpha", messages=[{"role": "user", "content": "hi"}])
        assert chat.choices[0].message.content == "You said: hi" and chat.model == "alpha"
        stream = await client.chat.completions.create(
            model="beta", messages=[{"role": "user", "content": "streamed words"}], stream=True)
        parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        assert len(parts) > 1 and "".join(parts) == "You said: streamed words"
        completion = await client.completions.create(model="alpha", prompt="plain")
        assert completion.choices[0].text == "You said: plain"
        vectors = await client.embeddings.create(model="beta", input=["a", "b"])
        assert len(vectors.data) == 2
        with pytest.raises(openai.NotFoundError) as missing:
            await client.chat.completions.create(model="gamma", messages=[{"role": "user", "content": "hi"}])
        assert "gamma" in str(missing.value) and "alpha, beta" in str(missing.value)


async def test_agent_prefix_reaches_any_agent_path_with_the_callers_credentials(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "mail", name="Mail_Bot")
    write_agent(agents, "keyed", extra=KEYED)
    async with running_server(agents) as run:
        status = await run.client.get("/agent/Mail%5FBot/atoll/status")
        assert status.status_code == 200 and status.json()["agent"]["name"] == "Mail_Bot"
        sessions = await run.client.get("/agent/mail_bot/api/sessions", params={"limit": "5"})
        assert sessions.status_code == 200 and "active_sessions" in sessions.json()
        generated = await run.client.post("/agent/Mail_Bot/api/generate",
                                          json={"model": "Mail_Bot", "prompt": "via prefix", "stream": False})
        assert generated.json()["response"] == "You said: via prefix"
        for name in ("date", "server", "content-type"):  # the door's own, not also the agent's copy
            assert len(generated.headers.get_list(name)) == 1, (name, generated.headers.multi_items())

        refused = await run.client.get("/agent/keyed/atoll/tools")
        assert refused.status_code == 401
        allowed = await run.client.get("/agent/keyed/atoll/tools", headers={"Authorization": "Bearer key-k"})
        assert allowed.status_code == 200
        other = await run.client.get("/agent/Mail_Bot/atoll/tools", headers={"Authorization": "Bearer key-k"})
        assert other.status_code == 200  # an agent without keys ignores them

        unknown = await run.client.get("/agent/nobody/health")
        assert unknown.status_code == 404 and "nobody" in unknown.json()["error"]
        assert "Mail_Bot" in unknown.json()["error"]
        by_folder = await run.client.get("/agents/mail")  # the folder's name, not the agent's
        assert by_folder.status_code == 404
        assert by_folder.json()["detail"] == ("Agent not found: mail (the agent in folder 'mail' is named "
                                              "'Mail_Bot': use /agents/Mail_Bot)")
        management = await run.client.get("/agents/keyed")  # plural: the management API, not a relay
        assert management.status_code == 200 and management.json()["name"] == "keyed"


async def test_agent_prefix_is_for_agents_only_when_the_management_api_has_a_token(tmp_path: Path) -> None:
    from tests.deploy.conftest import make_config

    agents = tmp_path / "agents"
    write_agent(agents, "open")
    async with running_server(agents, make_config(admin_token="admin-t")) as run:
        relayed = await run.bare.get("/agent/open/health")  # the agent's own rules, not the admin token
        assert relayed.status_code == 200
        assert (await run.bare.get("/agents/open")).status_code == 401
        async with httpx.AsyncClient(base_url=run.url, trust_env=False) as plain:
            assert (await plain.get("/v1/models")).status_code == 200
