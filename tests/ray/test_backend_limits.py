"""The Ray backend keeps the deployment config's ``max_agents`` as the local one does: a deploy of a
new agent past it is a 409 ``MAX_AGENTS`` before anything is written or sent to Serve (the check
comes first, so no cluster is needed to see it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.deploy.errors import Conflict
from atoll.ray.backend import RayBackend
from tests.deploy.test_deploy_zip import agent_files, package, snapshot
from tests.support.servers import scripted_agent_toml, write_agent


async def test_a_new_agent_past_max_agents_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    for name in ("one", "two"):
        write_agent(agents / name, scripted_agent_toml(name))
    backend = RayBackend(agents, http_port=1, secret="s", session_url=None, max_agents=2)
    assert sorted(backend.specs) == ["one", "two"]
    before = snapshot(agents)
    with pytest.raises(Conflict, match=r"max_agents \(2\) reached") as caught:
        await backend.deploy(package(agent_files("three")), name=None, force=False)
    assert (caught.value.status, caught.value.error_code) == (409, "MAX_AGENTS")
    assert snapshot(agents) == before and sorted(backend.specs) == ["one", "two"]
