"""The model host's queue: one turn at a time, handed round-robin between callers, and a caller
that gives up (cancelled while waiting, or just as its turn came) never blocks the others."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from atoll.model_host.fair import FairQueue

pytestmark = pytest.mark.anyio


async def _take_turns(queue: FairQueue, requests: list[str]) -> list[str]:
    """Queue ``requests`` (caller names, in arrival order) behind a held turn; the order served."""
    served: list[str] = []
    release = asyncio.Event()

    async def hold() -> None:
        async with queue.turn("holder"):
            await release.wait()

    async def one(caller: str) -> None:
        async with queue.turn(caller):
            served.append(caller)
            await asyncio.sleep(0)

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    tasks = []
    for caller in requests:
        tasks.append(asyncio.create_task(one(caller)))
        await asyncio.sleep(0)  # arrive in this order
    release.set()
    await asyncio.gather(holder, *tasks)
    return served


async def test_a_busy_caller_does_not_keep_the_others_waiting() -> None:
    served = await _take_turns(FairQueue(), ["a", "a", "a", "a", "b", "c", "b"])
    assert served == ["a", "b", "c", "a", "b", "a", "a"]


async def test_the_caller_just_served_waits_behind_one_that_was_not() -> None:
    queue = FairQueue()
    served: list[str] = []

    async def one(caller: str) -> None:
        async with queue.turn(caller):
            served.append(caller)
            await asyncio.sleep(0)

    held = queue.turn("busy")  # the busy agent's first request has the model...
    await held.__aenter__()
    tasks = [asyncio.create_task(one("busy")), asyncio.create_task(one("busy"))]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(one("quiet")))  # ...and the quiet one asks after its next two
    await asyncio.sleep(0)
    await held.__aexit__(None, None, None)
    await asyncio.gather(*tasks)
    assert served == ["quiet", "busy", "busy"]


async def test_one_caller_alone_is_served_in_arrival_order() -> None:
    queue = FairQueue()
    served = await _take_turns(queue, ["a", "a", "a"])
    assert served == ["a", "a", "a"]
    assert queue.served == {"holder": 1, "a": 3}
    assert not queue.busy and queue.waiting() == {}


async def test_a_caller_cancelled_while_waiting_leaves_the_queue() -> None:
    queue = FairQueue()
    release = asyncio.Event()
    served: list[str] = []

    async def hold() -> None:
        async with queue.turn("holder"):
            await release.wait()

    async def one(caller: str) -> None:
        async with queue.turn(caller):
            served.append(caller)

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    gone, stays = asyncio.create_task(one("gone")), asyncio.create_task(one("stays"))
    await asyncio.sleep(0)
    assert queue.waiting() == {"gone": 1, "stays": 1}
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert queue.waiting() == {"stays": 1}
    release.set()
    await asyncio.gather(holder, stays)
    assert served == ["stays"] and not queue.busy


async def test_a_turn_granted_to_a_caller_that_just_gave_up_passes_on() -> None:
    queue = FairQueue()
    served: list[str] = []

    async def one(caller: str) -> None:
        async with queue.turn(caller):
            served.append(caller)

    held = queue.turn("holder")
    await held.__aenter__()
    late, next_one = asyncio.create_task(one("late")), asyncio.create_task(one("next"))
    await asyncio.sleep(0)
    await held.__aexit__(None, None, None)  # grants the turn to "late", which has not run since...
    late.cancel()  # ...and is cancelled before it does
    await asyncio.gather(late, return_exceptions=True)
    with anyio.fail_after(5):
        await next_one
    assert served == ["next"] and not queue.busy
