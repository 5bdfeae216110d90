from __future__ import annotations

import re

import pytest

from atoll.mcp_client.naming import MAX_NAME_LENGTH, assign_names, sanitize

VALID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("echo", "echo"),
        ("get-sum", "get-sum"),
        ("git.status", "git_status"),
        ("weird name/with:chars", "weird_name_with_chars"),
        ("...", "tool"),
    ],
)
def test_sanitize(raw: str, expected: str) -> None:
    assert sanitize(raw) == expected


def test_long_names_are_cut_and_stay_distinct() -> None:
    a, b = sanitize("x" * 100 + "a"), sanitize("x" * 100 + "b")
    assert len(a) == len(b) == MAX_NAME_LENGTH
    assert a != b
    assert VALID.fullmatch(a)


def test_unique_names_keep_bare_name() -> None:
    assert assign_names([("everything", "echo"), ("time", "get_current_time")]) == ["echo", "get_current_time"]


def test_clashing_names_get_server_prefix() -> None:
    names = assign_names([("one", "echo"), ("two", "echo"), ("two", "get-sum")])
    assert names == ["one__echo", "two__echo", "get-sum"]


def test_names_that_clash_after_sanitising_are_still_unique() -> None:
    entries = [("s", "a.b"), ("s", "a_b"), ("s", "a b")]
    names = assign_names(entries)
    assert len(set(names)) == 3
    assert all(VALID.fullmatch(n) for n in names)
    assert assign_names(entries) == names  # deterministic


def test_long_server_and_tool_names_fit() -> None:
    names = assign_names([("s" * 40, "t" * 40), ("r" * 40, "t" * 40)])
    assert len(set(names)) == 2
    assert all(VALID.fullmatch(n) for n in names)
