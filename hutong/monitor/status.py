"""What the exchange monitor says of a facility, from its counts (pure, no I/O).

A facility's status, worst first:

===========  ===================================================================
``failing``  in the last hour at least ``failing_error_rate`` of what it sent
             became dead letters
``silent``   nothing for ``silent_after_s`` (or never anything)
``quiet``    nothing for ``quiet_after_s``
``ok``       sending, and what it sends becomes events
===========  ===================================================================

The error rate is dead letters over everything received (messages that became
events plus dead letters); a refused sender (AR before anything was stored) is
in the audit log and the metrics, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

__all__ = [
    "BUCKETS",
    "BUCKET_S",
    "Activity",
    "Status",
    "Thresholds",
    "bucket_start",
    "error_rate",
    "status",
]

Status = Literal["ok", "quiet", "silent", "failing"]

#: The time series: messages per 5 minutes over the last 24 hours.
BUCKET_S = 300
BUCKETS = 288


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a facility counts as quiet, silent or failing."""

    quiet_after_s: float = 15 * 60
    silent_after_s: float = 60 * 60
    failing_error_rate: float = 0.2


@dataclass(frozen=True, slots=True)
class Activity:
    """What a facility sent: messages that became events and dead letters, by window."""

    messages_hour: int = 0
    messages_day: int = 0
    errors_hour: int = 0
    errors_day: int = 0
    last_message_at: datetime | None = None


def error_rate(messages: int, errors: int) -> float | None:
    """Dead letters over everything received; None when nothing was."""
    total = messages + errors
    return round(errors / total, 4) if total else None


def status(activity: Activity, now: datetime, thresholds: Thresholds = Thresholds()) -> Status:
    """The facility's status at ``now`` (see the module docstring)."""
    rate = error_rate(activity.messages_hour, activity.errors_hour)
    if rate is not None and activity.errors_hour and rate >= thresholds.failing_error_rate:
        return "failing"
    last = activity.last_message_at
    if last is None or now - last >= timedelta(seconds=thresholds.silent_after_s):
        return "silent"
    if now - last >= timedelta(seconds=thresholds.quiet_after_s):
        return "quiet"
    return "ok"


def bucket_start(now: datetime) -> datetime:
    """The start of the first of the `BUCKETS` buckets ending with the one holding ``now``,
    aligned to the clock (buckets start at :00, :05, ...)."""
    epoch = now.timestamp()
    current = epoch - epoch % BUCKET_S
    return datetime.fromtimestamp(current - (BUCKETS - 1) * BUCKET_S, tz=now.tzinfo)
