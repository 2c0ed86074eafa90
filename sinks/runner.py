"""Kafka to a sink: consume a batch, decode, write, then commit.

Runs in its own thread (librdkafka calls block). A record that does not decode
becomes a dead letter on ``hutong.dlq`` (stage ``sink``); a failed ``write`` is
retried with back-off and nothing is committed until it succeeds, so the
warehouse being down stalls the sink instead of losing data.

``hutong_sink_last_commit_timestamp_seconds`` says the sink is moving: set at
start, at each commit, and when a read finds nothing and the runner holds
partitions and has read each to its end (:func:`caught_up`, asked of the broker at
most every `CATCH_UP_CHECK_S`). Holding no partition (a rebalance, more replicas
than partitions) or not reaching the broker is not progress, so a stuck replica
shows as stalled (the ``HutongSinkStalled`` rule, per pod).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from hutong.errors import HutongError, SchemaError, WireFormatError
from hutong.metrics import Metrics
from hutong.metrics.labels import oldest_age, sink_stage
from hutong.metrics.lag import partition_lag
from producers.kafka import BatchProducer, OutRecord, consumer_config
from producers.records import DLQ_TOPIC, consumed_dead_letter, dead_letter_headers
from schemas import wire
from schemas.registry import EMBEDDED, Resolver
from sinks.base import Decoded, Rejected, Sink

__all__ = ["CATCH_UP_CHECK_S", "SinkRunner", "caught_up", "consumer_config"]

log = logging.getLogger(__name__)
_MAX_BACKOFF_S = 10.0
#: How often an idle runner asks the broker whether it has read everything it holds.
CATCH_UP_CHECK_S = 5.0


class _Positions(Protocol):
    """What :func:`caught_up` asks of a consumer (confluent-kafka's ``Consumer``)."""

    def assignment(self) -> list[TopicPartition]: ...

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...

    def committed(self, partitions: list[TopicPartition], timeout: float = ...
                  ) -> list[TopicPartition]: ...

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float = ...,
                              cached: bool = ...) -> tuple[int, int] | None: ...


def caught_up(consumer: _Positions, timeout: float = 2.0) -> bool:
    """Whether ``consumer`` holds partitions and has read each to its high watermark
    (from where it stands, or where its group committed when it has read nothing there
    yet). False with no partitions, and when the broker does not answer in time."""
    try:
        held = consumer.assignment()
        if not held:
            return False
        at = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(held)}
        unread = [tp for tp in held if at.get((tp.topic, tp.partition), -1) < 0]
        if unread:
            for tp in consumer.committed(unread, timeout=timeout):
                at[(tp.topic, tp.partition)] = tp.offset
        for tp in held:
            # The broker's word (a stuck consumer's last fetch is old news), raised to what
            # the last fetch saw: the embedded broker's ListOffsets can answer short of the
            # end of a partition (hutong.offsets), its fetches do not.
            where = TopicPartition(tp.topic, tp.partition)
            marks = consumer.get_watermark_offsets(where, timeout=timeout, cached=False)
            if marks is None:
                return False
            seen = consumer.get_watermark_offsets(where, timeout=timeout, cached=True)
            high = max(marks[1], seen[1]) if seen is not None else marks[1]
            if partition_lag(at.get((tp.topic, tp.partition)), marks[0], high):
                return False
    except KafkaException:
        return False
    return True


