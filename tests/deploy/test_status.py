"""The rows of `atoll status`: what a person reads at a glance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from atoll.deploy.status import _age, status_rows


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
