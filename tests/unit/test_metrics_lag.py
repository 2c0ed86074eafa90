"""Consumer lag arithmetic: committed offsets against the partitions' watermarks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hutong.metrics.lag import group_lag, matching_topics, partition_lag


@pytest.mark.parametrize(("committed", "low", "high", "lag"), [
    (10, 0, 10, 0),      # caught up
    (4, 0, 10, 6),
    (None, 0, 10, 10),   # nothing committed: everything retained is unread
    (-1001, 3, 10, 7),   # librdkafka's "invalid offset" sentinel, retention moved low to 3
    (2, 5, 10, 5),       # committed below what is retained: only what is left counts
    (12, 0, 10, 0),      # a commit past the end (a topic recreated) is not negative lag
    (None, 0, 0, 0),     # an empty partition
])
def test_partition_lag(committed: int | None, low: int, high: int, lag: int) -> None:
    assert partition_lag(committed, low, high) == lag


@given(st.integers(0, 10**9), st.integers(0, 10**6),
       st.one_of(st.none(), st.integers(-2000, 10**9)))
def test_lag_is_never_negative_nor_more_than_retained(low: int, extra: int,
                                                      committed: int | None) -> None:
    high = low + extra
    assert 0 <= partition_lag(committed, low, high) <= extra


def test_subscriptions_match_names_and_regexes() -> None:
    topics = ["hutong.std.patient", "hutong.std.lab-result", "hutong.dlq", "hutong.raw.hl7v2",
              "hutong-streams-empi-links-changelog", "xhutong.std.patient"]
    assert matching_topics(["^hutong\\.std\\..*", "hutong.dlq", "hutong.missing"], topics) == [
        "hutong.dlq", "hutong.std.lab-result", "hutong.std.patient"]


def test_group_lag_sums_partitions_per_topic() -> None:
    watermarks = {("hutong.dlq", 0): (0, 5), ("hutong.dlq", 1): (0, 7),
                  ("hutong.std.patient", 0): (2, 2), ("hutong.raw.hl7v2", 0): (0, 100)}
    committed = {("hutong.dlq", 0): 5, ("hutong.dlq", 1): 3}
    assert group_lag(committed, watermarks, ["hutong.dlq", "hutong.std.patient"]) == {
        "hutong.dlq": 4, "hutong.std.patient": 0}
