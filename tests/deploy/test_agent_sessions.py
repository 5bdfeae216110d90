"""Sessions belong to the agent: a forced redeploy keeps them; deleting the agent takes them along,
so a new agent that reuses the name starts with none."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.deploy.conftest import running_server
from tests.deploy.test_deploy_zip import package, post

pytestmark = pytest.mark.anyio

SQLITE_AGENT = """\
[agent]
name = "keeper"
[llm]
provider = "tests.support.scripted:ScriptedProvider"
[server]
drain_timeout = 1
"""


async def test_sessions_outlive_a_redeploy_and_leave_with_a_deleted_agent(tmp_path: Path, atoll_home: Path
                                                                         ) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    archive = package({"agent.toml": SQLITE_AGENT})
    session = uuid.uuid4().hex
    async with running_server(agents) as run:
        assert (await post(run, archive)).status_code == 200
        chat = await run.client.post("/api/chat", headers={"X-Session-ID": session}, json={
            "model": "keeper", "stream": False, "messages": [{"role": "user", "content": "remember me"}]})
        assert chat.status_code == 200, chat.text

        async def transcript() -> tuple[int, list[str]]:
            port = run.runner("keeper").port
            answer = await run.client.get(f"http://127.0.0.1:{port}/api/sessions/{session}")
            return answer.status_code, [m["content"] for m in answer.json().get("messages", [])]

        assert (await post(run, archive, force="true")).status_code == 200
        assert await transcript() == (200, ["remember me", "You said: remember me"])
        assert (atoll_home / "sessions" / "keeper.db").exists()
        assert not list(agents.glob("*/sessions.db"))

        assert (await run.client.delete("/agents/keeper")).status_code in (200, 204)
        assert not (atoll_home / "sessions" / "keeper.db").exists()
        assert list((agents / ".deleted").glob("*/sessions.db"))  # restoring the folder brings them back

        assert (await post(run, archive)).status_code == 200
        assert (await transcript())[0] == 404
