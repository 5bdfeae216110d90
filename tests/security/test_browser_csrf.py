"""The attacks of issue #9 from a real headless Chromium: a page served from another origin
(``http://evil.localhost:<port>``, which Chromium resolves to 127.0.0.1 by itself) posts the CSRF
deploy form to the deployment server and ``fetch``es a keyless agent's ``/api/chat`` with
``text/plain`` (both "simple" requests, sent without a preflight). Both are refused before any
route runs: nothing is deployed and the agent runs no turn."""

from __future__ import annotations

import base64
import http.server
import io
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.browser import chromium
from tests.support.servers import (
    AgentServer,
    free_port,
    run_agent_server,
    scripted_agent_toml,
    server_env,
    wait_healthy,
    write_agent,
)

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><body><script>
window.results = {{}};
async function attack() {{
  const zip = Uint8Array.from(atob("{zip}"), c => c.charCodeAt(0));
  const form = new FormData();
  form.append("file", new Blob([zip], {{type: "application/zip"}}), "p.zip");
  try {{ await fetch("{deploy}/agents/deploy", {{method: "POST", body: form, mode: "no-cors"}});
        window.results.deploy = "sent"; }} catch (e) {{ window.results.deploy = "error " + e; }}
  try {{ await fetch("{agent}/api/chat", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
        body: JSON.stringify({{model: "echo", stream: false, session_id: "csrf-1",
                               messages: [{{role: "user", content: "ran"}}]}})}});
        window.results.chat = "sent"; }} catch (e) {{ window.results.chat = "error " + e; }}
  try {{ const r = await fetch("{agent}/api/tags"); window.results.read = "read " + r.status; }}
  catch (e) {{ window.results.read = "blocked"; }}
  window.results.done = true;
}}
attack();
</script></body></html>"""


def _planted_zip() -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("agent.toml", scripted_agent_toml("planted"))
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def evil_site(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    site = tmp_path / "site"
    site.mkdir()
    port = free_port()
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(site))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port, site
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def deployment_server(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    home, agents, port = tmp_path / "home", tmp_path / "agents", free_port()
    agents.mkdir()
    log = tmp_path / "deploy.log"
    env = server_env(ATOLL_HOME=str(home), HOME=str(tmp_path))
    env.pop("ATOLL_ADMIN_TOKEN", None)
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "atoll", "--agents-dir", str(agents), "--api-port", str(port),
                                 "--base-port", str(free_port())], cwd=tmp_path, env=env, stdout=sink,
                                stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url, agents, log
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture
def keyless_agent(tmp_path: Path) -> Iterator[AgentServer]:
    folder = tmp_path / "agent"
    agent = write_agent(folder, scripted_agent_toml("echo", extra='[server]\nsession_store = "memory"\n'))
    with run_agent_server(agent, cwd=folder) as server:
        yield server


def test_a_page_from_another_origin_can_neither_deploy_nor_use_a_keyless_agent(
        evil_site: tuple[int, Path], deployment_server: tuple[str, Path, Path], keyless_agent: AgentServer) -> None:
    site_port, site = evil_site
    deploy_url, agents, deploy_log = deployment_server
    (site / "index.html").write_text(PAGE.format(zip=_planted_zip(), deploy=deploy_url, agent=keyless_agent.url))
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"http://evil.localhost:{site_port}/index.html")
        page.wait_for_function("window.results && window.results.done === true", timeout=30_000)
        results = page.evaluate("window.results")
    # The browser sent both simple requests (no-cors hides the answers from the page)...
    assert results["deploy"] == "sent" and results["chat"] == "sent", results
    assert results["read"] == "blocked", results  # and a readable request gets no CORS grant
    # ...and both servers refused them before any route ran.
    assert not (agents / "planted").exists()
    assert "POST /agents/deploy 403" in deploy_log.read_text()
    assert httpx.get(keyless_agent.url + "/api/sessions/csrf-1").status_code == 404  # no turn ran
    assert "POST /api/chat 403" in keyless_agent.output()
