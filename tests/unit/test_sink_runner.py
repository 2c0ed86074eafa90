"""When an idle sink counts as moving: only holding partitions and read to their end.

``hutong_sink_last_commit_timestamp_seconds`` feeds the ``HutongSinkStalled`` rule;
a runner that finds nothing to read because it holds no partition (a rebalance,
more replicas than partitions) or cannot reach the broker must not refresh it.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from hutong.metrics import Metrics
from sinks.runner import SinkRunner, caught_up

INVALID = -1001  # librdkafka's OFFSET_INVALID: nothing read (or committed) there yet


class FakeConsumer:
    """Assignment, positions, commits and watermarks as a broker would answer them."""

    def __init__(self, held: dict[tuple[str, int], tuple[int, int, int, int]] | None = None,
                 *, unreachable: bool = False, timeout: bool = False) -> None:
        #: (topic, partition) -> (position, committed, low, high)
        self.held = held or {}
        self.unreachable = unreachable
        self.timeout = timeout
        self.asked = 0

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self.held]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.held[(tp.topic, tp.partition)][0])
                for tp in partitions]

    def committed(self, partitions: list[TopicPartition], timeout: float = 0
                  ) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.held[(tp.topic, tp.partition)][1])
                for tp in partitions]

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float = 0,
                              cached: bool = False) -> tuple[int, int] | None:
        if cached:  # what the last fetch said: here, what the broker says
            _, _, low, high = self.held[(partition.topic, partition.partition)]
            return low, high
        self.asked += 1
        if self.unreachable:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        if self.timeout:
            return None
        _, _, low, high = self.held[(partition.topic, partition.partition)]
        return low, high


@pytest.mark.parametrize(("held", "expected"), [
    ({}, False),                                                     # no partition held
    ({("hutong.std.patient", 0): (7, 5, 0, 7)}, True),              # read to the end
    ({("hutong.std.patient", 0): (7, 7, 0, 7),
      ("hutong.std.order", 2): (3, 3, 0, 9)}, False),               # one behind
    ({("hutong.std.patient", 0): (INVALID, 12, 0, 12)}, True),      # nothing new since start
    ({("hutong.std.patient", 0): (INVALID, 10, 0, 12)}, False),     # committed, not at the end
    ({("hutong.std.patient", 0): (INVALID, INVALID, 4, 4)}, True),  # never committed, empty
    ({("hutong.std.patient", 0): (INVALID, INVALID, 0, 4)}, False),
])
def test_caught_up(held: dict[tuple[str, int], tuple[int, int, int, int]],
                   expected: bool) -> None:
    assert caught_up(FakeConsumer(held)) is expected


@pytest.mark.parametrize("trouble", [{"unreachable": True}, {"timeout": True}])
def test_a_broker_that_does_not_answer_is_not_caught_up(trouble: dict[str, bool]) -> None:
    consumer = FakeConsumer({("hutong.std.patient", 0): (7, 7, 0, 7)}, **trouble)
    assert caught_up(consumer) is False


class _Stops:
    """``consume`` that finds nothing, ``rounds`` times, then stops the runner."""

    def __init__(self, consumer: FakeConsumer, stop: threading.Event, rounds: int) -> None:
        self._consumer = consumer
        self._stop = stop
        self._rounds = rounds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)

    def consume(self, size: int, timeout: float) -> list[Any]:
        self._rounds -= 1
        if self._rounds <= 0:
            self._stop.set()
        return []

    def close(self) -> None:
        pass


class _Nothing:
    def flush(self, timeout: float) -> int:
        return 0

    def close(self) -> None:
        pass


def _idle_runner(consumer: FakeConsumer, rounds: int = 3) -> tuple[SinkRunner, Metrics]:
    """A runner over fakes (no librdkafka handle), its gauge at 0 to start from."""
    metrics = Metrics()
    runner = SinkRunner.__new__(SinkRunner)
    runner._stop = threading.Event()
    runner._consumer = _Stops(consumer, runner._stop, rounds)  # type: ignore[assignment]
    runner._dlq = _Nothing()  # type: ignore[assignment]
    runner._sink = _Nothing()  # type: ignore[assignment]
    runner._batch_size, runner._batch_wait_s = 10, 0.0
    runner._committed = metrics.sink_last_commit.labels("warehouse")
    runner._check_at = 0.0
    return runner, metrics


def _last_commit(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("hutong_sink_last_commit_timestamp_seconds",
                                             {"sink": "warehouse"}) or 0.0


@pytest.mark.parametrize("consumer", [
    FakeConsumer(),                                                     # rebalancing: none held
    FakeConsumer({("hutong.std.patient", 0): (3, 3, 0, 9)}),            # behind, reading nothing
    FakeConsumer({("hutong.std.patient", 0): (9, 9, 0, 9)}, unreachable=True),
], ids=["no-partitions", "behind", "broker-unreachable"])
def test_finding_nothing_is_not_progress_unless_caught_up(consumer: FakeConsumer) -> None:
    runner, metrics = _idle_runner(consumer)
    runner._run()
    assert _last_commit(metrics) == 0.0


def test_an_idle_runner_at_the_end_of_its_partitions_is_moving() -> None:
    consumer = FakeConsumer({("hutong.std.patient", 0): (9, 9, 0, 9)})
    runner, metrics = _idle_runner(consumer, rounds=5)
    runner._run()
    assert _last_commit(metrics) > 0
    assert consumer.asked == 1  # five empty reads, one question to the broker


def test_a_new_runner_starts_its_clock_and_counts_dead_letters_from_zero() -> None:
    metrics = Metrics()

    class Sink:
        name = "warehouse"

    runner = SinkRunner({"bootstrap.servers": "127.0.0.1:9", "log_level": 0}, "g", ["t"],
                        Sink(), metrics)  # type: ignore[arg-type]
    try:
        assert _last_commit(metrics) > 0
        assert metrics.registry.get_sample_value(
            "hutong_dead_letters_total", {"stage": "warehouse-sink"}) == 0.0
    finally:
        runner._consumer.close()
        del runner
