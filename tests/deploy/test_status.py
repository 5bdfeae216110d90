"""The rows of `atoll status`: what a person reads at a glance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from atoll.deploy.status import _age, degraded_lines, startup_block, status_rows


def test_rows_show_uptime_health_check_age_adoption_and_version() -> None:
    checked = (datetime.now(UTC) - timedelta(seconds=3)).isoformat()
    rows = status_rows([{"name": "CustomAgent", "port": 8100, "pid": 42, "status": "running", "restarts": 1,
                         "uptime_s": 3725.2, "last_health_check": checked, "last_exit_code": None,
                         "adopted": True, "atoll_version": "0.1.0"}])
    assert rows == [["CustomAgent", "8100", "42", "running (adopted)", "1", "1h02m05s", rows[0][6], "-", "0.1.0"]]
    assert rows[0][6] in ("3s ago", "4s ago")


def test_age_of_nothing_and_of_a_bad_stamp() -> None:
    now = datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)
    assert _age("2026-01-01T12:00:00+00:00", now) == "10s ago"
    assert _age(None) == "-" and _age("yesterday") == "yesterday"


def test_a_degraded_agent_shows_degraded_with_its_reasons() -> None:
    agents = [{"name": "timely", "port": 8100, "status": "running", "adopted": True,
               "degraded_reasons": ["MCP server 'time' is failed: command not found: mcp-server-time"]},
              {"name": "fine", "port": 8101, "status": "running", "degraded_reasons": []},
              {"name": "old", "port": 8102, "status": "running"}]  # a Ray or older server's status: no field
    assert [row[3] for row in status_rows(agents)] == ["degraded (adopted)", "running", "running"]
    assert degraded_lines(agents) == ["! timely: MCP server 'time' is failed: command not found: mcp-server-time"]
    block = startup_block("127.0.0.1", agents, [], [], "http://127.0.0.1:8080", "atoll_agents")
    assert "    ● timely (Port: 8100) - degraded (MCP server 'time' is failed: command not found: " \
           "mcp-server-time)" in block
    assert "    ● fine (Port: 8101) - running" in block
