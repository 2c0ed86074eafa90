"""Produce to Kafka from asyncio and learn, per record, that the broker has it.

A connector ACKs a sender only after every record of its message has a
successful delivery report (``acks=all``, idempotent producer). librdkafka is
driven by one polling thread; the reports are counted per send there, and the sends
one poll completed are handed to the connector's loop in one wake-up (a wake-up per
record cost the loop a system call and a callback each: 4 records a message on
average). When librdkafka's queue is full, ``send`` waits, so a slow broker slows
senders down instead of growing memory.

confluent-kafka's own ``AIOProducer`` is not used: it cannot carry headers (dead
letters put their reason there) and holds records up to a buffer timeout before
handing them to librdkafka, which would sit on every ACK's latency.

A producer the broker will no longer take writes from is replaced by a new one
(`needs_new_producer`). After a record times out (the broker did not answer
within ``message.timeout.ms``), librdkafka bumps its idempotent producer's epoch
on its own; Tansu refuses that epoch with PRODUCER_FENCED for every later write,
so without a new producer the hub would answer AE for ever once the broker came
back. A fatal librdkafka error asks for the same remedy. Records so refused are
sent once more through the new producer before the sender is answered (should one
have been written after all, the sinks collapse the copy on its ``event_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from hutong.errors import DeliveryError

__all__ = ["AsyncProducer", "BatchProducer", "OutRecord", "Sending", "consumer_config",
           "needs_new_producer", "producer_config", "retire"]

log = logging.getLogger(__name__)

_QUEUE_FULL_PAUSE_S = 0.005
_MAX_BACKOFF_S = 10.0
#: How long a confirmation waits for Kafka once the caller is stopping.
_STOPPING_FLUSH_S = 2.0
#: How long a replaced producer may still deliver what it had in flight.
_RETIRED_FLUSH_S = 30.0
#: The broker refuses this producer's id or epoch: only a new producer (a new id) helps.
_REFUSED_PRODUCER = frozenset({KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
                               KafkaError.UNKNOWN_PRODUCER_ID})


def needs_new_producer(err: KafkaError) -> bool:
    """Whether ``err`` means this producer will write nothing more: a fatal error, or the
    broker refusing its id or epoch (Tansu, after librdkafka bumped the epoch itself)."""
    return bool(err.fatal()) or err.code() in _REFUSED_PRODUCER


def retire(producer: Producer, timeout: float = _RETIRED_FLUSH_S) -> None:
    """Let a replaced producer deliver (or fail) what it holds, in a thread, then drop it."""
    def drain() -> None:
        producer.flush(timeout)
        producer.purge()  # what is left fails now, so every delivery report comes
        producer.flush(1)

    threading.Thread(target=drain, name="kafka-retired-producer", daemon=True).start()


def producer_config(base: dict[str, Any]) -> dict[str, Any]:
    """Durable-write settings layered over the shared client config."""
    return {
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 2,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 200_000,
        "message.max.bytes": 8 * 1024 * 1024,  # the broker's own limit still applies
        "message.timeout.ms": 30_000,
        # Java's partitioner, as Faust (aiokafka) uses: a key lands in the same partition
        # number on every topic, so the stream worker's tables line up with the events.
        "partitioner": "murmur2_random",
        **base,
    }


def consumer_config(base: dict[str, Any], group: str) -> dict[str, Any]:
    """Settings of a consumer that commits by hand, after its batch is written (sinks,
    the stream worker's partitioned stage); short group timeouts (Tansu)."""
    return {
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        # Tansu answers a fetch when its wait runs out, not when data arrives: a short
        # wait keeps each hop in the tens of milliseconds (measured: 1.3 s at Kafka's
        # default, 8 ms at 50 ms). On Kafka it only costs idle fetch requests.
        "fetch.wait.max.ms": 50,
        "isolation.level": "read_committed",
        **base,
    }


class OutRecord(NamedTuple):
    """One record to write (a tuple: a stage makes one per event, and a frozen dataclass
    costs three times as much to make)."""

    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone (a compacted topic forgets the key)
    headers: Sequence[tuple[str, str | bytes | None]] = ()


class AsyncProducer:
    """An idempotent producer whose ``send`` returns when Kafka has the records."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = producer_config(config)
        self._producer = Producer(self._config)
        #: Bumped when the producer is replaced: concurrent sends replace it once.
        self._generation = 0
        #: How many times the producer was replaced.
        self.renewals = 0
        self._closing = threading.Event()
        #: Sends whose every record has its report, to hand to their loops after a poll.
        self._done: list[_Delivery] = []
        self._done_lock = threading.Lock()
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closing.is_set():
            try:
                self._producer.poll(0.05)
            except Exception:  # raised in a callback: this thread must go on serving sends
                log.exception("a Kafka delivery report failed")
            finally:
                self._hand_over()

    def _finished(self, delivery: _Delivery) -> None:
        """A send has all its reports (in a thread of librdkafka's callbacks): the poller
        hands the sends one poll finished to their loops at once, one wake-up a loop,
        rather than one for every record; reports met elsewhere (a flush at close, a
        replaced producer draining) are handed over now."""
        with self._done_lock:
            self._done.append(delivery)
        if threading.current_thread() is not self._poller or self._closing.is_set():
            self._hand_over()

    def _hand_over(self) -> None:
        if not self._done:
            return
        with self._done_lock:
            done, self._done = self._done, []
        by_loop: dict[asyncio.AbstractEventLoop, list[_Delivery]] = {}
        for delivery in done:
            by_loop.setdefault(delivery.loop, []).append(delivery)
        for loop, deliveries in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                loop.call_soon_threadsafe(_resolve_all, deliveries)

    async def send(self, records: Sequence[OutRecord]) -> None:
        """Write ``records``; raise DeliveryError unless Kafka confirmed all of them."""
        generation = self._generation
        results = await self._send_once(records)
        refused = [(record, error) for record, error in zip(records, results, strict=True)
                   if isinstance(error, _Refused)]
        if refused:  # not written: once more, through a new producer
            self._renew(generation, refused[0][1])
            retried = iter(await self._send_once([record for record, _ in refused]))
            results = [next(retried) if isinstance(e, _Refused) else e for e in results]
        failures = [error for error in results if error is not None]
        if failures:
            raise DeliveryError(f"{len(failures)} of {len(records)} writes failed: {failures[0]}")

    async def _send_once(self, records: Sequence[OutRecord]) -> list[DeliveryError | None]:
        """Hand ``records`` to librdkafka; each one's outcome (None: written)."""
        delivery = _Delivery(asyncio.get_running_loop(), len(records), self._finished)
        refused_now = 0
        for n, record in enumerate(records):
            while True:
                try:
                    self._producer.produce(
                        record.topic, value=record.value, key=record.key,
                        headers=list(record.headers) if record.headers else None,
                        on_delivery=partial(delivery.report, n))
                    break
                except BufferError:
                    await asyncio.sleep(_QUEUE_FULL_PAUSE_S)
                except KafkaException as exc:  # refused before queueing, e.g. too large
                    delivery.outcomes[n] = _failure(exc.args[0], record.topic)
                    refused_now += 1
                    break
        if delivery.release(refused_now + 1):  # every report came while producing
            return delivery.outcomes
        return await delivery.future

    def _renew(self, generation: int, why: DeliveryError) -> None:
        """Replace the producer, unless a send that saw the same refusal did already."""
        if generation != self._generation:
            return
        log.warning("Kafka refuses this producer (%s); writing through a new one", why)
        old, self._producer = self._producer, Producer(self._config)
        self._generation += 1
        self.renewals += 1
        retire(old)

    def pending(self) -> int:
        """Records handed to librdkafka and not yet confirmed."""
        return len(self._producer)

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued, stop the poller; return records left undelivered."""
        left: int = self._producer.flush(timeout)
        self._closing.set()
        self._poller.join(timeout=2)
        self._hand_over()
        del self._producer  # destroy the librdkafka handle now, not at garbage collection
        return left


class _Delivery:
    """One send's records with librdkafka: each one's outcome as its report comes (in
    librdkafka's thread), and the future the sender awaits on its loop.

    ``left`` counts the reports still owed, plus one the sending side holds until every
    record is handed over (reports may come while it is still producing); whichever side
    takes it to nought finishes the send.
    """

    __slots__ = ("finished", "future", "left", "lock", "loop", "outcomes")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int,
                 finished: Callable[[_Delivery], None]) -> None:
        self.loop = loop
        self.future: asyncio.Future[list[DeliveryError | None]] = loop.create_future()
        self.outcomes: list[DeliveryError | None] = [None] * count
        self.left = count + 1
        self.lock = threading.Lock()
        self.finished = finished

    def report(self, n: int, err: KafkaError | None, msg: Message) -> None:
        """librdkafka's delivery report of record ``n``."""
        if err is not None:
            self.outcomes[n] = _failure(err, msg.topic() or "")
        if self.release(1):
            self.finished(self)

    def release(self, count: int) -> bool:
        """Take ``count`` off what is owed; True for the side that took it to nought."""
        with self.lock:
            self.left -= count
            return self.left == 0


def _resolve_all(deliveries: list[_Delivery]) -> None:
    for delivery in deliveries:
        if not delivery.future.done():  # the sender may have given up (cancelled)
            delivery.future.set_result(delivery.outcomes)


def _failure(err: KafkaError, topic: str) -> DeliveryError:
    kind = _Refused if needs_new_producer(err) else DeliveryError
    return kind(f"topic {topic}: {err.str()}")


class _Refused(DeliveryError):
    """Not written: the broker refuses the producer itself (`needs_new_producer`)."""


@dataclass(slots=True)
class Sending:
    """Records handed to librdkafka (:meth:`BatchProducer.send`), and those it refused."""

    records: list[OutRecord]
    failed: list[OutRecord] = field(default_factory=list)
    errors: list[KafkaError] = field(default_factory=list)
    _shared: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._shared = self._report  # one bound method, not one per record

    def reporter(self, record: OutRecord) -> Any:
        """The delivery report callback for ``record``: a refused record is kept to write
        again. One callback serves every record without headers (it is rebuilt from the
        report: librdkafka's reports carry no headers), which saves making one per record."""
        if not record.headers:
            return self._shared
        return lambda err, _msg: self._refused(err, record) if err is not None else None

    def _report(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            # the value as reported: None is a tombstone, to be written again as one
            self._refused(err, OutRecord(msg.topic() or "", msg.key(), msg.value()))

    def _refused(self, err: KafkaError, record: OutRecord) -> None:
        self.failed.append(record)
        self.errors.append(err)


class BatchProducer:
    """For a thread that writes a batch and goes on only once Kafka has all of it.

    :meth:`deliver` hands every record to librdkafka, waits for the delivery reports,
    and writes the refused ones again (a new producer when the broker refuses this
    one's id, as :class:`AsyncProducer` does) with back-off, until all are confirmed
    or ``stop`` is set. A record may so be written twice; every reader collapses
    repeats on the ``event_id``. :meth:`send` and :meth:`confirm` are its two halves, for
    a thread that works on its next batch while Kafka confirms this one.
    """

    def __init__(self, config: dict[str, Any], *, flush_s: float = 30.0) -> None:
        self._config = producer_config(config)
        self._producer = Producer(self._config)
        self._flush_s = flush_s

    def deliver(self, records: Sequence[OutRecord], stop: threading.Event) -> bool:
        """Whether Kafka confirmed every record (False: ``stop`` was set first; set
        already, nothing is written)."""
        if stop.is_set():
            return not records
        return self.confirm(self.send(records), stop)

    def send(self, records: Sequence[OutRecord]) -> Sending:
        """Hand ``records`` to librdkafka and return at once; :meth:`confirm` waits for
        Kafka. Nothing else may be sent before the confirmation (it waits for all)."""
        sending = Sending(list(records))
        for record in sending.records:
            self._produce(record, sending.reporter(record))
        return sending

    def confirm(self, sending: Sending, stop: threading.Event) -> bool:
        """Whether Kafka confirmed every record of ``sending``, writing the refused ones
        again until it has or ``stop`` is set (False)."""
        backoff = 0.5
        pending, failed, errors = sending.records, sending.failed, sending.errors
        while True:
            unconfirmed = self._producer.flush(
                _STOPPING_FLUSH_S if stop.is_set() else self._flush_s)
            if unconfirmed == 0 and not failed:
                return True
            log.error("%d of %d records not confirmed by Kafka; writing them again in %.1f s",
                      len(failed) or unconfirmed, len(pending), backoff)
            refusal = next((e for e in errors if needs_new_producer(e)), None)
            if refusal is not None or unconfirmed:
                if refusal is not None:
                    log.warning("Kafka refuses the producer (%s); using a new one",
                                refusal.str())
                retire(self._producer)
                self._producer = Producer(self._config)
            pending = pending if unconfirmed else failed
            if stop.wait(backoff):
                return False
            backoff = min(backoff * 2, _MAX_BACKOFF_S)
            sending = self.send(pending)
            failed, errors = sending.failed, sending.errors

    def _produce(self, record: OutRecord, on_delivery: Any) -> None:
        while True:
            try:
                self._producer.produce(record.topic, value=record.value, key=record.key,
                                       headers=list(record.headers) if record.headers else None,
                                       on_delivery=on_delivery)
                return
            except BufferError:  # librdkafka's queue is full: let it drain
                self._producer.poll(_QUEUE_FULL_PAUSE_S)

    def close(self, timeout: float = 5.0) -> None:
        self._producer.flush(timeout)


