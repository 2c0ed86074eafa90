"""Things seen on events, counted over a batch, for a topic of counts (pure).

The stream worker adds the hits of every event it translates and links and, after
each batch, drains one record per thing seen: how many times the batch met it, and
when it was first and last seen (the events' receipt times). Two tallies run:
unmapped codes (:class:`~streams.terminology.translate.UnmappedHit`, one per facility,
code system and local code, for ``hutong.terminology.unmapped``) and clinicians the
practitioner registry does not know (:class:`~streams.practitioners.UnknownPractitioner`,
for ``hutong.registry.unknown-practitioners``). The warehouse sums the records per
thing; a data steward sees each once, with its count.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Counted", "Tally"]


class Counted(Hashable, Protocol):
    """A thing seen on an event: its topic key, and its record once counted."""

    @property
    def topic_key(self) -> bytes: ...

    def to_record(self, *, count: int, first_seen: datetime,
                  last_seen: datetime) -> dict[str, Any]: ...


Hit = TypeVar("Hit", bound=Counted)


@dataclass(slots=True)
class _Count:
    count: int
    first_seen: datetime
    last_seen: datetime


class Tally(Generic[Hit]):
    """Counts hits until drained."""

    def __init__(self) -> None:
        self._counts: dict[Hit, _Count] = {}

    def add(self, hits: Iterable[Hit], seen_at: datetime) -> None:
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
        """(topic key, record) per thing seen, in key order; empties the tally."""
        drained = [(hit.topic_key, hit.to_record(count=c.count, first_seen=c.first_seen,
                                                 last_seen=c.last_seen))
                   for hit, c in sorted(self._counts.items(), key=lambda kv: kv[0].topic_key)]
        self._counts.clear()
        return drained
