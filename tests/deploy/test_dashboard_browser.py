"""The dashboard in a real headless Chromium against a real deployment server process with real
agent processes and a real MCP server: sign in, watch agents change state live, deploy a zip, read
the log tail, chat in the playground with a tool call, and nothing works without signing in.

Screenshots go to ``test-artifacts/`` (``dashboard-agents.png`` is the README's).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.deploy.conftest import REPO, free_base_port
from tests.support.browser import chromium, screenshot_path
from tests.support.servers import scripted_agent_toml
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.mcp]

TIME_SERVER = REPO / ".mcp-servers/py/bin/mcp-server-time"
TOKEN = "browser-admin-" + uuid.uuid4().hex
TIME_TOOLS = f"""
[mcp_servers.time]
command = "{TIME_SERVER}"
args = ["--local-timezone", "UTC"]
require_approval = ["convert_time"]
"""
#: An MCP server that cannot start: the agent serves, degraded (its /health says why).
MISSING_TOOLS = '[mcp_servers.time]\ncommand = "no-such-mcp-server-time"\n'
SERVER_SETTINGS = "\n[server]\nsession_store = \"memory\"\ndrain_timeout = 1\n"
#: Long enough for a loaded CI machine; every wait ends as soon as its condition holds.
WAIT_MS = 30_000


@dataclass
class Deployment:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def agents(self) -> dict[str, dict[str, object]]:
        listed = httpx.get(f"{self.url}/agents", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        return {a["name"]: a for a in listed.json()["agents"]}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if not TIME_SERVER.exists():
        pytest.skip("MCP servers not installed: run `make mcp-servers` (make test does)")
    root = tmp_path_factory.mktemp("dashboard")
    agents = root / "agents"
    for name, extra in (("alpha", TIME_TOOLS), ("beta", ""), ("timely", MISSING_TOOLS)):
        (agents / name).mkdir(parents=True)
        (agents / name / "agent.toml").write_text(scripted_agent_toml(name, extra=extra + SERVER_SETTINGS))
    base = free_base_port()
    config = root / "deployment_servers.json"
    # Two remotes: this server itself (so its agents show again, as remote ones) and one that is down.
    remotes = [{"name": "self", "host": "127.0.0.1", "port": base, "admin_token": TOKEN},
               {"name": "offline", "host": "127.0.0.1", "port": base + 30}]
    config.write_text(json.dumps({"api_port": base, "base_port": base + 1, "auto_discover_port": False,
                                  "admin_token": TOKEN, "health_check_interval": 0.5, "sample_interval": 1,
                                  "stop_timeout": 5, "startup_timeout": 40, "remote_servers": remotes}))
    env = {**os.environ, "ATOLL_HOME": str(root / "home"), "HOME": str(root),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("ATOLL_ADMIN_TOKEN", None)
    log = root / "deployment.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "atoll", "--config", str(config), "--agents-dir",
                                    str(agents)], env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deployment = Deployment(f"http://127.0.0.1:{base}", process, log)

    def both_running() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"deployment server exited:\n{log.read_text()}")
        try:
            found = deployment.agents()
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        return all(found.get(n, {}).get("status") == "running" for n in ("alpha", "beta"))

    try:
        wait_until(both_running, timeout=60, what="the deployment server and both agents")
        yield deployment
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, deployment: Deployment) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=deployment.url)
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Page, token: str = TOKEN) -> None:
    page.goto("/ui")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()


def row(page: Page, name: str) -> Locator:
    return page.locator(f'#agents-body tr[data-agent="{name}"]')


def test_nothing_works_without_signing_in(page: Page, deployment: Deployment) -> None:
    page.goto("/ui")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#agents-view")).to_be_hidden()
    statuses = page.evaluate("""async () => Promise.all(
        ['/agents', '/agents/events', '/agents/alpha/config', '/agents/alpha/logs', '/remote'].map(
            async (path) => (await fetch(path)).status))""")
    assert statuses == [401] * 5
    posted = page.evaluate("async () => (await fetch('/agents/beta/stop', {method: 'POST'})).status")
    assert posted == 401
    page.goto("/ui#/agent/alpha")  # a deep link shows the sign-in too, and no agent data
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#agent-view")).to_be_hidden()
    sign_in(page, "not-the-token")
    expect(page.locator("#signin-error")).to_contain_text("invalid admin token")
    expect(page.locator("#agents-view")).to_be_hidden()
    page.screenshot(path=screenshot_path("dashboard-signin"))
    assert deployment.agents()["beta"]["status"] == "running"


def test_sign_in_with_the_keyboard_and_see_two_agents_running(page: Page) -> None:
    page.goto("/ui")
    expect(page.get_by_label("Admin token")).to_be_focused()  # the page puts the keyboard there
    page.keyboard.type(TOKEN)
    page.keyboard.press("Enter")
    for name in ("alpha", "beta"):
        expect(row(page, name).locator(".state-text")).to_have_text("running", timeout=WAIT_MS)
    expect(row(page, "alpha").locator('td[data-label="MCP"]')).to_have_text("1/1", timeout=WAIT_MS)
    expect(row(page, "alpha").locator('td[data-label="Model"]')).to_contain_text("scripted")
    page.screenshot(path=screenshot_path("dashboard-agents"))
    # Remote servers: their agents join the table (without actions), and each one's reachability.
    expect(row(page, "self/alpha").locator(".state-text")).to_have_text("running", timeout=WAIT_MS)
    expect(row(page, "self/alpha").get_by_role("button")).to_have_count(0)
    page.get_by_role("link", name="Remotes").click()
    expect(page.locator('[data-remote="self"] .state-text').first).to_have_text("running", timeout=WAIT_MS)
    expect(page.locator('[data-remote="offline"] .state-text')).to_have_text("not_running")
    expect(page.locator('[data-remote="offline"]')).to_contain_text("cannot connect")
    page.screenshot(path=screenshot_path("dashboard-remotes"))


def test_a_degraded_agent_shows_degraded_and_why(page: Page) -> None:
    sign_in(page)
    state = row(page, "timely").locator('td[data-label="State"]')
    expect(state.locator(".state-text")).to_have_text("degraded", timeout=WAIT_MS)
    reason = "MCP server 'time' is failed: command not found: no-such-mcp-server-time"
    expect(state.locator(".why")).to_have_text(reason)
    expect(row(page, "beta").locator(".why")).to_have_count(0)  # a healthy agent has nothing to say
    remote = row(page, "self/timely").locator('td[data-label="State"]')  # as a remote server lists it
    expect(remote.locator(".state-text")).to_have_text("degraded", timeout=WAIT_MS)
    expect(remote.locator(".why")).to_have_text(reason)
    row(page, "timely").get_by_role("link", name="timely").click()
    expect(page.locator("#facts")).to_contain_text(f"Degraded because{reason}", timeout=WAIT_MS)


def test_restart_goes_through_restarting_to_running_with_a_new_pid_then_stop_and_start(page: Page) -> None:
    sign_in(page)
    beta = row(page, "beta")
    expect(beta).to_have_attribute("data-state", "running", timeout=WAIT_MS)
    old_pid = beta.get_attribute("data-pid")
    assert old_pid
    # Record every state the row shows, as the page renders it.
    page.evaluate("""() => {
        window.seenStates = [];
        const body = document.getElementById('agents-body');
        const note = () => {
            const tr = body.querySelector('tr[data-agent="beta"]');
            const s = tr && tr.dataset.state;
            if (s && window.seenStates[window.seenStates.length - 1] !== s) window.seenStates.push(s);
        };
        new MutationObserver(note).observe(body, {subtree: true, childList: true, attributes: true});
    }""")
    beta.get_by_role("button", name="Restart beta", exact=True).click()
    page.wait_for_function("""(old) => {
        const tr = document.querySelector('#agents-body tr[data-agent="beta"]');
        return tr && tr.dataset.state === 'running' && tr.dataset.pid && tr.dataset.pid !== old;
    }""", arg=old_pid, timeout=WAIT_MS)
    seen = page.evaluate("window.seenStates")
    assert "restarting" in seen and seen[-1] == "running", seen
    assert seen.index("restarting") < len(seen) - 1

    beta.get_by_role("button", name="Stop beta", exact=True).click()
    expect(beta.locator(".state-text")).to_have_text("stopped", timeout=WAIT_MS)
    beta.get_by_role("button", name="Start beta", exact=True).click()
    expect(beta.locator(".state-text")).to_have_text("running", timeout=WAIT_MS)


def _package(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("agent.toml", scripted_agent_toml(name, extra=SERVER_SETTINGS))
    return buffer.getvalue()


def test_deploy_a_zip_and_see_it_appear(page: Page, deployment: Deployment) -> None:
    sign_in(page)
    expect(row(page, "alpha")).to_be_visible(timeout=WAIT_MS)
    page.locator("#zip").set_input_files({"name": "gamma.zip", "mimeType": "application/zip",
                                         "buffer": _package("gamma")})
    expect(page.locator("#deploy-result")).to_contain_text("Deployed gamma", timeout=WAIT_MS)
    expect(row(page, "gamma").locator(".state-text")).to_have_text("running", timeout=WAIT_MS)
    page.screenshot(path=screenshot_path("dashboard-deployed"))

    bad = page.locator("#zip")
    bad.set_input_files({"name": "broken.zip", "mimeType": "application/zip", "buffer": b"not a zip"})
    expect(page.locator("#deploy-result")).to_contain_text("Deploy failed", timeout=WAIT_MS)

    row(page, "gamma").get_by_role("button", name="Delete gamma", exact=True).click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("gamma")
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(row(page, "gamma")).to_have_count(0, timeout=WAIT_MS)
    assert "gamma" not in deployment.agents()


def test_log_tail_shows_a_line_the_agent_just_wrote(page: Page, deployment: Deployment) -> None:
    sign_in(page)
    page.goto("/ui#/agent/beta")
    page.get_by_role("tab", name="Logs").click()
    marker = "log-tail-" + uuid.uuid4().hex
    answer = httpx.post(f"{deployment.url}/api/chat", headers={"X-Request-ID": marker}, timeout=30,
                        json={"model": "beta", "stream": False, "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200
    expect(page.locator("#log")).to_contain_text(marker, timeout=WAIT_MS)
    page.get_by_label("Search").fill(marker)
    expect(page.locator("#log mark")).to_have_text(marker)
    lines = page.locator("#log").inner_text().strip().splitlines()
    assert lines and all(marker in line for line in lines)
    page.get_by_role("button", name="Pause", exact=True).click()
    expect(page.get_by_role("button", name="Resume", exact=True)).to_have_attribute("aria-pressed", "true")
    page.screenshot(path=screenshot_path("dashboard-logs"))


def test_playground_streams_the_answer_and_a_real_mcp_tool_call(page: Page) -> None:
    sign_in(page)
    page.goto("/ui#/agent/alpha")
    page.get_by_role("tab", name="Tools").click()
    expect(page.locator("#tools")).to_contain_text("get_current_time")
    page.get_by_role("tab", name="Playground").click()
    box = page.get_by_label("Message")
    box.fill('/tool get_current_time {"timezone": "Europe/Paris"}')
    box.press("Enter")
    call = page.locator('#chat .tool[data-tool="get_current_time"]')
    expect(call).to_contain_text('"timezone":"Europe/Paris"', timeout=WAIT_MS)
    expect(call).to_contain_text("via time")
    expect(call.locator('[data-result="get_current_time"]')).to_contain_text("Europe/Paris", timeout=WAIT_MS)
    expect(page.locator("#chat .msg.assistant").last).to_contain_text("Tool results: get_current_time=")
    box.fill("/count 5")
    box.press("Enter")
    expect(page.locator("#chat .msg.assistant").last).to_have_text("w1 w2 w3 w4 w5", timeout=WAIT_MS)
    page.screenshot(path=screenshot_path("dashboard-playground"))

    page.get_by_role("tab", name="Sessions").click()
    session = page.locator("#sessions li[data-session]").first
    expect(session).to_be_visible(timeout=WAIT_MS)
    session.get_by_role("button", name="Open", exact=True).click()
    expect(page.locator("#transcript")).to_contain_text("result of get_current_time")
    expect(page.locator("#transcript")).to_contain_text("w1 w2 w3 w4 w5")
    session.get_by_role("button", name="Delete", exact=True).click()
    page.locator("#confirm").get_by_role("button", name="Delete", exact=True).click()
    expect(page.locator("#sessions li[data-session]")).to_have_count(0, timeout=WAIT_MS)

    page.get_by_role("tab", name="Overview").click()
    expect(page.locator("#config")).to_contain_text('"mcp_servers"')
    page.get_by_role("tab", name="Metrics").click()
    expect(page.locator("#chart-rps path")).to_have_count(1, timeout=WAIT_MS)
    page.screenshot(path=screenshot_path("dashboard-metrics"))


def test_a_tool_call_waits_for_approval_given_in_the_dashboard(page: Page) -> None:
    sign_in(page)
    page.goto("/ui#/agent/alpha")
    page.get_by_role("tab", name="Playground").click()
    box = page.get_by_label("Message")
    box.fill('/tool convert_time {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}')
    box.press("Enter")
    expect(page.locator("#chat .msg.assistant").last).to_contain_text("approval id", timeout=WAIT_MS)
    expect(page.locator('#chat .tool[data-tool="convert_time"]')).to_have_count(0)  # nothing ran yet

    page.get_by_role("tab", name="Approvals").click()
    waiting = page.locator("#approvals li[data-approval]")
    expect(waiting).to_have_count(1, timeout=WAIT_MS)
    expect(waiting).to_contain_text("convert_time")
    expect(waiting).to_contain_text("Asia/Tokyo")
    page.screenshot(path=screenshot_path("dashboard-approvals"))
    waiting.get_by_role("button", name="Approve", exact=True).click()
    expect(page.locator("#approvals")).to_contain_text("Nothing is waiting", timeout=WAIT_MS)

    page.get_by_role("tab", name="Playground").click()
    box.fill("go on")
    box.press("Enter")
    result = page.locator('#chat .tool[data-tool="convert_time"] [data-result="convert_time"]')
    expect(result).to_contain_text("Asia/Tokyo", timeout=WAIT_MS)


def test_narrow_screen_and_dark_mode(browser: Browser, deployment: Deployment) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=deployment.url,
                                  color_scheme="dark")
    try:
        page = context.new_page()
        sign_in(page)
        expect(row(page, "alpha").locator(".state-text")).to_have_text("running", timeout=WAIT_MS)
        overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page is {overflow}px wider than a 390px screen"
        restart = row(page, "alpha").get_by_role("button", name="Restart alpha", exact=True)
        expect(restart).to_be_in_viewport()
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(15, 19, 24)"
        page.screenshot(path=screenshot_path("dashboard-narrow-dark"), full_page=True)
    finally:
        context.close()
