"""The admin token on the management API, credentials through the front door (agents' own keys,
child agents' ``auth_token``, remotes' keys), request ids and access lines, on real processes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from atoll.deploy.config import RemoteServer
from atoll.deploy.logs import log_paths, tail
from atoll.deploy.runner import RUNNING
from tests.deploy.conftest import make_config, running_server, write_agent
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio

ADMIN = "admin-s3cret"
AGENT_KEY = "agent-key-1"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
AS_AGENT_USER = {"Authorization": f"Bearer {AGENT_KEY}"}
KEYED = f'api_keys = ["{AGENT_KEY}"]\n'

MANAGEMENT = [("GET", "/agents"), ("GET", "/agents/open"), ("POST", "/agents/open/stop"),
              ("POST", "/agents/open/restart"), ("GET", "/agents/open/logs"), ("DELETE", "/agents/open"),
              ("POST", "/agents/deploy"), ("GET", "/remote"), ("GET", "/metrics"), ("GET", "/no-such-page")]


def chat(model: str, text: str) -> dict[str, object]:
    return {"model": model, "stream": False, "messages": [{"role": "user", "content": text}]}


async def test_admin_token_guards_management_only(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "open")
    async with running_server(agents, make_config(admin_token=ADMIN)) as run:
        health = await run.bare.get("/health")
        assert health.status_code == 200 and health.json()["agents"]["running"] == 1
        for method, path in MANAGEMENT:
            missing = await run.bare.request(method, path)
            assert missing.status_code == 401, (method, path)
            message = "missing admin token: send the header 'Authorization: Bearer <admin token>'"
            assert missing.json() == {"error": message, "detail": message, "error_code": "UNAUTHORIZED"}
            assert missing.headers["www-authenticate"] == "Bearer"
            for wrong in (f"Bearer {ADMIN}x", f"Basic {ADMIN}", ADMIN, "Bearer"):
                refused = await run.bare.request(method, path, headers={"Authorization": wrong})
                assert refused.status_code == 401 and refused.json()["detail"] == "invalid admin token"
        assert run.runner("open").state == RUNNING and (agents / "open").is_dir()  # nothing was done

        listed = await run.bare.get("/agents", headers=AS_ADMIN)
        assert listed.status_code == 200 and [a["name"] for a in listed.json()["agents"]] == ["open"]
        assert (await run.bare.get("/no-such-page", headers=AS_ADMIN)).status_code == 404
        stopped = await run.bare.post("/agents/open/stop", headers={"Authorization": f"bearer  {ADMIN}"})
        assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
        # The front door needs no admin token: it is the agents' own keys that count there.
        assert (await run.bare.get("/api/version")).status_code == 200
        assert (await run.bare.get("/api/tags")).json() == {"models": []}


async def test_front_door_passes_credentials_through_to_agents_and_child_agents(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    config = make_config(admin_token=ADMIN)
    front_door = f"http://127.0.0.1:{config.api_port}"
    write_agent(agents, "keyed", extra=KEYED)
    write_agent(agents, "open")
    write_agent(agents, "parent", extra=(
        f'\n[sub_agents.withkey]\nurl = "{front_door}"\nmodel = "keyed"\nauth_token = "{AGENT_KEY}"\n'
        f'\n[sub_agents.nokey]\nurl = "{front_door}"\nmodel = "keyed"\n'))
    async with running_server(agents, config) as run:
        # Listings are asked with the deployment server's own key for each agent, whoever calls:
        # a caller's key goes only to the agent its request is routed to.
        for caller in ({}, AS_AGENT_USER):
            names = sorted(m["name"] for m in (await run.client.get("/api/tags", headers=caller)).json()["models"])
            assert names == ["keyed:latest", "open:latest", "parent:latest"]

        anonymous = await run.client.post("/api/chat", json=chat("keyed", "hi"))
        assert anonymous.status_code == 401 and "API key" in anonymous.json()["error"]
        as_admin = await run.client.post("/api/chat", json=chat("keyed", "hi"), headers=AS_ADMIN)
        assert as_admin.status_code == 401  # the admin token is not an agent key
        allowed = await run.client.post("/api/chat", json=chat("keyed", "hi"), headers=AS_AGENT_USER)
        assert allowed.status_code == 200 and allowed.json()["message"]["content"] == "You said: hi"
        assert (await run.client.post("/api/chat", json=chat("open", "hi"))).status_code == 200

        delegated = await run.client.post("/api/chat", json=chat(
            "parent", '/tool ask_withkey {"task": "ping"} ;; ask_nokey {"task": "ping"}'))
        answer = delegated.json()["message"]["content"]
        assert "ask_withkey=You said: ping" in answer
        assert "ask_nokey=child agent 'nokey' answered HTTP 401" in answer


async def test_request_ids_reach_the_agent_and_every_request_has_one_access_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="atoll.access")
    agents = tmp_path / "agents"
    write_agent(agents, "echo")
    async with running_server(agents) as run:
        given = await run.client.post("/api/chat", json=chat("echo:latest", "hi"),
                                      headers={"X-Request-ID": "trace-42"})
        assert given.status_code == 200
        assert given.headers.get_list("x-request-id") == ["trace-42"]  # the agent's own copy is not doubled
        made = [(await run.client.get(path)).headers.get_list("x-request-id") for path in ("/health", "/agents")]
        assert all(len(ids) == 1 and len(ids[0]) == 32 for ids in made) and made[0] != made[1]
        untamed = await run.client.get("/health", headers={"X-Request-ID": "two words\\n"})
        assert untamed.headers["x-request-id"] != "two words\\n"
        missing = await run.client.get("/agents/ghost", headers={"X-Request-ID": "trace-43"})
        assert missing.status_code == 404 and missing.headers["x-request-id"] == "trace-43"

        stderr = log_paths(run.server.logs_dir, "echo")["stderr"]
        await wait_until_async(lambda: any("trace-42" in line for line in tail(stderr, 200)), timeout=20)

    lines = [r for r in caplog.records if r.name == "atoll.access"]
    traced = [r for r in lines if getattr(r, "request_id", None) == "trace-42"]
    assert len(traced) == 1
    assert (traced[0].method, traced[0].route, traced[0].status, traced[0].model) == \
        ("POST", "/api/chat", 200, "echo:latest")
    assert "POST /api/chat 200" in traced[0].getMessage()
    ghost = next(r for r in lines if getattr(r, "request_id", None) == "trace-43")
    assert (ghost.route, ghost.status, ghost.path) == ("/agents/{name}", 404, "/agents/ghost")
    assert len(lines) == 5


async def test_remote_keys_are_sent_to_the_remote(tmp_path: Path) -> None:
    far_agents = tmp_path / "far"
    write_agent(far_agents, "faraway", extra=KEYED)
    far_config = make_config(admin_token="far-admin")
    near_agents = tmp_path / "near"
    near_agents.mkdir()
    port = far_config.api_port
    remotes = [RemoteServer(name="lab", host="127.0.0.1", port=port, api_key=AGENT_KEY, admin_token="far-admin"),
               RemoteServer(name="lab-bare", host="127.0.0.1", port=port)]
    async with running_server(far_agents, far_config), \
            running_server(near_agents, make_config(remote_servers=remotes)) as near:
        states = {r["name"]: r for r in (await near.client.get("/remote")).json()["remote_servers"]}
        assert states["lab"]["state"] == "running" and states["lab"]["agents"][0]["name"] == "faraway"
        assert states["lab-bare"]["state"] == "error" and "admin token" in states["lab-bare"]["error"]
        assert "api_key" not in states["lab"] and AGENT_KEY not in repr(remotes[0])

        listed = [m["name"] for m in (await near.client.get("/api/tags")).json()["models"]]
        assert listed == ["faraway:latest"]
        for caller in ({}, {"Authorization": "Bearer something-else"}):
            reply = await near.client.post("/api/generate", json={"model": "faraway", "prompt": "hey",
                                                                  "stream": False}, headers=caller)
            assert reply.status_code == 200 and reply.json()["response"] == "You said: hey"
