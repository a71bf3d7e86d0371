"""The in-memory rate limiter (no Redis) without HTTP: its fixed windows are pruned as they
expire, a few at each new window, so memory stays bounded however many distinct clients come,
and a window still open is never forgotten."""

from __future__ import annotations

import asyncio

import pytest

from strongroom import ratelimit
from strongroom.errors import RateLimited
from strongroom.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_two_hundred_thousand_distinct_clients_leave_the_window_map_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(ratelimit.time, "monotonic", clock)
    limiter = RateLimiter(None)
    largest = 0
    for n in range(200_000):
        clock.now += 0.0001  # 10,000 new clients per second, each in a window of one second
        limiter.hit_local("1/second", "ip", f"client-{n}")
        largest = max(largest, len(limiter._windows))
    # about one window's worth of clients is alive at any time (10,000), never the 200,000 seen
    assert largest <= 10_002
    assert sum(len(d) for d in limiter._opened.values()) <= 10_002
    # the newest windows are still counted: the last client is over its limit of 1 per second
    with pytest.raises(RateLimited):
        limiter.hit_local("1/second", "ip", "client-199999")
    # an expired one was dropped and starts afresh
    assert ("1/second", ("ip", "client-0")) not in limiter._windows
    limiter.hit_local("1/second", "ip", "client-0")


def test_a_window_reopened_or_cleared_is_not_dropped_by_its_old_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(ratelimit.time, "monotonic", clock)
    limiter = RateLimiter(None)
    limiter.hit_local("2/second", "ip", "hot")
    clock.now += 1.5  # its first window expired; the next hit opens a new one
    limiter.hit_local("2/second", "ip", "hot")
    for n in range(10):  # new windows prune expired entries, among them the hot client's old one
        limiter.hit_local("2/second", "ip", f"other-{n}")
    limiter.hit_local("2/second", "ip", "hot")  # the second hit of the new window: still allowed
    with pytest.raises(RateLimited):
        limiter.hit_local("2/second", "ip", "hot")
    asyncio.run(limiter.clear("2/second", "ip", "hot"))
    clock.now += 1.5
    limiter.hit_local("2/second", "ip", "fresh")  # prunes the cleared entry's leftovers without error
    assert ("2/second", ("ip", "hot")) not in limiter._windows


def test_the_seconds_to_reset_never_exceed_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """RateLimit-Reset says at most the window's length: with this clock reading, (now + 60) - now is a hair
    above 60 in floating point, and its ceiling would say 61 (a CI failure of the header test)."""
    clock = Clock()
    clock.now = 1000.0
    while (clock.now + 60) - clock.now <= 60:  # a reading whose sum rounds up (found within a few steps)
        clock.now += 0.001
    monkeypatch.setattr(ratelimit.time, "monotonic", clock)
    limit, remaining, reset = RateLimiter(None).hit_local("60/minute", "key", "k")
    assert (limit, remaining, reset) == (60, 59, 60)
