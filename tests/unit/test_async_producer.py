"""How `producers.kafka.AsyncProducer` counts delivery reports per send and hands the
finished sends to the loop, against a stand-in for librdkafka's producer (the real one is
exercised by the integration tests: `test_producer_outage.py`, the intake's)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from confluent_kafka import KafkaError, KafkaException

import producers.kafka as kafka
from hutong.errors import DeliveryError
from producers.kafka import AsyncProducer, OutRecord

TOO_BIG = b"too big"


class _Reported:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


class FakeProducer:
    """Queues records; ``poll`` (the producer's polling thread) reports them, as librdkafka
    does, with ``fail`` as the error; ``full`` produce calls refuse with BufferError first;
    ``raise_in_poll`` poll calls raise, as when a callback raised."""

    made: ClassVar[list[FakeProducer]] = []

    def __init__(self, _config: dict[str, Any]) -> None:
        self.queued: list[tuple[str, Callable[..., None]]] = []
        self.lock = threading.Lock()
        self.fail: KafkaError | None = None
        self.full = 0
        self.raise_in_poll = 0
        FakeProducer.made.append(self)

    def produce(self, topic: str, value: bytes, key: bytes | None, headers: Any,
                on_delivery: Callable[..., None]) -> None:
        if self.full:
            self.full -= 1
            raise BufferError
        if value == TOO_BIG:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        with self.lock:
            self.queued.append((topic, on_delivery))

    def poll(self, _timeout: float) -> int:
        time.sleep(random.random() * 0.002)
        with self.lock:
            queued, self.queued = self.queued, []
        for topic, report in queued:
            report(self.fail, _Reported(topic))
        if self.raise_in_poll:
            self.raise_in_poll -= 1
            raise RuntimeError("a delivery callback failed")
        return len(queued)

    def flush(self, _timeout: float | None = None) -> int:
        self.poll(0)
        return 0

    def purge(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self.queued)


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> Iterator[AsyncProducer]:
    FakeProducer.made.clear()
    monkeypatch.setattr(kafka, "Producer", FakeProducer)
    made = AsyncProducer({})
    yield made
    made.close(1)


def records(count: int, value: bytes = b"v") -> list[OutRecord]:
    return [OutRecord("hutong.raw.hl7v2", b"k", value)] * count


def test_every_one_of_many_concurrent_sends_returns_once_kafka_has_its_records(
        producer: AsyncProducer) -> None:
    async def main() -> None:
        sizes = [random.randint(0, 5) for _ in range(2000)]
        await asyncio.wait_for(asyncio.gather(*(producer.send(records(n)) for n in sizes)), 20)

    asyncio.run(main())


def test_a_record_refused_before_queueing_fails_the_send_and_the_others_are_awaited(
        producer: AsyncProducer) -> None:
    async def main() -> None:
        with pytest.raises(DeliveryError, match="1 of 3 writes failed"):
            await asyncio.wait_for(producer.send([*records(2), *records(1, TOO_BIG)]), 5)

    asyncio.run(main())


def test_a_full_queue_makes_the_send_wait_not_fail(producer: AsyncProducer) -> None:
    FakeProducer.made[0].full = 3

    async def main() -> None:
        await asyncio.wait_for(producer.send(records(3)), 5)

    asyncio.run(main())


def test_a_refused_producer_is_replaced_and_the_records_written_through_the_new_one(
        producer: AsyncProducer) -> None:
    FakeProducer.made[0].fail = KafkaError(KafkaError.PRODUCER_FENCED)

    async def main() -> None:
        await asyncio.wait_for(producer.send(records(2)), 5)

    asyncio.run(main())
    assert producer.renewals == 1 and len(FakeProducer.made) == 2


def test_a_failure_in_a_poll_does_not_stop_the_sends_after_it(
        producer: AsyncProducer) -> None:
    FakeProducer.made[0].raise_in_poll = 2

    async def main() -> None:
        await asyncio.wait_for(producer.send(records(2)), 5)
        await asyncio.wait_for(producer.send(records(1)), 5)

    asyncio.run(main())


def test_a_failed_report_names_the_topic(producer: AsyncProducer) -> None:
    FakeProducer.made[0].fail = KafkaError(KafkaError._MSG_TIMED_OUT)

    async def main() -> None:
        with pytest.raises(DeliveryError, match=r"topic hutong\.raw\.hl7v2"):
            await asyncio.wait_for(producer.send(records(2)), 5)

    asyncio.run(main())
