"""Deploy and secrets, through the real management API with real zips and real agent processes:
names are checked before they touch a path, malformed zips are 400s, bad query values are 400s,
deep JSON is a 400, a deploy past a limit writes nothing, and no agent process receives the admin
token or a remote's credentials."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import zipfile
from pathlib import Path

import psutil
import pytest

from atoll.deploy.config import RemoteServer
from tests.deploy.conftest import child_env, make_config, running_server, write_agent
from tests.deploy.test_deploy_zip import agent_files, package

pytestmark = pytest.mark.anyio

ADMIN = "admin-Zq8-very-secret-token"
REMOTE_KEY = "remote-key-Yk3-secret"


async def deploy(run, data: bytes, **fields: str):  # type: ignore[no-untyped-def]
    return await run.client.post("/agents/deploy", files={"file": ("p.zip", data, "application/zip")}, data=fields)


async def test_a_name_is_checked_before_it_touches_a_path(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    outside = tmp_path / "outside"
    async with running_server(agents) as run:
        for name in (str(outside), "x/.", "..", ".", "a/b", "../escape", "-x", "a" * 129):
            refused = await deploy(run, package(agent_files("shipped")), name=name)
            assert refused.status_code == 400 and refused.json()["error_code"] == "INVALID_NAME", name
        assert not outside.exists() and not (tmp_path / "escape").exists()
        slashed = package({"agent.toml": '[agent]\nname = "team/agent"\n[llm]\nprovider = "x"\n'})
        refused = await deploy(run, slashed)
        assert refused.status_code == 400 and refused.json()["error_code"] == "INVALID_NAME"
        assert sorted(p.name for p in agents.iterdir() if p.name != ".staging") == []


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries:
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


@pytest.mark.parametrize("entries", [
    [(".", b"x"), ("agent.toml", b"")],
    [("lib", b"a file"), ("lib/inner.py", b"x = 1"), ("agent.toml", b"")],
    [("dir/", b""), ("dir/.", b"x"), ("agent.toml", b"")],
], ids=["dot-entry", "file-and-folder", "dot-in-folder"])
async def test_malformed_zips_are_400(tmp_path: Path, entries: list[tuple[str, bytes]]) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    async with running_server(agents) as run:
        refused = await deploy(run, _zip(entries))
        assert refused.status_code == 400, refused.text
        assert refused.json()["error_code"] == "INVALID_PACKAGE"
        assert str(tmp_path) not in refused.text


async def test_bad_query_values_and_deep_json_are_400(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "open")
    async with running_server(agents) as run:
        for lines in ("²", "٣", "1e3", "-1", "0", "99999999"):
            response = await run.client.get("/agents/open/logs", params={"lines": lines})
            assert response.status_code == 400, lines
        deep = b"[" * 100_000
        for path in ("/api/chat", "/v1/chat/completions", "/agent/open/api/chat"):
            response = await run.client.post(path, content=deep)
            assert response.status_code == 400, (path, response.text)
        nested = b'{"model": "open", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        assert (await run.client.post("/agent/open/api/chat", content=nested)).status_code == 400


async def test_no_agent_process_receives_the_admin_token_or_remote_credentials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SECRET_COPY", ADMIN)  # what the agent's own file points at
    agents = tmp_path / "agents"
    write_agent(agents, "greedy", extra='[deployment]\nenv = { GRAB_KEY = "Bearer remote-key-Yk3-secret", '
                                         'PLAIN = "fine" }\n')
    write_agent(agents, "sneaky", extra='[deployment]\nenv = { GRAB = "$SOME_SECRET_COPY" }\n')
    config = make_config(admin_token=ADMIN, remote_servers=[
        RemoteServer(name="far", host="127.0.0.1", port=9, enabled=False, api_key=REMOTE_KEY)])
    env_base = {**child_env(), "ATOLL_DEPLOY_TOKEN": ADMIN, "FAR_API_KEY": REMOTE_KEY}
    async with running_server(agents, config, env_base=env_base) as run:
        runner = run.runner("greedy")
        assert runner.proc is not None and runner.state == "running"
        environ = psutil.Process(runner.proc.pid).environ()
        # The agent reads $SOME_SECRET_COPY itself, and finds it unset: it never starts with the value.
        sneaky = run.runner("sneaky")
        assert sneaky.state == "failed" and "$SOME_SECRET_COPY is not set" in (sneaky.error or "")
        listed = (await run.client.get("/agents")).text
    assert environ.get("PLAIN") == "fine"
    assert not [k for k, v in environ.items() if ADMIN in v or REMOTE_KEY in v]
    assert {"GRAB", "GRAB_KEY", "ATOLL_DEPLOY_TOKEN", "FAR_API_KEY"}.isdisjoint(environ)
    assert ADMIN not in listed and REMOTE_KEY not in listed


async def test_deleted_versions_are_pruned_to_keep_old_versions(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    async with running_server(agents, make_config(keep_old_versions=2)) as run:
        for round_ in range(4):
            deployed = await deploy(run, package(agent_files("cycled", note=f"v{round_}")))
            assert deployed.status_code == 200, deployed.text
            assert (await run.client.delete("/agents/cycled")).status_code == 200
            kept = sorted((agents / ".deleted").glob("cycled-*"))
            assert len(kept) == min(round_ + 1, 2)
        notes = sorted((p / "README.md").read_text() for p in (agents / ".deleted").glob("cycled-*"))
    assert notes == ["v2", "v3"]  # the newest two


async def test_config_errors_name_the_variable_never_its_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SECRET", "s3cr3t-value-not-a-number")
    agents = tmp_path / "agents"
    agents.mkdir()
    async with running_server(agents) as run:
        bad = package({"agent.toml": '[agent]\nname = "leaky"\nmax_iterations = "$SOME_SECRET"\n'})
        refused = await deploy(run, bad)
    assert refused.status_code == 400 and refused.json()["error_code"] == "INVALID_CONFIG"
    assert "s3cr3t" not in refused.text
    assert "agent.max_iterations" in refused.text and "$SOME_SECRET" in refused.text


async def test_mcp_json_errors_name_the_variable_never_its_value(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent reads its folder's ``mcp.json`` when it starts; the deploy answers with its error."""
    monkeypatch.setenv("SOME_SECRET", "s3cr3t-value-not-a-number")
    agents = tmp_path / "agents"
    agents.mkdir()
    servers = {"mcpServers": {"clock": {"command": "mcp-server-time", "timeout": "$SOME_SECRET"}}}
    async with running_server(agents, make_config(pass_env=["SOME_SECRET"])) as run:
        refused = await deploy(run, package({**agent_files("leaky"), "mcp.json": json.dumps(servers)}))
    assert refused.status_code == 400 and refused.json()["error_code"] == "INVALID_CONFIG", refused.text
    assert "s3cr3t" not in refused.text
    assert "mcp.json" in refused.text and "timeout" in refused.text and "$SOME_SECRET" in refused.text


