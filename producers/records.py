"""Adapted messages as Kafka records in the Confluent wire format (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hutong.errors import HL7Error
from producers.hl7v2.adapter import Adapted
from producers.kafka import OutRecord, producer_config
from schemas import wire
from schemas.registry import EMBEDDED, Resolver

__all__ = [
    "DLQ_TOPIC",
    "MAX_MESSAGE_BYTES",
    "MAX_RECORD_BYTES",
    "checked_size",
    "consumed_dead_letter",
    "dead_letter_headers",
    "dead_letter_record",
    "event_key",
    "records_for",
]

DLQ_TOPIC = "hutong.dlq"
#: The largest record the producer writes (its ``message.max.bytes``; Tansu takes as much).
MAX_RECORD_BYTES: int = producer_config({})["message.max.bytes"]
#: The largest single message whose raw envelope and dead letter still fit in a record:
#: what one HTTP request may carry (a batch file is split into its messages) and the
#: largest CDA document.
MAX_MESSAGE_BYTES = MAX_RECORD_BYTES - 64 * 1024


def _size(record: OutRecord) -> int:
    return len(record.value or b"") + len(record.key or b"") + sum(
        len(name) + len(value or b"") for name, value in record.headers)


def checked_size(records: list[OutRecord]) -> list[OutRecord]:
    """``records``, or HL7Error (207) naming the topic of one that Kafka would refuse as too
    large: a message that cannot be stored gets a dead letter, not "resend" for ever."""
    for record in records:
        if _size(record) > MAX_RECORD_BYTES:
            raise HL7Error(f"message too large to store: its record would exceed the "
                           f"{MAX_RECORD_BYTES}-byte limit", location=record.topic, code="207")
    return records


def event_key(event: dict[str, Any]) -> bytes:
    """Key of ``hutong.events.*``: the facility's patient id, scoped by facility."""
    return f"{event['facility_id']}|{event['source_patient_id']}".encode()


def _raw_record(adapted: Adapted, ids: Resolver) -> OutRecord:
    """The envelope on ``hutong.raw.<content type>`` (hl7v2, cda or json)."""
    assert adapted.envelope is not None  # noqa: S101
    key = adapted.key.encode() if adapted.key else None
    topic = f"hutong.raw.{adapted.envelope['content_type']}"
    return OutRecord(topic, key, wire.encode(ids.for_topic(topic), adapted.envelope))


def records_for(adapted: Adapted, ids: Resolver = EMBEDDED) -> list[OutRecord]:
    """The raw envelope and every event of a message that adapted cleanly."""
    assert adapted.envelope is not None and adapted.event_type is not None  # noqa: S101
    records = [_raw_record(adapted, ids)]
    for event in adapted.events:  # one message may yield several types (ADT: patient, encounter)
        topic = f"hutong.events.{event['event_type']}"
        records.append(OutRecord(topic, event_key(event), wire.encode(ids.for_topic(topic), event)))
    return records


def dead_letter_headers(letter: dict[str, Any]) -> list[tuple[str, str | bytes | None]]:
    """The reason in headers, so a consumer can route without decoding."""
    headers: list[tuple[str, str | bytes | None]] = [
        ("hutong.stage", letter["stage"].encode()), ("hutong.reason", letter["reason"].encode())]
    for name in ("error_code", "location", "facility_id"):
        if letter.get(name):
            headers.append((f"hutong.{name}", str(letter[name]).encode()))
    return headers


def dead_letter_record(adapted: Adapted, ids: Resolver = EMBEDDED) -> list[OutRecord]:
    """The dead letter (and the raw envelope when the message was readable)."""
    letter = adapted.dead_letter()
    records = [OutRecord(DLQ_TOPIC, letter["original_key"],
                         wire.encode(ids.for_topic(DLQ_TOPIC), letter),
                         dead_letter_headers(letter))]
    if adapted.envelope is not None:
        records.append(_raw_record(adapted, ids))
    return records


def consumed_dead_letter(stage: str, topic: str, partition: int, offset: int,
                         key: bytes | None, payload: bytes, reason: str) -> dict[str, Any]:
    """The dead letter of a record a stream or sink consumed and could not use.

    Its id derives from the record's position, so a replay yields the same letter.
    """
    where = f"{topic}[{partition}]@{offset}"
    return {
        "dead_letter_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"hutong:dlq:{where}")),
        "stage": stage,
        "reason": reason,
        "error_code": None,
        "location": where,
        "facility_id": None,
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "original_key": key,
        "payload": payload,
        "failed_at": datetime.now(UTC),
    }
