"""Producers write again after a broker outage longer than their delivery timeout.

When a record is not confirmed within ``message.timeout.ms``, librdkafka bumps its
idempotent producer's epoch by itself; Tansu then answers every write of that
producer PRODUCER_FENCED, for ever. Before the fix the hub answered AE to every
message once such an outage was over, and a sink with a dead letter to publish
stalled: nothing came back by itself. These tests stop (SIGSTOP) a broker of their
own, so that nothing else waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence

import pytest
from confluent_kafka import Producer

from hutong.errors import DeliveryError
from hutong.metrics import Metrics
from hutong.stack.broker import EmbeddedBroker
from producers.kafka import AsyncProducer, OutRecord
from schemas import catalog, wire
from sinks.base import Decoded, Rejected
from sinks.runner import SinkRunner
from tests.warehouse_events import SAMPLES

from .conftest import broker_of_its_own, wait_for

pytestmark = pytest.mark.integration

#: A delivery timeout short enough for a test's outage to outlast it.
SHORT_TIMEOUT = {"message.timeout.ms": "1500"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with broker_of_its_own(tmp_path_factory.mktemp("outage-broker")) as running:
        try:
            yield running
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(_pid(running), signal.SIGCONT)


def _pid(broker: EmbeddedBroker) -> int:
    assert broker.child.process is not None
    return broker.child.process.pid


@contextlib.contextmanager
def stopped(broker: EmbeddedBroker) -> Iterator[None]:
    """The broker frozen (SIGSTOP) until the block ends."""
    os.kill(_pid(broker), signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(_pid(broker), signal.SIGCONT)


async def test_the_connectors_producer_writes_again_after_the_broker_returns(
        broker: EmbeddedBroker) -> None:
    producer = AsyncProducer({"bootstrap.servers": broker.bootstrap, **SHORT_TIMEOUT})

    def record(n: int) -> OutRecord:
        return OutRecord("hutong.raw.hl7v2", f"outage-{n}".encode(), b"x")

    try:
        await producer.send([record(0)])
        with stopped(broker), pytest.raises(DeliveryError, match="timed out"):
            await producer.send([record(1)])
        await producer.send([record(n) for n in range(2, 5)])  # the broker is back
        assert producer.renewals == 1
    finally:
        await asyncio.to_thread(producer.close)


class _RefuseAll:
    """Rejects every record, so the runner publishes dead letters; runs ``first`` before
    it answers."""

    name = "warehouse"

    def __init__(self, first: Callable[[], None]) -> None:
        self._first = first

    def write(self, batch: Sequence[Decoded]) -> list[Rejected]:
        self._first()
        return [Rejected(item, "refused by the test") for item in batch]

    def close(self) -> None:
        pass


def test_a_sinks_dead_letters_are_published_after_the_broker_returns(
        broker: EmbeddedBroker) -> None:
    """The broker stops as the runner is about to publish a dead letter, for longer than
    the letter's delivery timeout; once it is back the letter is written and counted."""
    topic, group = f"test.outage.{uuid.uuid4().hex[:8]}", f"outage-{uuid.uuid4().hex[:8]}"
    config = {"bootstrap.servers": broker.bootstrap}
    producer = Producer(config)
    producer.produce(topic, key=b"E-1", value=wire.encode(
        catalog.schema("diagnosis"), SAMPLES["diagnosis"](event_id="outage-letter")))
    assert producer.flush(10) == 0
    resume = threading.Timer(2.5, os.kill, (_pid(broker), signal.SIGCONT))

    def stop_for_a_while() -> None:
        if not resume.is_alive() and not resume.finished.is_set():  # the first write only
            os.kill(_pid(broker), signal.SIGSTOP)
            resume.start()

    metrics = Metrics()
    runner = SinkRunner({**config, **SHORT_TIMEOUT}, group, [topic],
                        _RefuseAll(stop_for_a_while), metrics, batch_wait_s=0.2)
    runner.start()
    try:
        wait_for(lambda: metrics.registry.get_sample_value(
            "hutong_dead_letters_total", {"stage": "warehouse-sink"}), timeout=40)
    finally:
        resume.cancel()
        os.kill(_pid(broker), signal.SIGCONT)
        runner.stop()
