"""Produce to Kafka from asyncio and learn, per record, that the broker has it.

A connector ACKs a sender only after every record of its message has a
successful delivery report (``acks=all``, idempotent producer). librdkafka is
driven by one polling thread; each delivery report resolves an asyncio future
on the connector's loop. When librdkafka's queue is full, ``send`` waits, so a
slow broker slows senders down instead of growing memory.

confluent-kafka's own ``AIOProducer`` is not used: it cannot carry headers (dead
letters put their reason there) and holds records up to a buffer timeout before
handing them to librdkafka, which would sit on every ACK's latency.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from hutong.errors import DeliveryError

__all__ = ["AsyncProducer", "OutRecord", "producer_config"]

_QUEUE_FULL_PAUSE_S = 0.005


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


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to write."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, str | bytes | None]] = field(default=())


class AsyncProducer:
    """An idempotent producer whose ``send`` returns when Kafka has the records."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = Producer(producer_config(config))
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.05)

    async def send(self, records: Sequence[OutRecord]) -> None:
        """Write ``records``; raise DeliveryError unless Kafka confirmed all of them."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for record in records:
            future: asyncio.Future[None] = loop.create_future()
            futures.append(future)
            on_delivery = _reporter(loop, future)
            while True:
                try:
                    self._producer.produce(
                        record.topic,
                        value=record.value,
                        key=record.key,
                        headers=list(record.headers),
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    await asyncio.sleep(_QUEUE_FULL_PAUSE_S)
                except KafkaException as exc:  # refused before queueing, e.g. too large
                    future.set_exception(DeliveryError(f"topic {record.topic}: "
                                                       f"{exc.args[0].str()}"))
                    break
        results = await asyncio.gather(*futures, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise DeliveryError(f"{len(failures)} of {len(records)} writes failed: {failures[0]}")

    def pending(self) -> int:
        """Records handed to librdkafka and not yet confirmed."""
        return len(self._producer)

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued, stop the poller; return records left undelivered."""
        left: int = self._producer.flush(timeout)
        self._closing.set()
        self._poller.join(timeout=2)
        del self._producer  # destroy the librdkafka handle now, not at garbage collection
        return left


def _reporter(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> Any:
    def report(err: KafkaError | None, msg: Message) -> None:
        loop.call_soon_threadsafe(_settle, future, err, msg)

    return report


def _settle(future: asyncio.Future[None], err: KafkaError | None, msg: Message) -> None:
    if future.done():
        return
    if err is None:
        future.set_result(None)
    else:
        future.set_exception(DeliveryError(f"topic {msg.topic()}: {err.str()}"))