class SinkRunner:
    """Feeds one sink from a set of topics (names or ``^regex``).

    A batch is what arrives until ``batch_size`` records or ``batch_wait_s`` seconds,
    whichever comes first (librdkafka's ``consume``); its offsets are committed only
    after the sink wrote it.
    """

    def __init__(self, client_config: dict[str, Any], group: str, topics: Sequence[str],
                 sink: Sink, metrics: Metrics, batch_size: int = 1000,
                 ids: Resolver = EMBEDDED, *, batch_wait_s: float = 0.2) -> None:
        self._ids = ids
        self._consumer = Consumer(consumer_config(client_config, group))
        self._dlq = BatchProducer(client_config, flush_s=10.0)
        self._topics = list(topics)
        self._sink = sink
        self._metrics = metrics
        self._batch_size = batch_size
        self._batch_wait_s = batch_wait_s
        self._stage = sink_stage(sink.name)
        self._committed = metrics.sink_last_commit.labels(sink.name)
        self._committed.set(time.time())  # its start: a new replica is not stalled yet
        metrics.stages.declare(self._stage)  # its dead letters counted from 0
        self._check_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)
        self.assigned = threading.Event()

    def start(self) -> None:
        self._consumer.subscribe(self._topics, on_assign=lambda c, p: self.assigned.set())
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def request_stop(self) -> None:
        """Ask the runner to finish its batch and close, without waiting for it."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                messages = self._consumer.consume(self._batch_size, timeout=self._batch_wait_s)
                if not messages:
                    self._idle()
                    continue
                try:
                    self._handle(messages)
                except Exception as exc:
                    log.error("sink %s failed on a batch (%s); it will be read again",
                              self._sink.name, type(exc).__name__)
                    self._rewind(messages)
                    self._stop.wait(1.0)
        finally:
            self._consumer.close()
            self._dlq.close()
            del self._dlq  # destroy the librdkafka handles before the broker may go away
            del self._consumer
            self._sink.close()

    def _idle(self) -> None:
        """Nothing read: progress only if it holds partitions and is at their end."""
        now = time.monotonic()
        if now < self._check_at:
            return
        self._check_at = now + CATCH_UP_CHECK_S
        if caught_up(self._consumer):
            self._committed.set(time.time())

    def _handle(self, messages: list[Message]) -> None:
        started = time.perf_counter()
        batch: list[Decoded] = []
        letters: list[dict[str, Any]] = []
        for msg in messages:
            if msg.error():
                log.warning("consumer error on %s: %s", msg.topic(), msg.error())
                continue
            item = self._decode(msg, letters)
            if item is not None:
                batch.append(item)
        rejected = self._write(batch)
        if rejected is None:  # stopping before the batch was written: read it again later
            self._rewind(messages)
            return
        for bad in rejected:
            item = bad.item
            if item.topic == DLQ_TOPIC:  # a letter about a letter would loop; it stays on the topic
                log.error("dead letter at %s[%d]@%d cannot be stored: %s", item.topic,
                          item.partition, item.offset, bad.reason)
                continue
            letters.append(consumed_dead_letter("sink", item.topic, item.partition,
                                                item.offset, item.key, item.raw, bad.reason))
        if not self._publish(letters):
            self._rewind(messages)
            return
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                raise
        self._metrics.sink_batch_seconds.labels(self._sink.name).observe(
            time.perf_counter() - started)
        self._committed.set(time.time())
        age = oldest_age((item.record.get("received_at") for item in batch), datetime.now(UTC))
        self._metrics.stages.passed(self._stage, len(messages), len(batch) - len(rejected), age)

    def _write(self, batch: list[Decoded]) -> list[Rejected] | None:
        """Write until the sink takes the batch; None when stopping first."""
        backoff = 0.5
        while not self._stop.is_set():
            if not batch:
                return []
            try:
                return self._sink.write(batch)
            except HutongError as exc:
                log.error("sink %s write failed, retrying in %.1f s: %s", self._sink.name,
                          backoff, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
        return None

    def _publish(self, letters: list[dict[str, Any]]) -> bool:
        """Write dead letters and wait for Kafka to confirm every one; False when stopping."""
        if not letters:
            return True
        schema = self._ids.for_topic(DLQ_TOPIC)
        records = [OutRecord(DLQ_TOPIC, letter["original_key"], wire.encode(schema, letter),
                             dead_letter_headers(letter)) for letter in letters]
        if not self._dlq.deliver(records, self._stop):
            return False
        self._metrics.dead_letters.labels(self._stage).inc(len(letters))
        return True

    def _rewind(self, messages: list[Message]) -> None:
        """Seek back to the first offset of each partition in ``messages``."""
        first: dict[tuple[str, int], int] = {}
        for msg in messages:
            where = (msg.topic() or "", msg.partition() or 0)
            offset = msg.offset()
            if offset is not None and offset >= 0:
                first[where] = min(first.get(where, offset), offset)
        for (topic, partition), offset in first.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # not assigned any more: its new owner reads it
                log.warning("cannot rewind %s[%d]: %s", topic, partition, exc.args[0].str())

    def _decode(self, msg: Message, letters: list[dict[str, Any]]) -> Decoded | None:
        topic, value, key = msg.topic() or "", msg.value() or b"", msg.key()
        partition, offset = msg.partition() or 0, msg.offset() or 0
        try:
            entry, record = wire.decode(value, self._ids.by_id)
            return Decoded(topic, partition, offset, entry.name, record, key, value)
        except (WireFormatError, SchemaError) as exc:
            letter = consumed_dead_letter("sink", topic, partition, offset, key, value, str(exc))
            if topic == DLQ_TOPIC:  # never loop: record it straight away
                return Decoded(topic, partition, offset, "dead-letter", letter, key, value)
            letters.append(letter)
            return None
