"""The contract every sink implements.

A sink receives decoded batches and must make them durable in ``write``; the
runner commits Kafka offsets only after ``write`` returned, so a crash between
the two replays the batch, and the sink's idempotence (on ``event_id``)
collapses the replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Decoded", "Rejected", "Sink"]


@dataclass(frozen=True, slots=True)
class Decoded:
    """One Kafka record, decoded."""

    topic: str
    partition: int
    offset: int
    schema_name: str
    record: dict[str, Any]
    key: bytes | None = None
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record the sink can never write (no table for it, a value the table refuses)."""

    item: Decoded
    reason: str


class Sink(Protocol):
    """Makes batches durable somewhere."""

    name: str

    def write(self, batch: Sequence[Decoded]) -> list[Rejected]:
        """Persist ``batch``, returning the records it can never write.

        Raise (a ``HutongError``) when the destination is unavailable: the runner
        retries the whole batch. Must be idempotent on the events' ids.
        """

    def close(self) -> None:
        """Release what the sink holds."""
