"""The dashboard on ``atoll --backend ray`` (the session's Ray fleet, see conftest.py): sign in with the
admin token, read the agents' snapshot the page draws, and reach the agents through Serve with the
deployment's own key (configuration redacted, tools, the chat playground, sessions on shared storage);
then the same page in headless Chromium shows both agents running."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.ray.conftest import OTHER_KEY, RayFleet
from tests.support.browser import chromium, screenshot_path

pytestmark = [pytest.mark.ray, pytest.mark.browser]


def first_event(fleet: RayFleet, headers: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
    with httpx.stream("GET", f"{fleet.api}/agents/events", headers=headers, timeout=30) as response:
        if response.status_code != 200:
            return response.status_code, None
        lines = response.iter_lines()
        event = next(lines)
        data = next(lines)
        assert data.startswith("data: ")
        return 200, {"event": event.removeprefix("event: "), **json.loads(data[6:])}


def chat(fleet: RayFleet, name: str, headers: dict[str, str], message: str, session_id: str) -> str:
    response = httpx.post(f"{fleet.api}/agents/{name}/chat", headers=headers, timeout=60,
                          json={"message": message, "session_id": session_id})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    chunks = [json.loads(line) for line in response.text.splitlines() if line]
    assert chunks[-1]["done"]
    return "".join(c["message"]["content"] for c in chunks)


def test_sign_in_and_the_dashboard_reaches_agents_on_serve(ray_fleet: RayFleet) -> None:
    page = httpx.get(f"{ray_fleet.api}/ui", timeout=30)
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(f"{ray_fleet.api}/agents/events", timeout=30).status_code == 401
    mine = ray_fleet.api
    assert f"  Dashboard: {mine}/ui (sign in with the admin token)" in ray_fleet.log.read_text()  # start-up block
    theirs = f"http://127.0.0.1:{int(mine.rsplit(':', 1)[1]) + 1}"
    refused = httpx.post(f"{mine}/ui/session", json={"token": "nope"}, headers={"Origin": mine}, timeout=30)
    assert refused.status_code == 401
    token = ray_fleet.admin["Authorization"].removeprefix("Bearer ")
    assert httpx.post(f"{mine}/ui/session", json={"token": token}, headers={"Origin": theirs},
                      timeout=30).status_code == 403
    signed = httpx.post(f"{mine}/ui/session", json={"token": token}, headers={"Origin": mine}, timeout=30)
    assert signed.status_code == 200
    cookie = re.match(r"atoll_dashboard=([^;]+)", signed.headers["set-cookie"])
    assert cookie is not None
    as_page = {"Cookie": f"atoll_dashboard={cookie.group(1)}", "Origin": mine}

    status, event = first_event(ray_fleet, as_page)
    assert status == 200 and event is not None and event["event"] == "snapshot"
    agents = {a["name"]: a for a in event["agents"]}
    assert set(agents) == {"echo", "other"} and all(a["status"] == "running" for a in agents.values())
    assert agents["other"]["replicas"]["running"] >= 1 and agents["echo"]["url"].endswith("/agent/echo")
    assert [p["name"] for p in event["problems"]] == ["solo"] and event["model_hosts"] == []
    assert first_event(ray_fleet, {**as_page, "Origin": theirs})[0] == 403

    config = httpx.get(f"{mine}/agents/other/config", headers=as_page, timeout=30)
    assert config.status_code == 200 and config.json()["config"]["server"]["api_keys"] == "[redacted]"
    assert OTHER_KEY not in config.text
    # ``other`` wants an API key: the dashboard reaches it with the deployment's own, never shown.
    tools = httpx.get(f"{mine}/agents/other/tools", headers=as_page, timeout=30)
    assert tools.status_code == 200 and isinstance(tools.json()["tools"], list)
    assert chat(ray_fleet, "other", as_page, "hello ray", f"d-{uuid.uuid4().hex}") == "You said: hello ray"

    # ``echo`` keeps sessions in Redis: whichever replica answers, the session is listed and opens.
    session = f"d-{uuid.uuid4().hex}"
    assert chat(ray_fleet, "echo", as_page, "first", session) == "You said: first"
    listed = httpx.get(f"{mine}/agents/echo/sessions", headers=as_page, timeout=30)
    assert listed.status_code == 200 and session in [s["id"] for s in listed.json()["sessions"]]
    transcript = httpx.get(f"{mine}/agents/echo/sessions/{session}", headers=as_page, timeout=30)
    assert [m["role"] for m in transcript.json()["messages"]][-2:] == ["user", "assistant"]
    assert httpx.delete(f"{mine}/agents/echo/sessions/{session}", headers=as_page, timeout=30).status_code == 204

    samples = httpx.get(f"{mine}/agents/echo/samples", headers=as_page, timeout=30).json()
    assert samples["t"] == [] and "Ray" in samples["note"]
    unknown = httpx.get(f"{mine}/agents/solo/tools", headers=as_page, timeout=30)
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "AGENT_NOT_FOUND"

    with chromium() as browser:
        tab = browser.new_page(viewport={"width": 1280, "height": 800})
        tab.goto(f"{mine}/ui")
        tab.get_by_label("Admin token").fill(token)
        tab.get_by_role("button", name="Sign in", exact=True).click()
        for name in ("echo", "other"):
            row = tab.locator(f'#agents-body tr[data-agent="{name}"]')
            expect(row.locator('[data-label="State"]')).to_contain_text("running", timeout=30_000)
            expect(row.locator('[data-label="State"]')).to_contain_text(re.compile(r"[1-9] replicas?\b"))
        expect(tab.locator("#problems")).to_contain_text("solo")
        tab.screenshot(path=screenshot_path("dashboard-ray"), full_page=True)
