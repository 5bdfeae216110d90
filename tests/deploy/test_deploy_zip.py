"""POST /agents/deploy with real archives: a good package runs; unsafe ones are refused untouched."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import anyio
import pytest

from atoll.deploy.archive import ArchiveLimits, check_members
from atoll.deploy.deploy_zip import Deployer
from atoll.deploy.errors import BadRequest
from atoll.deploy.ports import PortAllocator
from atoll.deploy.runner import RUNNING
from atoll.deploy.supervisor import Supervisor
from atoll.deploy.venvs import ensure_venv, venv_python
from tests.deploy.conftest import AGENT_TOML, running_server
from tests.deploy.fakes import FakeWorld, Script
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio


def package(files: dict[str, str | bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def agent_files(name: str, note: str = "v1") -> dict[str, str | bytes]:
    return {"agent.toml": AGENT_TOML.format(name=name), "README.md": note}


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if ".staging" not in p.parts}


async def post(run, data: bytes, **fields: str):  # type: ignore[no-untyped-def]
    return await run.client.post("/agents/deploy", files={"file": ("agent.zip", data, "application/zip")},
                                  data=fields)


async def test_deploy_runs_the_agent_then_checksum_force_and_bad_update(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    async with running_server(agents) as run:
        first = package(agent_files("shipped"))
        response = await post(run, first)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "deployed" and len(body["checksum"]) == 64
        assert run.runner("shipped").state == RUNNING
        chat = await run.client.post("/api/generate", json={"model": "shipped", "prompt": "hi", "stream": False})
        assert chat.json()["response"] == "You said: hi"

        again = await post(run, first)
        assert again.status_code == 409 and again.json()["error_code"] == "ALREADY_DEPLOYED"
        forced = await post(run, first, force="true")
        assert forced.status_code == 200

        broken = package({"agent.toml": '[agent]\nname = "shipped"\n[llm]\ntemperature = "hot"\n'})
        refused = await post(run, broken)
        assert refused.status_code == 400 and refused.json()["error_code"] == "INVALID_CONFIG"
        assert "llm.temperature" in refused.json()["detail"]
        assert run.runner("shipped").state == RUNNING
        assert (agents / "shipped" / "README.md").read_text() == "v1"

        wrapped = package({f"inner/{k}": v for k, v in agent_files("shipped", "v2").items()})
        updated = await post(run, wrapped)
        assert updated.status_code == 200
        assert (agents / "shipped" / "README.md").read_text() == "v2"
        assert any((agents / ".previous").iterdir())
        assert run.runner("shipped").state == RUNNING


async def test_deploy_that_does_not_start_rolls_back(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    async with running_server(agents) as run:
        assert (await post(run, package(agent_files("keeper")))).status_code == 200
        # Valid config, but its provider cannot be imported: the server exits at start.
        failing = AGENT_TOML.format(name="keeper").replace("tests.support.scripted:ScriptedProvider",
                                                           "no_such_module:Nothing")
        response = await post(run, package({"agent.toml": failing, "README.md": "bad"}))
        # The agent exits with the configuration-error code: a 400 with its own message, no restarts.
        assert response.status_code == 400 and response.json()["error_code"] == "INVALID_CONFIG"
        detail = response.json()["detail"]
        assert "cannot import provider 'no_such_module:Nothing'" in detail and "not restarted" in detail
        assert "previous version keeps serving" in detail  # it never stopped: the new one ran beside it
        assert (agents / "keeper" / "README.md").read_text() == "v1"
        await _until_running(run, "keeper")


async def _until_running(run, name: str) -> None:  # type: ignore[no-untyped-def]
    await wait_until_async(lambda: run.runner(name).state == RUNNING, timeout=30)


UNSAFE = {
    "zip slip": ({**agent_files("evil"), "../../escaped.txt": "x"}, None, "UNSAFE_PACKAGE"),
    "absolute path": ({**agent_files("evil"), "/tmp/atoll-absolute-escape.txt": "x"}, None, "UNSAFE_PACKAGE"),
    "symlink": (agent_files("evil"), {"link": "/etc/passwd"}, "UNSAFE_PACKAGE"),
    "bomb": ({**agent_files("evil"), "zeros.bin": b"\0" * (20 * 1024 * 1024)}, None, "PACKAGE_TOO_LARGE"),
}


@pytest.mark.parametrize("case", list(UNSAFE))
async def test_unsafe_archives_are_rejected_with_nothing_written(tmp_path: Path, case: str) -> None:
    files, links, code = UNSAFE[case]
    agents = tmp_path / "deep" / "agents"
    agents.mkdir(parents=True)
    before = snapshot(tmp_path)
    supervisor = Supervisor(FakeWorld([Script()]).deps(), ports=_ports())
    deployer = Deployer(supervisor, agents, tmp_path / "venvs",
                        ArchiveLimits(max_total_bytes=10 * 1024 * 1024))
    with pytest.raises(Exception) as err:
        await deployer.deploy(package(files, symlinks=links))
    assert getattr(err.value, "error_code", None) == code
    assert getattr(err.value, "status", None) == 400
    assert snapshot(tmp_path) == before
    assert not await anyio.Path("/tmp/atoll-absolute-escape.txt").exists()
    assert supervisor.runners == {}


def _ports() -> PortAllocator:
    return PortAllocator(30000, is_free=lambda port: True)


async def test_ratio_bomb_under_the_size_limit_is_still_refused(tmp_path: Path) -> None:
    data = package({**agent_files("evil"), "zeros.bin": b"\0" * (5 * 1024 * 1024)})
    with zipfile.ZipFile(io.BytesIO(data)) as archive, pytest.raises(BadRequest, match="zip bomb"):
        check_members(archive, ArchiveLimits())


async def test_not_a_zip_and_missing_agent_file(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    async with running_server(agents) as run:
        junk = await post(run, b"definitely not a zip")
        assert junk.status_code == 400 and junk.json()["error_code"] == "INVALID_PACKAGE"
        empty = await post(run, package({"README.md": "no agent here"}))
        assert empty.status_code == 400 and "agent.toml" in empty.json()["detail"]
        no_file = await run.client.post("/agents/deploy", data={"name": "x"})
        assert no_file.status_code == 400
    assert sorted(p.name for p in agents.iterdir() if not p.name.startswith(".")) == []


def test_requirements_get_a_cached_venv_that_still_imports_atoll(tmp_path: Path) -> None:
    folder = tmp_path / "agent"
    folder.mkdir()
    (folder / "requirements.txt").write_text("# needed by the agent\npsutil\n")
    root = tmp_path / "venvs"
    assert venv_python(root, folder) is None
    first = ensure_venv(root, folder)
    assert first is not None and ensure_venv(root, folder) == first
    python = venv_python(root, folder)
    assert python is not None and python.startswith(str(first))
    import subprocess

    done = subprocess.run([python, "-c", "import atoll.deploy, psutil, sys; print(sys.prefix)"],
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(first)
    (folder / "requirements.txt").write_text("# nothing\n")
    assert ensure_venv(root, folder) is None
