"""Waiting on a condition with a deadline (never a fixed sleep): one sync and one async form.

Both poll ``condition`` every ``interval`` seconds, return the seconds it took to hold, and fail
the test (``AssertionError`` naming ``what``) once ``timeout`` seconds have passed without it.
The condition is checked one last time at the deadline, so a slow poll never loses a late success.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio


def _timed_out(what: str, timeout: float) -> AssertionError:
    return AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str = "condition",
               interval: float = 0.05) -> float:
    """Block until ``condition()`` is truthy; the seconds it took. Fails after ``timeout`` seconds."""
    started = time.monotonic()
    deadline = started + timeout
    while not condition():
        if time.monotonic() >= deadline:
            if condition():
                break
            raise _timed_out(what, timeout)
        time.sleep(interval)
    return time.monotonic() - started


async def wait_until_async(condition: Callable[[], Any], *, timeout: float, what: str = "condition",
                           interval: float = 0.05) -> float:
    """:func:`wait_until` for async tests: polls without blocking the event loop, so the tasks
    that change the state keep running."""
    started = time.monotonic()
    deadline = started + timeout
    while not condition():
        if time.monotonic() >= deadline:
            if condition():
                break
            raise _timed_out(what, timeout)
        await anyio.sleep(interval)
    return time.monotonic() - started
