"""Which agents share a model host (discovery), and what the deployment server tells them
(``ModelHosts.env_for``): the host's loopback URL and a private token file the host accepts. The
host runs under a runner of its own, driven here by scripted processes."""

from __future__ import annotations

import asyncio
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from atoll.deploy.discover import LocalModel, load_spec
from atoll.deploy.handover import Listeners
from atoll.deploy.model_hosts import HOST_ENV, TOKEN_FILE_ENV, ModelHosts, host_name
from atoll.deploy.ports import PortAllocator
from atoll.deploy.process import Launch
from atoll.deploy.runner import RUNNING
from atoll.deploy.supervisor import SupervisorSettings
from atoll.httpkit import signed_holder
from atoll.providers.gguf import DEFAULT_GGUF_NAME
from tests.deploy.fakes import FakeWorld, Script, spec

pytestmark = pytest.mark.anyio


def agent_file(folder: Path, llm: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "agent.toml"
    path.write_text(f'[agent]\nname = "{folder.name}"\n[llm]\n{llm}\n')
    return path


def test_an_agent_on_the_embedded_model_names_its_model(tmp_path: Path) -> None:
    local = load_spec(agent_file(tmp_path / "a", 'provider = "local"')).local_model
    assert local is not None and local.path.endswith(DEFAULT_GGUF_NAME)
    assert (local.context_length, local.threads) == (2048, 2)
    same = load_spec(agent_file(tmp_path / "b", 'provider = "local"\nmax_tokens = 9')).local_model
    assert same == local and host_name(same) == host_name(local)
    longer = load_spec(agent_file(tmp_path / "c", 'provider = "local"\ncontext_length = 4096')).local_model
    assert longer is not None and host_name(longer) != host_name(local)


def test_a_model_path_is_read_from_the_agent_folder(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "tiny.Q8_0.gguf").write_bytes(b"GGUF")
    local = load_spec(agent_file(tmp_path / "d", 'model_path = "tiny.Q8_0.gguf"\n[llm.extra]\nn_threads = 1'))
    assert local.local_model == LocalModel(str((tmp_path / "d" / "tiny.Q8_0.gguf").resolve()), 2048, 1)


@pytest.mark.parametrize("llm", ['provider = "tests.support.scripted:ScriptedProvider"',
                                 'provider = "ollama"\nmodel = "llama3.2"',
                                 'provider = "local"\nmodel_path = "missing.gguf"'],
                         ids=["scripted", "ollama", "missing-file"])
def test_other_agents_get_no_host(tmp_path: Path, llm: str) -> None:
    assert load_spec(agent_file(tmp_path / "e", llm)).local_model is None


def hosts(tmp_path: Path, world: FakeWorld, *, enabled: bool = True) -> ModelHosts:
    return ModelHosts(world.deps(), PortAllocator(20000, is_free=lambda port: True), Listeners(), SupervisorSettings(),
                      tmp_path / "run", enabled=enabled)


def token_holder(tmp_path: Path, token_file: Path) -> str | None:
    """Whom the token in ``token_file`` names, checked with the hosts' secret; the file is private."""
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    secret = (tmp_path / "run" / "model-hosts" / "secret").read_bytes()
    return signed_holder(secret, f"Bearer {token_file.read_text()}")


async def test_agents_on_one_model_share_one_host_and_get_their_own_tokens(tmp_path: Path) -> None:
    world = FakeWorld([Script()])
    fleet = hosts(tmp_path, world)
    model = LocalModel("/models/smol.gguf")
    first = fleet.env_for(replace(spec("alpha"), local_model=model))
    second = fleet.env_for(replace(spec("beta"), local_model=model))
    (runner,) = fleet.runners.values()
    await asyncio.wait_for(runner.wait_for({RUNNING}), 5)
    assert len(world.procs) == 1
    assert first[HOST_ENV] == second[HOST_ENV] == f"http://127.0.0.1:{runner.port}"
    for agent, env in (("alpha", first), ("beta", second)):
        assert token_holder(tmp_path, Path(env[TOKEN_FILE_ENV])) == agent
    specs = [replace(spec(name), local_model=model) for name in ("beta", "alpha")] + [spec("remote")]
    assert fleet.statuses(specs)[0]["agents"] == ["alpha", "beta"]
    assert [r.name for r in fleet.records()] == [host_name(model)]
    await fleet.stop_all()


async def test_agents_elsewhere_and_a_disabled_sharing_get_nothing(tmp_path: Path) -> None:
    world = FakeWorld([Script()])
    assert hosts(tmp_path, world).env_for(spec("remote")) == {}
    assert hosts(tmp_path, world, enabled=False).env_for(
        replace(spec("alpha"), local_model=LocalModel("/models/smol.gguf"))) == {}
    assert world.procs == []


def test_the_host_command_names_the_model_and_the_secret(tmp_path: Path) -> None:
    fleet = hosts(tmp_path, FakeWorld([Script()]))
    model = LocalModel("/models/smol.gguf", 4096, 3)
    runner = fleet.runner_for(model)
    launch = Launch(port=runner.port, fd=5, public_fd=6, lease=tmp_path / "lease", orphan_grace=60,
                    exit_file=tmp_path / "exit")
    command = fleet.command(runner.spec, launch)
    assert command[1:4] == ["-m", "atoll", "model-host"]
    for flag, value in (("--model", "/models/smol.gguf"), ("--context-length", "4096"), ("--threads", "3"),
                        ("--public-fd", "6"), ("--secret-file", str(tmp_path / "run" / "model-hosts" / "secret"))):
        assert command[command.index(flag) + 1] == value
    assert (tmp_path / "run" / "model-hosts" / "secret").stat().st_mode & 0o077 == 0
