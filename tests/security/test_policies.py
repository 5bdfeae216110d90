"""The pieces of the security middleware on their own: key checks, the rate limiter on a fake
clock, the concurrency limiter."""

from __future__ import annotations

import pytest

from atoll.errors import RateLimited, Unauthorized
from atoll.httpkit.bearer import fingerprint as key_fingerprint
from atoll.server.security import ApiKeys, ConcurrencyLimiter, RequestRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("header", "message"), [
    (None, "missing API key"), ("", "missing API key"), ("Bearer nope", "invalid API key"),
    ("Token k1", "invalid API key"), ("k1", "invalid API key"), ("Bearer ", "invalid API key"),
    ("Bearer k1x", "invalid API key"), ("Bearer k", "invalid API key"),
])
def test_bad_credentials(header: str | None, message: str) -> None:
    with pytest.raises(Unauthorized, match=message) as caught:
        ApiKeys(["k1", "k2"]).owner(header)
    assert caught.value.status == 401 and "k1" not in caught.value.message


def test_the_owner_is_a_stable_fingerprint_not_the_key() -> None:
    keys = ApiKeys(["k1", "k2"])
    assert keys.owner("Bearer k2") == keys.owner("bearer  k2 ") == key_fingerprint("k2")
    assert keys.owner("Bearer k1") != keys.owner("Bearer k2")
    assert "k2" not in key_fingerprint("k2") and len(key_fingerprint("k2")) == 16
    assert not ApiKeys([]).enabled and not ApiKeys([""]).enabled


def test_rate_limit_allows_a_burst_then_one_request_per_interval() -> None:
    clock = Clock()
    limiter = RequestRateLimiter(3, 60.0, clock)
    for _ in range(3):
        limiter.acquire("a")
    with pytest.raises(RateLimited) as caught:
        limiter.acquire("a")
    assert caught.value.retry_after == pytest.approx(20.0)
    limiter.acquire("b")  # clients are independent
    clock.now += 19.9
    with pytest.raises(RateLimited):
        limiter.acquire("a")
    clock.now += 0.1
    limiter.acquire("a")
    clock.now += 60
    for _ in range(3):  # a full window later the whole burst is back
        limiter.acquire("a")


def test_rate_limiter_forgets_idle_clients() -> None:
    clock = Clock()
    limiter = RequestRateLimiter(1, 1.0, clock)
    for n in range(10_001):
        limiter.acquire(f"client-{n}")
    clock.now += 5
    limiter.acquire("late")
    assert len(limiter._arrival) == 1


def test_concurrency_slots_are_per_client_and_given_back() -> None:
    limiter = ConcurrencyLimiter(2)
    with limiter.slot("a"), limiter.slot("a"):
        with pytest.raises(RateLimited, match="too many concurrent generations"), limiter.slot("a"):
            pass
        with limiter.slot("b"):
            pass
    with pytest.raises(ValueError), limiter.slot("a"):
        raise ValueError("a failed generation still gives its slot back")
    with limiter.slot("a"), limiter.slot("a"):
        pass
