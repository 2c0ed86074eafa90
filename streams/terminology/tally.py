"""Unmapped codes counted over a batch, for ``hutong.terminology.unmapped`` (pure).

The stream worker adds the hits of every event it translates and, after each
batch, drains one record per (facility, code system, local code): how many
times the batch met it, and when it was first and last seen (the events'
receipt times). The warehouse sums the records per code
(``unmapped_code_summary``); a data steward sees each code once, with its
count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.terminology.translate import UnmappedHit

__all__ = ["UnmappedTally"]


@dataclass(slots=True)
class _Count:
    count: int
    first_seen: datetime
    last_seen: datetime


class UnmappedTally:
    """Counts unmapped hits until drained."""

    def __init__(self) -> None:
        self._counts: dict[UnmappedHit, _Count] = {}

    def add(self, hits: Iterable[UnmappedHit], seen_at: datetime) -> None:
        for hit in hits:
            held = self._counts.get(hit)
            if held is None:
                self._counts[hit] = _Count(1, seen_at, seen_at)
            else:
                held.count += 1
                held.first_seen = min(held.first_seen, seen_at)
                held.last_seen = max(held.last_seen, seen_at)

    def __len__(self) -> int:
        return len(self._counts)

    def drain(self) -> list[tuple[bytes, dict[str, Any]]]:
        """(topic key, schemas/unmapped-code.avsc record) per code seen; empties the tally."""
        drained = [(hit.topic_key, hit.to_record(count=c.count, first_seen=c.first_seen,
                                                 last_seen=c.last_seen))
                   for hit, c in sorted(self._counts.items(), key=lambda kv: kv[0].topic_key)]
        self._counts.clear()
        return drained
