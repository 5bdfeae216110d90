"""What a person sees in the real Open WebUI 0.12.4, in headless Chromium: an agent with a real MCP
server calls a tool and the page shows Open WebUI's own tool-call block naming the tool, with the
answer after it; an agent set to ``show_tool_activity = "off"`` shows no block; and an approval
round trip: the question, the user types "yes", the tool block and the answer follow.

Screenshots go to ``test-artifacts/`` (the README shows the first one)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.clients.test_open_webui import OPEN_WEBUI, _environment, _wait_ready
from tests.support.browser import chromium, screenshot_path
from tests.support.servers import SCRIPTED, AgentServer, free_port, run_agent_server, scripted_agent_toml, write_agent

pytestmark = [pytest.mark.browser, pytest.mark.mcp]

EVERYTHING = Path(__file__).resolve().parents[2] / (
    ".mcp-servers/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
TOOLS = f'[mcp_servers.everything]\ncommand = "node"\nargs = ["{EVERYTHING}", "stdio"]\nrequire_approval = ["echo"]\n'
QUIET = f"""
[agent]
name = "quiet"
show_tool_activity = "off"

[llm]
provider = "{SCRIPTED}"

{TOOLS}
"""
REPLY_TIMEOUT_MS = 90_000

if not (OPEN_WEBUI.exists() and EVERYTHING.exists()):
    pytest.skip("Open WebUI or the MCP servers not installed: run `make test`", allow_module_level=True)


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AgentServer, AgentServer]]:
    shown_dir, quiet_dir = tmp_path_factory.mktemp("shown"), tmp_path_factory.mktemp("quiet")
    with run_agent_server(write_agent(shown_dir, scripted_agent_toml("shown", extra=TOOLS)), cwd=shown_dir,
                          timeout=60) as shown, \
            run_agent_server(write_agent(quiet_dir, QUIET), cwd=quiet_dir, timeout=60) as quiet:
        yield shown, quiet


@pytest.fixture(scope="module")
def webui(agents: tuple[AgentServer, AgentServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Open WebUI with both agents as its Ollama connections; its URL."""
    folder = tmp_path_factory.mktemp("open-webui-browser")
    (folder / "data").mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _environment(folder, folder / "data", agents[0].url)
    env["OLLAMA_BASE_URLS"] = ";".join(agent.url for agent in agents)
    log = folder / "open-webui.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen([str(OPEN_WEBUI), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                   cwd=folder, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        _wait_ready(url, process, log)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def new_chat(browser: Browser, url: str, model: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{url}/?models={model}:latest", wait_until="load", timeout=REPLY_TIMEOUT_MS)
    page.wait_for_selector("#chat-input", timeout=REPLY_TIMEOUT_MS)
    welcome = page.get_by_role("button", name="Okay, Let's Go!")  # the release notes on first sign-in
    if welcome.count():
        welcome.click()
    return page


def send(page: Page, text: str) -> None:
    """Put the text in the chat box as a paste would (typing turns quotes typographic) and send it."""
    page.locator("#chat-input").fill(text)
    page.keyboard.press("Enter")


def test_a_tool_call_shows_as_a_block_with_the_answer_after_it(browser: Browser, webui: str) -> None:
    page = new_chat(browser, webui, "shown")
    send(page, '/tool get-sum {"a": 2, "b": 40}')
    block = page.get_by_text("View Result from get-sum")
    answer = page.get_by_text("Tool results: get-sum=The sum of 2 and 40 is 42.")
    expect(answer).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    expect(block).to_be_visible()
    block_box, answer_box = block.bounding_box(), answer.bounding_box()
    assert block_box and answer_box and block_box["y"] < answer_box["y"]  # collapsed block, then the answer
    page.screenshot(path=screenshot_path("open-webui-tool-call"))
    block.click()  # opened: Open WebUI shows the call's arguments (a 2, b 40) and its result
    expect(page.get_by_text("The sum of 2 and 40 is 42.", exact=True)).to_be_visible()
    expect(page.get_by_text("40", exact=True)).to_be_visible()
    page.screenshot(path=screenshot_path("open-webui-tool-call-open"))
    page.close()


def test_off_shows_no_block(browser: Browser, webui: str) -> None:
    page = new_chat(browser, webui, "quiet")
    send(page, '/tool get-sum {"a": 2, "b": 40}')
    expect(page.get_by_text("Tool results: get-sum=The sum of 2 and 40 is 42.")).to_be_visible(
        timeout=REPLY_TIMEOUT_MS)
    expect(page.get_by_text("View Result from")).to_have_count(0)
    page.screenshot(path=screenshot_path("open-webui-tool-activity-off"))
    page.close()


def test_an_approval_round_trip(browser: Browser, webui: str) -> None:
    page = new_chat(browser, webui, "shown")
    send(page, '/tool echo {"message": "hi"}')
    question = page.get_by_text("I would like to run the tool")
    expect(question).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    expect(question).to_contain_text("approval id:")
    expect(page.get_by_text("View Result from echo")).to_have_count(0)  # nothing ran yet
    send(page, "yes")
    expect(page.get_by_text("Tool results: echo=Echo: hi")).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    expect(page.get_by_text("View Result from echo")).to_be_visible()
    page.screenshot(path=screenshot_path("open-webui-approval"))
    page.close()
