"""The token buckets that bound what a hostile peer can make the hub record."""

from __future__ import annotations

import pytest

from hutong.ratelimit import KeyedLimiter


def test_a_key_gets_its_burst_then_its_rate() -> None:
    now = [0.0]
    limiter = KeyedLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(5)] == [True, True, True, False, False]
    now[0] = 0.5  # half a second at 2/s: one token back
    assert [limiter.allow("a") for _ in range(2)] == [True, False]
    now[0] = 100.0  # never more than the burst
    assert sum(limiter.allow("a") for _ in range(10)) == 3


def test_keys_are_independent_and_denials_are_counted_once() -> None:
    limiter = KeyedLimiter(rate=1.0, burst=1, clock=lambda: 0.0)
    assert limiter.allow("a") and not limiter.allow("a") and not limiter.allow("a")
    assert limiter.allow("b")
    assert limiter.take_denied("a") == 2 and limiter.take_denied("a") == 0
    assert limiter.take_denied("never seen") == 0


def test_memory_is_bounded_by_forgetting_the_least_recent_key() -> None:
    limiter = KeyedLimiter(rate=1.0, burst=1, max_keys=2, clock=lambda: 0.0)
    limiter.allow("a")
    limiter.allow("b")
    limiter.allow("a")  # a is now the most recent
    limiter.allow("c")  # b is forgotten
    assert len(limiter) == 2
    assert limiter.allow("b")  # a forgotten key starts with a full bucket
    assert not limiter.allow("c")


@pytest.mark.parametrize("args", [(0.0, 1), (1.0, 0)])
def test_nonsense_limits_are_refused(args: tuple[float, int]) -> None:
    with pytest.raises(ValueError):
        KeyedLimiter(*args)