def _agent_folders(agents: Path) -> list[str]:
    return sorted(p.name for p in agents.iterdir() if p.name != ".staging")


async def test_a_deploy_past_max_agents_is_refused_before_it_writes_anything(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "first")
    config = make_config(max_agents=1)
    async with running_server(agents, config) as run:
        refused = await deploy(run, package(agent_files("second")))
        assert refused.status_code == 409 and refused.json()["error_code"] == "MAX_AGENTS", refused.text
        assert _agent_folders(agents) == ["first"]
        again = await deploy(run, package(agent_files("second")))  # nothing was left held
        assert again.json()["error_code"] == "MAX_AGENTS"
    async with running_server(agents, config) as run:  # the next start finds only the first agent
        listed = (await run.client.get("/agents")).json()
        assert [a["name"] for a in listed["agents"]] == ["first"]
        assert run.runner("first").state == "running"
        assert listed["problems"] == []


async def test_a_deploy_without_a_free_port_is_refused_before_it_writes_anything(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    config = make_config(base_port=65535)  # the one port it may hand out is held below
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # if someone else holds it, it is just as taken
            holder.bind(("127.0.0.1", 65535))
            holder.listen()
        async with running_server(agents, config) as run:
            refused = await deploy(run, package(agent_files("portless")))
            assert refused.status_code == 409 and refused.json()["error_code"] == "PORT_UNAVAILABLE", refused.text
            assert _agent_folders(agents) == []
        async with running_server(agents, config) as run:
            assert (await run.client.get("/agents")).json()["agents"] == []
