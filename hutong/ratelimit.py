"""Token buckets per key, for things a hostile peer could make us do without bound.

A :class:`KeyedLimiter` allows ``burst`` events at once per key and refills at
``rate`` per second. It remembers at most ``max_keys`` keys, forgetting the
least recently seen first, so a flood from many addresses costs bounded memory
(a forgotten key starts again with a full bucket, which is the generous side).
It also counts what it turned down per key, so the next allowed record can say
how many were left out.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["KeyedLimiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    denied: int = 0


class KeyedLimiter:
    """``allow(key)`` at most ``burst`` at once and ``rate`` per second after that, per key."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate must be positive, burst and max_keys at least 1")
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()

    def allow(self, key: Hashable) -> bool:
        """Take a token for ``key`` if there is one."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        bucket.denied += 1
        return False

    def take_denied(self, key: Hashable) -> int:
        """How many times ``key`` was turned down since this was last asked; resets it."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0
        denied, bucket.denied = bucket.denied, 0
        return denied

    def __len__(self) -> int:
        return len(self._buckets)
