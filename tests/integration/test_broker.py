"""The embedded broker and the topic contract, on the real Tansu."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from connectors.facilities import Facility, FacilityRegistry
from hutong import topicfeed
from hutong.offsets import watermarks
from hutong.registry.facilities import FacilityFeed, FacilityRecord, publish_facilities
from hutong.stack.topics import ensure_topics
from producers.kafka import AsyncProducer
from schemas.catalog import TOPIC_SPECS
from sinks.runner import consumer_config

pytestmark = pytest.mark.integration


def test_every_contract_topic_exists_with_its_policy(kafka_bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topics = admin.list_topics(timeout=10).topics
    assert {spec.name for spec in TOPIC_SPECS} <= set(topics)
    assert len(topics["hutong.std.lab-result"].partitions) == 3
    futures = admin.describe_configs([ConfigResource("topic", "hutong.empi.links"),
                                      ConfigResource("topic", "hutong.dlq")])
    configs = {res.name: {k: v.value for k, v in f.result().items()}
               for res, f in futures.items()}
    assert configs["hutong.empi.links"]["cleanup.policy"] == "compact"
    assert configs["hutong.dlq"]["cleanup.policy"] == "delete"


def test_provisioning_twice_creates_nothing(kafka_bootstrap: str) -> None:
    assert ensure_topics({"bootstrap.servers": kafka_bootstrap}) == []


def test_short_group_timeouts_get_a_new_member_its_partitions_quickly(
        kafka_bootstrap: str) -> None:
    """Tansu makes a member with Kafka's default session timeout wait ~23 s; ours ~3 s."""
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce("hutong.alerts.ack", key=b"k", value=b"probe")
    producer.flush(10)
    consumer = Consumer(consumer_config({"bootstrap.servers": kafka_bootstrap}, "test-join"))
    consumer.subscribe(["hutong.alerts.ack"])
    started = time.monotonic()
    try:
        msg = None
        while msg is None and time.monotonic() - started < 15:  # the default would need ~23 s
            candidate = consumer.poll(0.2)
            if candidate is not None and not candidate.error():
                msg = candidate
    finally:
        consumer.close()
    assert msg is not None and msg.value() == b"probe"


def test_our_producers_and_faust_put_a_key_in_the_same_partition(kafka_bootstrap: str) -> None:
    """The alert stage's tables (Faust) line up with the candidates our producers write
    only if librdkafka and aiokafka (under Faust) partition a key alike (ADR 0004)."""
    from aiokafka.partitioner import DefaultPartitioner

    from producers.kafka import producer_config

    keys = [f"FAC{n}|MRN{n * 7919}".encode() for n in range(40)]
    landed: dict[bytes, int] = {}
    producer = Producer(producer_config({"bootstrap.servers": kafka_bootstrap}))
    for key in keys:
        producer.produce("hutong.events.order", key=key, value=b"probe",
                         on_delivery=lambda err, msg: landed.__setitem__(msg.key(),
                                                                         msg.partition()))
    assert producer.flush(10) == 0
    faust_choice = {key: DefaultPartitioner()(key, [0, 1, 2], [0, 1, 2]) for key in keys}
    assert landed == faust_choice
    assert len(set(landed.values())) == 3  # the keys spread, so the test could fail


def test_watermarks_read_to_the_end_of_a_partition_whose_last_batch_holds_many(
        kafka_bootstrap: str) -> None:
    """The embedded broker answers ListOffsets with the last batch's base offset plus one
    (found when a restarted stream worker refused its own files); hutong.offsets reads to
    the true end, and a topic feed is ready only once it has read everything."""
    config = {"bootstrap.servers": kafka_bootstrap}
    topic = f"hutong-test-ends-{time.time_ns()}"
    admin = AdminClient(config)  # kept: its futures die with it
    for created in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        created.result(30)
    producer = Producer({**config, "linger.ms": 100})
    for n in range(20):  # one batch
        producer.produce(topic, value=b"%d" % n, partition=0)
    assert producer.flush(30) == 0
    listed = Consumer(consumer_config(config, "hutong-test-ends")).get_watermark_offsets(
        TopicPartition(topic, 0), timeout=15)
    assert watermarks(config, [(topic, 0), (topic, 1)]) == {(topic, 0): (0, 20),
                                                             (topic, 1): (0, 0)}
    print(f"ListOffsets says {listed}; the partition ends at 20")

    at = datetime.now(UTC)
    many = [FacilityRecord(Facility(id=f"ENDS{n}"), 1, at, "test") for n in range(30)]
    sending = AsyncProducer(config)
    try:
        asyncio.run(publish_facilities(sending, many))  # a batch of several per partition
    finally:
        sending.close()
    feed = FacilityFeed(config, FacilityRegistry())
    feed.start()
    try:
        assert feed.wait_ready(30)
        assert {f"ENDS{n}" for n in range(30)} <= feed.records.keys()
    finally:
        feed.stop()


def test_a_feed_read_whole_follows_on_with_long_fetches_from_where_it_was(
        kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A topic feed reads its topic whole with short fetches, then follows it with long
    ones (each fetch costs the embedded broker CPU, full or empty): the second consumer
    starts where the first stopped, so what came before is not taken twice and what
    comes after is not missed."""
    config = {"bootstrap.servers": kafka_bootstrap}
    prefix = f"SETTLE{time.time_ns()}-"
    taken: list[str] = []

    class Counting(FacilityFeed):
        settled_wait_ms = 200

        def apply(self, record: Mapping[str, Any]) -> bool:
            if str(record.get("facility_id", "")).startswith(prefix):
                taken.append(record["facility_id"])
            return super().apply(record)

    def publish(*numbers: int) -> None:
        at = datetime.now(UTC)
        sending = AsyncProducer(config)
        try:
            asyncio.run(publish_facilities(sending, [
                FacilityRecord(Facility(id=f"{prefix}{n}"), 1, at, "test") for n in numbers]))
        finally:
            sending.close()

    waits: list[object] = []

    def consumer(settings: dict[str, Any]) -> Consumer:
        waits.append(settings["fetch.wait.max.ms"])
        return Consumer(settings)

    monkeypatch.setattr(topicfeed, "Consumer", consumer)  # the real one, counted
    publish(0, 1, 2)
    feed = Counting(config, FacilityRegistry())
    feed.start()
    try:
        assert feed.wait_ready(30)
        publish(3, 4)
        deadline = time.monotonic() + 30
        while len(taken) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # anything read twice would come by now
        assert sorted(taken) == [f"{prefix}{n}" for n in range(5)]
        assert waits == [50, 200]  # read whole with short fetches, then the long ones
    finally:
        feed.stop()
