"""Kafka to a sink: consume a batch, decode, write, then commit.

Runs in its own thread (librdkafka calls block). A record that does not decode
becomes a dead letter on ``hutong.dlq`` (stage ``sink``); a failed ``write`` is
retried with back-off and nothing is committed until it succeeds, so the
warehouse being down stalls the sink instead of losing data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, Message, Producer

from hutong.errors import HutongError, SchemaError, WireFormatError
from hutong.metrics import Metrics
from producers.records import DLQ_TOPIC, consumed_dead_letter, dead_letter_headers
from schemas import wire
from schemas.registry import EMBEDDED, Resolver
from sinks.base import Decoded, Sink

__all__ = ["SinkRunner", "consumer_config"]

log = logging.getLogger(__name__)
_MAX_BACKOFF_S = 10.0


def consumer_config(base: dict[str, Any], group: str) -> dict[str, Any]:
    """Consumer settings for sinks: manual commits, short group timeouts (Tansu)."""
    return {
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "isolation.level": "read_committed",
        **base,
    }


class SinkRunner:
    """Feeds one sink from a set of topics (names or ``^regex``)."""

    def __init__(self, client_config: dict[str, Any], group: str, topics: Sequence[str],
                 sink: Sink, metrics: Metrics, batch_size: int = 1000,
                 ids: Resolver = EMBEDDED) -> None:
        self._ids = ids
        self._consumer = Consumer(consumer_config(client_config, group))
        self._dlq = Producer({**client_config, "acks": "all", "enable.idempotence": True})
        self._topics = list(topics)
        self._sink = sink
        self._metrics = metrics
        self._batch_size = batch_size
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)
        self.assigned = threading.Event()

    def start(self) -> None:
        self._consumer.subscribe(self._topics, on_assign=lambda c, p: self.assigned.set())
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                messages = self._consumer.consume(self._batch_size, timeout=0.2)
                if messages:
                    self._handle(messages)
        finally:
            self._consumer.close()
            self._dlq.flush(5)
            del self._dlq  # destroy the librdkafka handles before the broker may go away
            del self._consumer
            self._sink.close()

    def _handle(self, messages: list[Message]) -> None:
        started = time.perf_counter()
        batch: list[Decoded] = []
        for msg in messages:
            if msg.error():
                log.warning("consumer error on %s: %s", msg.topic(), msg.error())
                continue
            decoded = self._decode(msg)
            if decoded is not None:
                batch.append(decoded)
        self._dlq.flush(10)
        backoff = 0.5
        while batch and not self._stop.is_set():
            try:
                self._sink.write(batch)
                break
            except HutongError as exc:
                log.error("sink %s write failed, retrying in %.1f s: %s", self._sink.name,
                          backoff, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
        else:
            if batch:
                return  # stopping before the batch was written: do not commit it
        self._consumer.commit(asynchronous=False)
        self._metrics.sink_batch_seconds.observe(time.perf_counter() - started)

    def _decode(self, msg: Message) -> Decoded | None:
        topic, value = msg.topic() or "", msg.value() or b""
        partition, offset = msg.partition() or 0, msg.offset() or 0
        try:
            entry, record = wire.decode(value, self._ids.by_id)
            return Decoded(topic, partition, offset, entry.name, record)
        except (WireFormatError, SchemaError) as exc:
            letter = consumed_dead_letter("sink", topic, partition, offset, msg.key(), value,
                                          str(exc))
            if topic == DLQ_TOPIC:  # never loop: record it straight away
                return Decoded(topic, partition, offset, "dead-letter", letter)
            self._dlq.produce(DLQ_TOPIC, key=msg.key(), headers=dead_letter_headers(letter),
                              value=wire.encode(self._ids.for_topic(DLQ_TOPIC), letter))
            self._metrics.dead_letters.labels("sink").inc()
            return None

