"""The management API fuzzed like the agent API (``tests/security/test_fuzz.py``): Hypothesis sends a
real deployment server process every management route with fuzzed methods, names, query values,
headers and bodies (with the admin token, so the handlers themselves are reached). Whatever it is
sent, it answers without a 5xx. ``/agents/events`` (a never-ending stream) is left out."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.deploy.conftest import write_agent
from tests.support.servers import free_port, server_env, wait_healthy

ROUTES = ["/health", "/agents", "/agents/deploy", "/agents/{name}", "/agents/{name}/start", "/agents/{name}/stop",
          "/agents/{name}/restart", "/agents/{name}/logs", "/remote", "/metrics", "/agents/{name}/config",
          "/agents/{name}/tools", "/agents/{name}/sessions", "/agents/{name}/sessions/{name}",
          "/agents/{name}/samples", "/agents/{name}/chat", "/agents/{name}/approvals",
          "/agents/{name}/approvals/{name}", "/ui", "/ui/assets/{name}", "/ui/session"]
METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]
CONTENT_TYPES = ["application/json", "text/plain", "multipart/form-data; boundary=x", "application/zip",
                 "multipart/form-data", ""]
text = st.text(min_size=0, max_size=40)
names = st.one_of(text.filter(lambda s: s != "open"), st.sampled_from(["..", "%2e%2e", "a/b", "日本", "x" * 300]))
bodies = st.one_of(st.none(), st.binary(max_size=2000), text.map(str.encode),
                   st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), text),
                                lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
                                max_leaves=10).map(lambda v: json.dumps(v).encode()))


@pytest.fixture(scope="module")
def management(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("fuzz-management")
    home, agents, port = tmp / "home", tmp / "agents", free_port()
    write_agent(agents, "open")
    log = tmp / "deploy.log"
    env = server_env(ATOLL_HOME=str(home), HOME=str(tmp))
    env.pop("ATOLL_ADMIN_TOKEN", None)
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "atoll", "--agents-dir", str(agents), "--api-port", str(port),
                                 "--base-port", str(free_port())], cwd=tmp, env=env, stdout=sink,
                                stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url, (home / "admin_token").read_text().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_no_server_errors_on_the_management_api(management: tuple[str, str]) -> None:
    url, token = management

    @given(route=st.sampled_from(ROUTES), name=names, method=st.sampled_from(METHODS),
           query=st.dictionaries(st.sampled_from(["lines", "wait", "force", "name", "x"]), text,
                                 max_size=3),
           body=bodies, content_type=st.sampled_from(CONTENT_TYPES))
    @settings(max_examples=300, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(route: str, name: str, method: str, query: dict[str, str], body: bytes | None, content_type: str) -> None:
        path = route.replace("{name}", quote(name, safe="") or "x")
        headers = {"Authorization": f"Bearer {token}"}
        if content_type:
            headers["Content-Type"] = content_type
        response = httpx.request(method, url + path, params=query, content=body, headers=headers, timeout=60)
        assert response.status_code < 500, (method, path, query, body, response.text[:300])

    run()
