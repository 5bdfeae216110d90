"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import run_redis
from tests.support.servers import AgentServer, run_agent_server, scripted_agent_toml, write_agent


@pytest.fixture(autouse=True)
def _isolated_home(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reads the developer's ~/.ollama_server or ~/.atoll, or their LLM environment."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in ("OLLAMA_HOST", "ATOLL_LLM_PROVIDER", "ATOLL_LLM_MODEL", "ATOLL_LLM_BASE_URL",
                 "ATOLL_API_KEYS", "ATOLL_OLLAMA_CONFIG", "ATOLL_HOME", "ATOLL_SESSION_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    """A real agent server process with the scripted LLM, shared by a test module."""
    folder: Path = tmp_path_factory.mktemp("echo-agent")
    agent = write_agent(folder, scripted_agent_toml("echo"))
    with run_agent_server(agent, cwd=folder) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real redis-server for the whole test session (each test uses its own key namespace)."""
    with run_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Run every ``async def`` test on anyio's asyncio backend without a marker on each.

    The mark goes on the function before pytest builds items, so parametrisation still works.
    """
    import inspect

    if name.startswith("test") and inspect.iscoroutinefunction(obj):
        pytest.mark.anyio(obj)


#: The files whose tests run the real embedded model (marker ``model``): one worker runs them in turn.
#: Two llama.cpp generations at once on two cores spin against each other's threads and each runs many
#: times slower (a README example took over 180 s beside other model tests under ``pytest -n 3``). For
#: the same reason the model tests but the README's (which tests the defaults) run llama.cpp on one
#: thread: beside the other workers two threads made a 64-token answer take 150 s (2.5 s alone).
MODEL_FILES = ("tests/test_readme.py", "tests/providers/test_llamacpp.py", "tests/providers/test_openai_compat.py",
               "tests/clients/test_real_model.py", "tests/deploy/test_model_host.py",
               "tests/server/test_honest_health.py")


def _group(nodeid: str) -> str:
    """The tests that run on one pytest-xdist worker, in order: a test file (its module fixtures start
    once), every test under tests/ray (one Ray cluster for the session), every test on the real model."""
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/ray/"):
        return "ray"
    return "model" if path in MODEL_FILES else path


# Groups that take minutes: scheduled first under ``pytest -n`` so they do not finish last.
LONG_GROUPS = ("ray", "model", "tests/clients/test_open_webui_browser.py", "tests/clients/test_open_webui.py",
               "tests/deploy/test_adoption.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest groups first: under ``pytest -n`` workers take groups in collection order. A test
    marked ``model`` outside ``MODEL_FILES`` is a usage error (it would run beside the other model tests)."""
    stray = sorted({item.nodeid.split("::", 1)[0] for item in items
                    if item.get_closest_marker("model") and _group(item.nodeid) != "model"})
    if stray:
        raise pytest.UsageError(f"tests marked 'model' outside MODEL_FILES (tests/conftest.py): {', '.join(stray)}")

    def rank(item: pytest.Item) -> int:
        group = _group(item.nodeid)
        return LONG_GROUPS.index(group) if group in LONG_GROUPS else len(LONG_GROUPS)

    items.sort(key=rank)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``make test`` runs ``pytest -n``: whole groups (``_group``) to a worker. (pytest-xdist's own
    ``--dist loadgroup`` renames node ids, which pytest 9.2 no longer lets it do.)"""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped here
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid)

    return GroupScheduling(config, log)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (``CI`` set) a skipped test fails the run: a skip there means a missing install that the
    set-up scripts should have done, and it would otherwise hide a whole group of tests."""
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and exitstatus == pytest.ExitCode.OK:
        print(f"\nCI: {len(skipped)} test(s) skipped (listed below); every group must run in CI: "
              "install what is missing in the set-up scripts")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
