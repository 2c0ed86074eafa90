"""Consumer lag of hutong's own consumer groups, per group and topic.

The arithmetic is pure (:func:`partition_lag`, :func:`group_lag`); :class:`LagReader`
asks Kafka, with one ``ListConsumerGroupOffsets`` per group and one ``ListOffsets``
for every partition of the topics the groups read. A partition a group has not
committed yet counts from its earliest retained offset, since every hutong consumer
starts from the earliest (``auto.offset.reset=earliest``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

__all__ = ["LagReader", "group_lag", "matching_topics", "partition_lag"]

Partition = tuple[str, int]


def partition_lag(committed: int | None, low: int, high: int) -> int:
    """Records of one partition not yet committed by a group; never negative.

    ``committed`` is the next offset the group will read, or None (or a negative
    librdkafka sentinel) when it has committed nothing there.
    """
    start = committed if committed is not None and committed >= 0 else low
    return max(0, high - max(start, low))


def matching_topics(patterns: Iterable[str], topics: Iterable[str]) -> list[str]:
    """The topics a subscription names: exact names, or ``^regex`` as librdkafka reads it."""
    exact = {p for p in patterns if not p.startswith("^")}
    regexes = [re.compile(p) for p in patterns if p.startswith("^")]
    return sorted(t for t in topics if t in exact or any(r.match(t) for r in regexes))


def group_lag(committed: Mapping[Partition, int], watermarks: Mapping[Partition, tuple[int, int]],
              topics: Iterable[str]) -> dict[str, int]:
    """Lag per topic of one group: the sum over the topic's partitions."""
    wanted = set(topics)
    lag = dict.fromkeys(wanted, 0)
    for (topic, partition), (low, high) in watermarks.items():
        if topic in wanted:
            lag[topic] += partition_lag(committed.get((topic, partition)), low, high)
    return lag


class LagReader:
    """Reads committed offsets and watermarks through one AdminClient."""

    def __init__(self, client_config: Mapping[str, Any], groups: Mapping[str, Sequence[str]],
                 timeout: float = 5.0) -> None:
        self._admin = AdminClient(dict(client_config))
        self._groups = {group: list(patterns) for group, patterns in groups.items()}
        self._timeout = timeout

    def read(self) -> dict[tuple[str, str], int]:
        """``{(group, topic): lag}`` for every group and every existing topic it reads."""
        metadata = self._admin.list_topics(timeout=self._timeout)
        subscribed = {group: matching_topics(patterns, metadata.topics)
                      for group, patterns in self._groups.items()}
        partitions = [(topic, p) for topic in sorted(set().union(*subscribed.values()))
                      for p in metadata.topics[topic].partitions]
        watermarks = self._watermarks(partitions)
        lag: dict[tuple[str, str], int] = {}
        for group, topics in subscribed.items():
            for topic, value in group_lag(self._committed(group), watermarks, topics).items():
                lag[(group, topic)] = value
        return lag

    def _watermarks(self, partitions: Sequence[Partition]) -> dict[Partition, tuple[int, int]]:
        if not partitions:
            return {}
        low = self._offsets(partitions, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        high = self._offsets(partitions, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        return {p: (low[p], high[p]) for p in partitions if p in low and p in high}

    def _offsets(self, partitions: Sequence[Partition], spec: Any) -> dict[Partition, int]:
        asked = {TopicPartition(topic, p): spec for topic, p in partitions}
        futures = self._admin.list_offsets(asked, request_timeout=self._timeout)
        return {(tp.topic, tp.partition): future.result().offset
                for tp, future in futures.items()}

    def _committed(self, group: str) -> dict[Partition, int]:
        futures = self._admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=self._timeout)
        result = futures[group].result()
        return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions or ()}

    def close(self) -> None:
        """Drop the librdkafka handle (before the broker goes away)."""
        del self._admin
