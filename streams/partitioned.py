"""The partitioned stage, the stream worker's hot path, on librdkafka.

Every event of ``hutong.events.*`` passes here (consumer group
``hutong-streams-standardize``), in batches of up to ``batch_size`` read within
``batch_wait_s``, in a thread of the worker's own:

* an event whose record has a link in the worker's :class:`~streams.linkview.LinkView`
  and whose identity data are what was last sent to the resolver
  (:class:`~streams.empi.routing.Router`) is stamped with its EMPI id,
  translated and written to ``hutong.std.<type>`` (and to the alert stage's
  candidates when it crosses a rule: :class:`~streams.output.StandardOutput`);
* any other goes, bytes unchanged, to the one resolver on ``hutong.empi.resolve``;
* one that cannot be decoded or used goes to ``hutong.dlq`` (stage ``stream``)
  with the reason.

The batch's offsets are committed only once Kafka has confirmed every record it
gave (at least once: a crash before re-reads the batch, and every reader
collapses repeats on the ``event_id``). Kafka confirms a batch while the stage
works out the next one: its records are sent once the batch before is confirmed
and committed, so that at most one batch is in flight, and partitions leaving
the worker in a rebalance take their confirmed offsets with them.

Why not a Faust agent, as the resolver and the alert stage are: Faust hands an
agent one event at a time through several layers of futures, about 5,000 a
second on one core here, and a send costs as much again; librdkafka hands over
thousands at once (measured in ``make bench``, ``docs/performance.md``).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from hutong.errors import SchemaError, WireFormatError
from hutong.metrics import StageMetrics
from hutong.metrics.labels import oldest_age
from producers.kafka import BatchProducer, OutRecord, Sending, consumer_config
from producers.records import DLQ_TOPIC, consumed_dead_letter, dead_letter_headers, event_key
from schemas import wire
from schemas.registry import Resolver
from streams.empi.routing import Router, identity
from streams.output import StandardOutput
from streams.topology import EVENTS_PATTERN, RESOLVE_TOPIC, STAGE_GROUP

__all__ = ["PartitionedStage", "Stamper"]

log = logging.getLogger(__name__)

#: How long the stage may take over a batch before the group moves its partitions on.
REBALANCE_TIMEOUT_MS = 10_000


class Links(Protocol):
    def empi_id(self, key: bytes) -> str | None: ...


class Stamper:
    """A batch's events to the records they give (no I/O but the link lookups)."""

    def __init__(self, ids: Resolver, links: Links, output: StandardOutput) -> None:
        self._ids = ids
        self._links = links
        self._output = output
        self._router = Router()

    def records(self, messages: list[Message]) -> tuple[list[OutRecord], list[Any]]:
        """The records a batch gives, dead letters and counts included; and the receipt
        times of the events stamped here."""
        records: list[OutRecord] = []
        linked_now: list[Any] = []
        for msg in messages:
            if msg.error():
                log.warning("consumer error on %s: %s", msg.topic(), msg.error())
                continue
            value = msg.value() or b""
            try:
                read = wire.decode_framed(value, self._ids.by_id)
            except (WireFormatError, SchemaError) as exc:
                records.append(self._letter(msg, str(exc)))
                continue
            event = read.record
            try:
                key = event_key(event)
                linked = self._links.empi_id(key)
                if self._router.local_link(key, event, linked, identity(read)):
                    records += self._output.event({**event, "empi_id": linked}, read)
                    linked_now.append(event.get("received_at"))
                else:
                    records.append(OutRecord(RESOLVE_TOPIC, key, value))
            except (KeyError, TypeError, ValueError) as exc:  # an event the step cannot use
                log.error("event at %s[%d]@%d failed in the partitioned stage",
                          msg.topic(), msg.partition(), msg.offset(), exc_info=True)
                records.append(self._letter(
                    msg, f"internal error in the partitioned stage ({type(exc).__name__})"))
        return records + self._output.counts(), linked_now

    def _letter(self, msg: Message, reason: str) -> OutRecord:
        letter = consumed_dead_letter("stream", msg.topic() or "", msg.partition() or 0,
                                      msg.offset() or 0, msg.key(), msg.value() or b"", reason)
        log.warning("event at %s not used: %s", letter["location"], reason)
        return OutRecord(DLQ_TOPIC, msg.key(), wire.encode(self._ids.for_topic(DLQ_TOPIC),
                                                           letter),
                         dead_letter_headers(letter))


