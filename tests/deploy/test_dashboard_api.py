"""The dashboard's side of the management API, on a real deployment server with real agent
processes: every route the page uses needs the admin token or the sign-in cookie, the cookie only
counts from the dashboard's own origin, the live stream shows every state of a restart, and agents
with API keys are reached with the server's own per-agent credential, which no response shows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from atoll.deploy.logs import log_paths
from atoll.deploy.runner import RUNNING
from atoll.deploy.ui.pages import ASSET_TYPES, ASSETS
from tests.deploy.conftest import Running, make_config, running_server, write_agent
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio

ADMIN = "admin-dashboard-s3cret"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
AGENT_KEY = "client-key-1"
KEYED = f'api_keys = ["{AGENT_KEY}"]\n\n[deployment]\nenv = {{ UPSTREAM_PASSWORD = "hunter2-value" }}\n'

#: Every management route the page calls (the agent "open" exists).
PAGE_ROUTES = [
    ("GET", "/agents"), ("GET", "/agents/events"), ("GET", "/agents/open"), ("GET", "/agents/open/config"),
    ("GET", "/agents/open/tools"), ("GET", "/agents/open/sessions"), ("GET", "/agents/open/sessions/s1"),
    ("DELETE", "/agents/open/sessions/s1"), ("GET", "/agents/open/samples"), ("POST", "/agents/open/chat"),
    ("GET", "/agents/open/logs"), ("POST", "/agents/open/start"), ("POST", "/agents/open/stop"),
    ("POST", "/agents/open/restart"), ("DELETE", "/agents/open"), ("POST", "/agents/deploy"), ("GET", "/remote"),
    ("GET", "/agents/open/approvals"), ("POST", "/agents/open/approvals/abc123"),
]


def origin_of(run: Running) -> str:
    return run.url.rstrip("/")


async def sign_in(run: Running, token: str = ADMIN, origin: str | None = None) -> httpx.Response:
    return await run.bare.post("/ui/session", json={"token": token},
                                 headers={"Origin": origin or origin_of(run)})


def cookie_of(response: httpx.Response) -> str:
    match = re.match(r"atoll_dashboard=([^;]+)", response.headers["set-cookie"])
    assert match is not None
    return match.group(1)


async def first_event(run: Running, headers: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
    async with run.bare.stream("GET", "/agents/events", headers=headers) as response:
        if response.status_code != 200:
            return response.status_code, None
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                return 200, {"event": event, **json.loads(line[6:])}
    raise AssertionError("the stream ended without an event")


async def test_page_is_offline_and_every_route_it_uses_needs_token_or_same_origin_cookie(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "open")
    async with running_server(agents, make_config(admin_token=ADMIN)) as run:
        page = await run.bare.get("/ui")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        for name in ASSET_TYPES:
            asset = await run.bare.get(f"/ui/assets/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"] == ASSET_TYPES[name]
        assert (await run.bare.get("/ui/assets/..%2Fpages.py")).status_code == 404
        assert (await run.bare.get("/ui/assets/index.html.bak")).status_code == 404
        for path in ASSETS.iterdir():  # nothing is fetched from elsewhere: it works offline
            text = path.read_text()
            assert not re.search(r"""(src|href)=["']?(https?:)?//|url\(\s*["']?(https?:)?//|fetch\(["']https?:""",
                                 text), path.name

        for method, path in PAGE_ROUTES:
            refused = await run.bare.request(method, path)
            assert refused.status_code == 401, (method, path)
            assert refused.json()["error_code"] == "UNAUTHORIZED"

        mine, theirs = origin_of(run), f"http://127.0.0.1:{run.server.config.api_port + 1}"
        assert (await sign_in(run, origin=theirs)).status_code == 403
        wrong = await sign_in(run, token=ADMIN + "x")
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        signed = await sign_in(run)
        assert signed.status_code == 200
        attributes = {part.strip().split("=")[0].lower(): part.strip() for part in
                      signed.headers["set-cookie"].split(";")}
        assert {"httponly", "path", "max-age"} <= attributes.keys() and attributes["samesite"] == "SameSite=Strict"
        assert int(attributes["max-age"].split("=")[1]) > 0
        cookie = {"Cookie": f"atoll_dashboard={cookie_of(signed)}"}

        status, event = await first_event(run, {**cookie, "Referer": f"{mine}/ui"})
        assert status == 200 and event is not None and event["event"] == "snapshot"
        assert [a["name"] for a in event["agents"]] == ["open"]
        assert event["model_hosts"] == []  # none without agents on the embedded model (tests/deploy/test_model_host.py)
        assert (await first_event(run, {**cookie, "Origin": theirs}))[0] == 403
        for method, path in PAGE_ROUTES:
            if path == "/agents/events":
                continue
            for headers in ({"Origin": theirs}, {"Referer": f"{theirs}/ui"}, {}, {"Origin": "null"},
                            {"Origin": mine.replace("http:", "https:")}):
                refused = await run.bare.request(method, path, headers={**cookie, **headers})
                assert refused.status_code == 403, (method, path, headers)
                assert refused.json()["error_code"] == "FORBIDDEN_ORIGIN"
            if method != "GET":
                continue
            allowed = await run.bare.request(method, path, headers={**cookie, "Referer": f"{mine}/ui"})
            assert allowed.status_code not in (401, 403), (method, path, allowed.text)
        # A forged or stale cookie is no cookie: the caller is told to authenticate.
        forged = await run.bare.get("/agents", headers={"Cookie": "atoll_dashboard=nope", "Origin": mine})
        assert forged.status_code == 401
        assert run.runner("open").state == RUNNING  # nothing the refused calls asked for was done

        out = await run.bare.delete("/ui/session", headers={**cookie, "Origin": mine})
        assert out.status_code == 200 and "Max-Age=0" in out.headers["set-cookie"]
        assert (await run.bare.get("/agents", headers={**cookie, "Origin": mine})).status_code == 401

        for _ in range(9):  # one wrong token was tried above
            assert (await sign_in(run, token="guess")).status_code == 401
        throttled = await sign_in(run)
        assert throttled.status_code == 429 and "set-cookie" not in throttled.headers


async def test_live_stream_shows_each_state_of_a_restart_and_ends_with_the_server(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "open")
    write_agent(agents, "other")
    async with running_server(agents, make_config(admin_token=ADMIN)) as run:
        before = run.runner("open").proc
        assert before is not None
        seen: list[tuple[str, int | None]] = []
        async with run.bare.stream("GET", "/agents/events", headers=AS_ADMIN) as stream:
            lines = stream.aiter_lines()
            assert (await anext(lines)) == "event: snapshot"
            restart = await run.bare.post("/agents/open/restart?wait=false", headers=AS_ADMIN)
            assert restart.status_code == 200
            event = ""
            async for line in lines:
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "agent":
                    row = json.loads(line[6:])
                    if row["name"] == "open":
                        seen.append((row["status"], row["pid"]))
                        if row["status"] == RUNNING:
                            break
        states = [s for s, _ in seen]
        assert states[0] == "restarting" and states[-1] == RUNNING and "starting" in states, states
        assert seen[-1][1] not in (None, before.pid)
        # A stream still open when the server stops ends, rather than holding the shutdown.
        open_stream = run.bare.stream("GET", "/agents/events", headers=AS_ADMIN)
        response = await open_stream.__aenter__()
        assert response.status_code == 200
    await open_stream.__aexit__(None, None, None)


async def test_keyed_agent_is_reached_with_the_servers_own_credential_never_shown(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "keyed", extra=KEYED)
    async with running_server(agents, make_config(admin_token=ADMIN, sample_interval=1)) as run:
        secret = run.server.agent_keys.key_for("keyed")
        bodies: list[str] = []

        async def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
            response = await run.bare.request(method, path, headers=AS_ADMIN, **kwargs)
            bodies.append(response.text)
            return response

        config = await call("GET", "/agents/keyed/config")
        assert config.status_code == 200
        assert config.json()["config"]["server"]["api_keys"] == "[redacted]"
        assert config.json()["config"]["deployment"]["env"] == "[redacted]"
        assert AGENT_KEY not in config.text and "hunter2-value" not in config.text

        approvals = await call("GET", "/agents/keyed/approvals")
        assert approvals.status_code == 200 and approvals.json() == {"approvals": []}
        unknown = await call("POST", "/agents/keyed/approvals/abc123", json={"approve": True})
        assert unknown.status_code == 404
        assert (await call("POST", "/agents/keyed/approvals/abc123", json={"approve": "yes"})).status_code == 400
        assert (await call("POST", "/agents/keyed/approvals/ABC!", json={"approve": True})).status_code == 400

        tools = await call("GET", "/agents/keyed/tools")
        assert tools.status_code == 200 and isinstance(tools.json()["tools"], list)

        chat = await call("POST", "/agents/keyed/chat", json={"message": "hello there", "session_id": "s-1"})
        assert chat.status_code == 200 and chat.headers["content-type"].startswith("application/x-ndjson")
        chunks = [json.loads(line) for line in chat.text.splitlines() if line]
        assert "".join(c["message"]["content"] for c in chunks) == "You said: hello there" and chunks[-1]["done"]
        bad = await call("POST", "/agents/keyed/chat", json={"message": "x", "session_id": "../etc"})
        assert bad.status_code == 400 and "session_id" in bad.json()["detail"]
        assert (await call("POST", "/agents/keyed/chat", content=b"{not json")).status_code == 400

        listed = await call("GET", "/agents/keyed/sessions")
        assert listed.status_code == 200 and "s-1" in [s["id"] for s in listed.json()["sessions"]]
        transcript = await call("GET", "/agents/keyed/sessions/s-1")
        assert transcript.status_code == 200
        assert [m["role"] for m in transcript.json()["messages"]][-2:] == ["user", "assistant"]
        assert (await call("DELETE", "/agents/keyed/sessions/s-1")).status_code == 204
        assert (await call("GET", "/agents/keyed/sessions/s-1")).status_code == 404
        assert (await call("GET", "/agents/keyed/sessions/a%20b")).status_code == 400

        # The front door still asks callers for the agent's own keys: the server's credential stays its own.
        anonymous = await run.bare.post("/api/chat", json={"model": "keyed", "stream": False,
                                                             "messages": [{"role": "user", "content": "hi"}]})
        assert anonymous.status_code == 401

        await wait_until_async(lambda: len(run.server.sampler.rings.get("keyed", ())) >= 1, timeout=20,
                               what="a metrics sample")
        await run.bare.post("/agents/keyed/chat", headers=AS_ADMIN, json={"message": "again", "session_id": "s-2"})
        await wait_until_async(lambda: _chat_sampled(run, "keyed"), timeout=20, what="the chat in the samples")
        samples = (await call("GET", "/agents/keyed/samples")).json()
        assert samples["interval_s"] == 1 and len(samples["t"]) == len(samples["p95_ms"]) >= 1
        assert any(v for v in samples["tokens_per_s"])
        snapshot = (await call("GET", "/agents")).json()  # the table's live columns come with the stream
        assert snapshot["agents"][0]["name"] == "keyed"
        summary = run.server.sampler.summary("keyed")
        assert summary["provider"] == "scripted" and summary["mcp_total"] == 0
        assert summary["requests_per_min"] is not None and summary["requests_per_min"] > 0

        assert (await call("GET", "/agents/nope/config")).status_code == 404
        await call("POST", "/agents/keyed/stop")
        stopped = await call("GET", "/agents/keyed/tools")
        assert stopped.status_code == 409 and stopped.json()["error_code"] == "AGENT_NOT_RUNNING"

        metrics = (await call("GET", "/metrics")).text
        assert 'route="/agents/{name}/chat",status="200"' in metrics
        assert 'route="/agents/{name}/config",status="200"' in metrics
        assert all(secret not in body for body in bodies)
        for path in log_paths(run.server.logs_dir, "keyed").values():
            assert secret not in path.read_text()


def _chat_sampled(run: Running, name: str) -> bool:
    """A chat was sampled: requests and tokens both counted (other calls count requests only)."""
    ring = run.server.sampler.rings.get(name)
    rows = ring.rows() if ring is not None else []
    return sum(row["requests"] for row in rows) >= 1 and sum(row["tokens"] for row in rows) >= 1
