"""Which Kafka errors mean a producer must be replaced (`producers.kafka.needs_new_producer`),
and which records a batch writes again (`producers.kafka.Sending`)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from producers.kafka import OutRecord, Sending, needs_new_producer


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


class Reported:
    """A delivery report's message: librdkafka's carry no headers."""

    def __init__(self, record: OutRecord) -> None:
        self._record = record

    def topic(self) -> str:
        return self._record.topic

    def key(self) -> bytes | None:
        return self._record.key

    def value(self) -> bytes | None:
        return self._record.value

    def headers(self) -> None:
        return None


def test_a_refused_record_is_kept_to_write_again_headers_and_all() -> None:
    plain = OutRecord("hutong.std.lab-result", b"E1", b"\x00v")
    letter = OutRecord("hutong.dlq", b"k", b"\x00d", [("hutong.stage", b"stream")])
    confirmed = OutRecord("hutong.std.lab-result", b"E2", b"\x00w")
    sending = Sending([plain, letter, confirmed])
    refused = KafkaError(KafkaError._MSG_TIMED_OUT)
    assert sending.reporter(plain) is sending.reporter(confirmed)  # one callback, shared
    for record, error in ((plain, refused), (letter, refused), (confirmed, None)):
        sending.reporter(record)(error, Reported(record))
    assert sending.failed == [plain, letter] and sending.errors == [refused, refused]


def test_a_refused_tombstone_is_written_again_as_a_tombstone() -> None:
    """A merged-away EMPI id's golden record is a null value: written again as b"" it
    would be a record nobody can read, and compaction would keep the key."""
    tombstone = OutRecord("hutong.empi.golden", b"E-1", None)
    sending = Sending([tombstone])
    sending.reporter(tombstone)(KafkaError(KafkaError._MSG_TIMED_OUT), Reported(tombstone))
    assert sending.failed == [tombstone] and sending.failed[0].value is None
