"""A facility's status on the exchange monitor, from its counts (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hutong.monitor.status import (
    BUCKET_S,
    BUCKETS,
    Activity,
    Thresholds,
    bucket_start,
    error_rate,
    status,
)

NOW = datetime(2026, 12, 4, 9, 31, 17, tzinfo=UTC)


def minutes_ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


@pytest.mark.parametrize(("activity", "expected"), [
    (Activity(), "silent"),  # registered, never sent
    (Activity(messages_hour=3, messages_day=3, last_message_at=minutes_ago(1)), "ok"),
    (Activity(messages_hour=1, messages_day=1, last_message_at=minutes_ago(14.9)), "ok"),
    (Activity(messages_hour=1, messages_day=1, last_message_at=minutes_ago(15)), "quiet"),
    (Activity(messages_day=9, last_message_at=minutes_ago(60)), "silent"),
    (Activity(messages_day=9, last_message_at=minutes_ago(3 * 24 * 60)), "silent"),
    # one in five failed in the last hour: failing, even while it keeps sending
    (Activity(messages_hour=4, errors_hour=1, messages_day=4, errors_day=1,
              last_message_at=minutes_ago(1)), "failing"),
    (Activity(messages_hour=5, errors_hour=1, last_message_at=minutes_ago(1)), "ok"),
    # only dead letters, and long ago: the day's errors do not make it failing now
    (Activity(errors_day=7, last_message_at=minutes_ago(300)), "silent"),
    (Activity(errors_hour=1, errors_day=1, last_message_at=minutes_ago(2)), "failing"),
])
def test_status(activity: Activity, expected: str) -> None:
    assert status(activity, NOW) == expected


def test_thresholds_are_the_callers() -> None:
    strict = Thresholds(quiet_after_s=60, silent_after_s=120, failing_error_rate=0.5)
    assert status(Activity(messages_hour=1, last_message_at=minutes_ago(1.5)), NOW,
                  strict) == "quiet"
    assert status(Activity(messages_hour=1, last_message_at=minutes_ago(2)), NOW,
                  strict) == "silent"
    assert status(Activity(messages_hour=4, errors_hour=1, last_message_at=NOW), NOW,
                  strict) == "ok"


def test_error_rate_is_dead_letters_over_everything_received() -> None:
    assert error_rate(0, 0) is None
    assert error_rate(3, 1) == 0.25
    assert error_rate(0, 2) == 1.0
    assert error_rate(2, 1) == 0.3333


def test_buckets_end_with_the_one_under_way_and_start_on_the_clock() -> None:
    start = bucket_start(NOW)
    assert start.tzinfo is UTC
    assert start.timestamp() % BUCKET_S == 0
    last = start + timedelta(seconds=(BUCKETS - 1) * BUCKET_S)
    assert last <= NOW < last + timedelta(seconds=BUCKET_S)
    assert bucket_start(last) == start  # the first instant of a bucket belongs to it
