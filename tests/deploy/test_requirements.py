"""requirements.txt in an uploaded package, through the real management API with real zips, real
pip and real agent processes: pip options, includes, direct URLs and paths are refused (400 naming
the line) unless deployment_servers.json sets allow_pip_options, which a package cannot set for
itself; two deploys needing the same venv at once build it once (the second waits and reuses it)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import psutil
import pytest

from tests.deploy.conftest import make_config, running_server
from tests.deploy.test_deploy_zip import agent_files, package

pytestmark = pytest.mark.anyio


async def deploy(run, data: bytes, **fields: str):  # type: ignore[no-untyped-def]
    return await run.client.post("/agents/deploy", files={"file": ("p.zip", data, "application/zip")}, data=fields)


def with_requirements(name: str, requirements: str, agent_extra: str = "") -> bytes:
    files = agent_files(name)
    files["agent.toml"] = f"{files['agent.toml']!s}{agent_extra}"
    files["requirements.txt"] = requirements
    return package(files)


REFUSED = [
    "-i http://127.0.0.1:9/simple",
    "--index-url=http://127.0.0.1:9/simple",
    "--extra-index-url http://127.0.0.1:9/simple",
    "-f /tmp/wheels",
    "--find-links=http://127.0.0.1:9/",
    "--trusted-host 127.0.0.1",
    "-e git+https://127.0.0.1:9/x.git#egg=x",
    "-r other.txt",
    "-c constraints.txt",
    "evil @ https://127.0.0.1:9/evil-1.0.tar.gz",
    "https://127.0.0.1:9/evil-1.0.tar.gz",
    "./vendored",
    "/abs/path/pkg",
    "evil-1.0-py3-none-any.whl",
    "psutil --global-option=--evil",
]


async def test_pip_options_in_an_uploaded_requirements_txt_are_refused(tmp_path: Path, atoll_home: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    async with running_server(agents) as run:
        for line in REFUSED:
            # An uploaded agent file cannot authorise itself.
            data = with_requirements("piper", f"# the agent's needs\npsutil\n{line}\n",
                                     "\n[deployment]\nallow_pip_options = true\n")
            refused = await deploy(run, data)
            assert refused.status_code == 400, (line, refused.text)
            body = refused.json()
            assert body["error_code"] == "PIP_OPTIONS_REFUSED", line
            assert "line 3" in body["detail"] and line in body["detail"] and "allow_pip_options" in body["detail"]
        assert "piper" not in run.server.supervisor.runners
        assert sorted(p.name for p in agents.iterdir() if p.name != ".staging") == []
        assert not (atoll_home / "venvs").exists() or not any((atoll_home / "venvs").glob("*/bin"))
        # Plain requirements (name, extras, versions, markers, --hash pins) are installed.
        ok = await deploy(run, with_requirements("piper", "psutil>=5 ; python_version >= '3.8'  # ok\n"))
        assert ok.status_code == 200, ok.text


async def test_allow_pip_options_in_the_deployment_config_lets_them_through(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    async with running_server(agents, make_config(allow_pip_options=True)) as run:
        ok = await deploy(run, with_requirements("opted", "--no-index\npsutil\n"))
        assert ok.status_code == 200, ok.text
        assert run.runner("opted").state == "running"


async def test_two_deploys_needing_one_venv_build_it_once(tmp_path: Path, atoll_home: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    caplog.set_level(logging.INFO, logger="atoll.deploy")
    async with running_server(agents) as run:
        first, second = await asyncio.gather(deploy(run, with_requirements("twin-a", "psutil\n")),
                                             deploy(run, with_requirements("twin-b", "psutil\n")))
        assert first.status_code == 200, first.text
        assert second.status_code == 200, second.text
        built = [r.getMessage() for r in caplog.records if ": building" in r.getMessage()]
        reused = [r.getMessage() for r in caplog.records if "built meanwhile by another deploy" in r.getMessage()]
        assert len(built) == 1 and len(reused) == 1, (built, reused)
        venvs = atoll_home / "venvs"
        ready = [p for p in venvs.iterdir() if (p / ".atoll-ready").exists()]
        assert len(ready) == 1 and not list(venvs.glob(".build-*"))
        for name in ("twin-a", "twin-b"):
            runner = run.runner(name)
            assert runner.state == "running" and runner.proc is not None
            assert psutil.Process(runner.proc.pid).cmdline()[0] == str(ready[0] / "bin" / "python")
