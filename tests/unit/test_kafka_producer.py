"""Which Kafka errors mean a producer must be replaced (`producers.kafka.needs_new_producer`)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from producers.kafka import needs_new_producer


@pytest.mark.parametrize(("error", "renew"), [
    # Tansu's answer to an epoch librdkafka bumped itself after a timeout
    (KafkaError(KafkaError.PRODUCER_FENCED), True),
    (KafkaError(KafkaError.INVALID_PRODUCER_EPOCH), True),
    (KafkaError(KafkaError.UNKNOWN_PRODUCER_ID), True),
    (KafkaError(KafkaError._FATAL, fatal=True), True),
    (KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, fatal=True), True),
    # a broker that did not answer in time: the same producer carries on when it is back
    (KafkaError(KafkaError._MSG_TIMED_OUT), False),
    (KafkaError(KafkaError._TRANSPORT), False),
    (KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), False),
    (KafkaError(KafkaError.NOT_ENOUGH_REPLICAS, retriable=True), False),
])
def test_a_producer_is_replaced_only_when_the_broker_will_take_nothing_more_from_it(
        error: KafkaError, renew: bool) -> None:
    assert needs_new_producer(error) is renew