class PartitionedStage:
    """Reads the events, stamps or forwards each, and commits once Kafka has the output."""

    def __init__(self, client_config: dict[str, Any], ids: Resolver, links: Links,
                 output: StandardOutput, metered: StageMetrics, *,
                 ready: Callable[[], None] = lambda: None, batch_size: int = 5000,
                 batch_wait_s: float = 0.05) -> None:
        self._consumer = Consumer({
            **consumer_config(client_config, STAGE_GROUP),
            # Also the rebalance timeout librdkafka asks for: how long a rebalance waits for a
            # member that went away without leaving (a worker killed). At librdkafka's 300 s
            # the next worker waited five minutes for its partitions; Faust's agents use 10 s.
            "max.poll.interval.ms": REBALANCE_TIMEOUT_MS})
        self._producer = BatchProducer(client_config)
        self._stamper = Stamper(ids, links, output)
        self._metered = metered
        self._ready = ready
        self._batch_size = batch_size
        self._batch_wait_s = batch_wait_s
        self._stop = threading.Event()
        self._in_flight: _InFlight | None = None
        self._thread = threading.Thread(target=self._run, name="partitioned-stage",
                                        daemon=True)

    def start(self) -> None:
        self._consumer.subscribe([EVENTS_PATTERN], on_revoke=self._revoked)
        self._thread.start()
        # Leave the group however the process ends (a stop before Faust has started skips
        # its shutdown hooks): a member that does not leave holds partitions until timed out.
        atexit.register(self.stop)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, commit it, and leave the group."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._ready()
            while not self._stop.is_set():
                messages = self._consumer.consume(self._batch_size, timeout=self._batch_wait_s)
                if messages:
                    self._handle(messages)
                else:
                    self._settle()  # nothing new: the batch in flight is committed now
        except Exception:  # a bug or a broken client: the hub restarts the worker
            log.critical("the partitioned stage failed; exiting so that its batch is read "
                         "again from the committed offsets", exc_info=True)
            logging.shutdown()
            os._exit(70)
        finally:
            self._close()

    def _close(self) -> None:
        try:
            self._settle()
            self._consumer.close()
        finally:
            self._producer.close()

    def _handle(self, messages: list[Message]) -> None:
        """Work out the batch's records while Kafka confirms the batch before; commit that
        one; then hand these to librdkafka."""
        self._ready()
        records, linked_now = self._stamper.records(messages)
        if not self._settle():
            return  # stopping before Kafka had the batch before: both are read again later
        self._in_flight = _InFlight(self._producer.send(records), _next_offsets(messages),
                                    len(messages), linked_now,
                                    sum(1 for r in records if r.topic == DLQ_TOPIC))

    def _revoked(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        """Partitions leave this worker (in ``consume``, this thread): commit what is done."""
        self._settle()

    def _settle(self) -> bool:
        """Wait for Kafka to confirm the batch in flight, then commit its offsets; False when
        stopping first (its offsets are not committed: it is read again later)."""
        batch, self._in_flight = self._in_flight, None
        if batch is None:
            return True
        if not self._producer.confirm(batch.sending, self._stop):
            return False
        if batch.letters:
            self._metered.dead_letters.labels("empi").inc(batch.letters)
        try:
            self._consumer.commit(offsets=batch.offsets, asynchronous=False)
        except KafkaException as exc:  # a rebalance: the partitions' new owner reads again
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("offsets of a written batch not committed (%s); it will be read "
                            "again", exc.args[0].str())
        age = oldest_age(batch.linked_now, datetime.now(UTC))
        self._metered.passed("empi", batch.read, len(batch.linked_now), age)
        self._metered.passed("translate", len(batch.linked_now), len(batch.linked_now), age)
        return True


@dataclass(slots=True)
class _InFlight:
    """A batch whose records are with librdkafka: what to commit once Kafka has them."""

    sending: Sending
    offsets: list[TopicPartition]
    read: int
    linked_now: list[Any]
    letters: int


def _next_offsets(messages: list[Message]) -> list[TopicPartition]:
    """The offsets to commit once a batch is done: after its last event, per partition."""
    after: dict[tuple[str, int], int] = {}
    for msg in messages:
        if msg.error() is None:
            after[(msg.topic() or "", msg.partition() or 0)] = (msg.offset() or 0) + 1
    return [TopicPartition(topic, partition, offset)
            for (topic, partition), offset in after.items()]
