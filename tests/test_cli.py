"""The command grammar as users meet it: ``atoll --help`` is the map, every mode has its own help,
``--version`` works, and the seed's spellings (``--server``, bare ``atoll``) still select their modes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import atoll
from tests.support.servers import server_env


def atoll_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "atoll", *args], capture_output=True, text=True, timeout=60,
                          env=server_env(COLUMNS="80"), check=False)


#: Every mode as ``atoll --help`` must list it, in the map's order: a newcomer finds each one there.
EVERY_MODE = ("atoll --server [options]", "atoll --server --mcp-stdio", "atoll [options]",
              "atoll --backend ray [options]", "atoll status [options]", "atoll export k8s [options]",
              "atoll restart-server [options]", "atoll model-host [options]")


def test_top_level_help_is_the_map_of_every_mode() -> None:
    result = atoll_cli("--help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("modes")) + 1
    rows = lines[start:lines.index("", start)]
    assert [row.strip().split("  ")[0] for row in rows] == list(EVERY_MODE), result.stdout
    assert all(row.strip().split("  ")[-1].strip() for row in rows), rows  # each says what it does
    assert "deployment server starts it" in rows[-1]  # model-host is not for typing by hand
    assert "--version" in result.stdout
    assert max(len(line) for line in lines) <= 100


def test_version_prints_atolls_version() -> None:
    for args in (["--version"], ["--server", "--version"]):
        result = atoll_cli(*args)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"atoll {atoll.__version__}"


@pytest.mark.parametrize(("args", "usage", "options"), [
    (["--server", "--help"], "atoll --server [options]", ["--port", "--agent", "--host", "--mcp-stdio"]),
    (["server", "--help"], "atoll --server [options]", ["--port", "--agent", "--host"]),
    (["deployment", "--help"], "atoll [options]", ["--agents-dir", "--api-port", "--base-port", "--backend",
                                                   "--ray-address", "--http-port"]),
    (["--api-port", "9", "--help"], "atoll [options]", ["--agents-dir", "--api-port", "--base-port"]),
    (["status", "--help"], "atoll status ", ["--json", "--url"]),
    (["export", "--help"], "atoll export ", ["k8s"]),
    (["export", "k8s", "--help"], "atoll export k8s ", ["--agents-dir", "--output", "--image", "--ray"]),
    (["restart-server", "--help"], "atoll restart-server [options]", ["--timeout"]),
    (["model-host", "--help"], "atoll model-host ", ["--model", "--secret-file", "--port"]),
])
def test_each_mode_has_its_own_help(args: list[str], usage: str, options: list[str]) -> None:
    result = atoll_cli(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {usage}"), result.stdout  # as the user types it, nothing else
    assert "<mode>" not in result.stdout
    assert all(option in result.stdout for option in options), result.stdout
    assert "modes" not in result.stdout  # the mode's own help, not the map


def test_unknown_mode_or_option_is_usage_error_2() -> None:
    unknown_mode = atoll_cli("bogus")
    assert unknown_mode.returncode == 2
    assert "'bogus'" in unknown_mode.stderr and "status" in unknown_mode.stderr
    unknown_option = atoll_cli("--server", "--prot", "8100")
    assert unknown_option.returncode == 2 and "--prot" in unknown_option.stderr
    assert "Traceback" not in unknown_mode.stderr + unknown_option.stderr


def test_a_ray_option_without_the_ray_backend_is_usage_error_2(tmp_path: Path) -> None:
    result = atoll_cli("--ray-address", "127.0.0.1:6379", "--agents-dir", str(tmp_path / "agents"))
    assert result.returncode == 2
    assert "--ray-address is an option of --backend ray" in result.stderr
    assert not (tmp_path / "agents").exists()  # refused before anything is created
