"""Retrying a dead letter: its original message through the intake again.

A letter is worth retrying once what made it fail is fixed: a facility
profile, a code map, a message type a newer hub reads. The warehouse knows
the letter (``dead_letters``) and where it sits on ``hutong.dlq``
(``dlq_partition``, ``dlq_offset``, migration 0010) but, pseudonymised, not its
bytes; :class:`DlqReader` reads that one record back from the topic (a
short-lived consumer, assign and seek, no group, nothing committed) and
:func:`resubmit` hands its payload to :class:`producers.intake.Intake` as if the
facility had sent it again: authorised as that facility, stored, acknowledged or
dead-lettered exactly like a new arrival (transport ``retry``). A message the
hub accepted meanwhile is recognised as a resend and not stored twice.

Only what a connector received can be retried: letters of the stages
``producer``, ``connector`` and ``mllp`` that kept a whole message and name
their facility. Every retry, done or refused, is in the audit log with who asked.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from connectors.facilities import FacilityRegistry, Peer
from hutong.audit import AuditLog
from hutong.errors import (
    DlqUnreachable,
    LetterGone,
    NotRetryable,
    RetryError,
    SchemaError,
    WireFormatError,
)
from hutong.offsets import watermarks
from producers.cda.adapter import adapt_cda
from producers.intake import Intake, Receipt
from producers.json_events import adapt_json
from producers.records import DLQ_TOPIC
from schemas import wire
from schemas.registry import EMBEDDED, Resolver

__all__ = [
    "RETRYABLE_STAGES",
    "DeadLetterSource",
    "DlqReader",
    "Retried",
    "RetryLedger",
    "content_kind",
    "refusal",
    "resubmit",
]

#: Stages whose letters hold a message as a facility sent it.
RETRYABLE_STAGES = frozenset({"producer", "connector", "mllp"})
#: The location of a letter that kept only the first bytes of an oversize or stalled frame.
_HEAD_ONLY = "MLLP"


def refusal(letter: Mapping[str, Any]) -> str | None:
    """Why ``letter`` (a ``dead_letters`` row) cannot be retried, or None when it can."""
    stage = letter.get("stage")
    if stage not in RETRYABLE_STAGES:
        return (f"a letter of the {stage} stage holds a record of the hub's own, not a "
                "message a facility sent; replay its topic instead")
    if letter.get("location") == _HEAD_ONLY:
        return "the letter kept only the first bytes of a frame that was never completed"
    if not letter.get("payload_size"):
        return "the letter holds no message"
    if not letter.get("facility_id"):
        return "the letter names no facility to submit it for"
    if letter.get("dlq_partition") is None or letter.get("dlq_offset") is None:
        return ("the warehouse does not know where the letter is on hutong.dlq (it was "
                "written before migration 0010)")
    return None


def content_kind(payload: bytes) -> Literal["hl7v2", "cda", "json"]:
    """What a payload is, as the connector that took it knew: HL7 v2, a CDA document or JSON."""
    head = payload.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"<":
        return "cda"
    if head in (b"{", b"["):
        return "json"
    return "hl7v2"


class DeadLetterSource(Protocol):
    """Where a letter's record is read back from."""

    def fetch(self, partition: int, offset: int) -> dict[str, Any]:
        """The dead-letter record at ``hutong.dlq[partition]@offset``; RetryError if none."""


class DlqReader:
    """Reads single records of ``hutong.dlq``: a consumer per read, assigned and seeked,
    in no consumer group, committing nothing."""

    def __init__(self, client_config: Mapping[str, Any], ids: Resolver = EMBEDDED, *,
                 timeout_s: float = 10.0) -> None:
        self._config = {
            **client_config,
            "group.id": "hutong-dlq-reader",  # librdkafka wants one; never joined or committed
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 50,
        }
        self._ids = ids
        self._timeout_s = timeout_s

    def fetch(self, partition: int, offset: int) -> dict[str, Any]:
        where = f"{DLQ_TOPIC}[{partition}]@{offset}"
        consumer = Consumer(self._config)
        try:
            try:
                [(low, high)] = watermarks(self._config, [(DLQ_TOPIC, partition)],
                                           self._timeout_s).values()
            except KafkaException as exc:
                raise DlqUnreachable(f"cannot read {DLQ_TOPIC}: {exc.args[0].str()}") from exc
            if not low <= offset < high:
                raise LetterGone(f"{where} is not there any more ({DLQ_TOPIC}[{partition}] "
                                 f"holds offsets {low} to {high - 1}): past retention?")
            consumer.assign([TopicPartition(DLQ_TOPIC, partition, offset)])
            deadline = time.monotonic() + self._timeout_s
            while time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        raise LetterGone(f"{where} is not there any more")
                    raise DlqUnreachable(f"cannot read {where}: {error.str()}")
                if msg.offset() != offset:
                    raise LetterGone(f"{where} is not there any more (compacted?)")
                return self._decode(msg.value() or b"", where)
            raise DlqUnreachable(f"{where} was not read within {self._timeout_s:.0f} s")
        finally:
            consumer.close()

    def _decode(self, value: bytes, where: str) -> dict[str, Any]:
        try:
            entry, record = wire.decode(value, self._ids.by_id)
        except (WireFormatError, SchemaError) as exc:
            raise LetterGone(f"{where} is not a readable dead letter: {exc}") from exc
        if entry.name != "dead-letter":
            raise LetterGone(f"{where} holds a {entry.name}, not a dead letter")
        return record


@dataclass(frozen=True, slots=True)
class Retried:
    """What became of a retried letter's message: the intake's outcome."""

    dead_letter_id: str
    outcome: str  # AA events, AE not usable (a new dead letter), AR refused
    stored: bool
    duplicate: bool
    event_ids: tuple[str, ...]
    reason: str | None
    location: str | None
    error_code: str | None
    retried_by: str
    retried_at: str

    @classmethod
    def of(cls, dead_letter_id: str, receipt: Receipt, by: str) -> Retried:
        error = receipt.error
        return cls(dead_letter_id, receipt.code, receipt.stored, receipt.duplicate,
                   receipt.event_ids, error.reason if error else receipt.reason,
                   error.location if error else None, error.code if error else None,
                   by, datetime.now(UTC).isoformat(timespec="milliseconds"))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "event_ids": list(self.event_ids)}


async def resubmit(letter: Mapping[str, Any], source: DeadLetterSource, intake: Intake,
                   registry: FacilityRegistry, *, by: str, address: str | None = None,
                   audit: AuditLog | None = None) -> Retried:
    """Read ``letter``'s message back from ``hutong.dlq`` and submit it as its facility.

    Raises NotRetryable, LetterGone or DlqUnreachable; each attempt is audited.
    """
    letter_id = str(letter["dead_letter_id"])
    facility = letter.get("facility_id")

    def record(**details: Any) -> None:
        if audit is not None:
            audit.record("dead_letter.retry", principal=by, address=address,
                         dead_letter_id=letter_id, facility=facility, **details)

    try:
        reason = refusal(letter)
        if reason is None and facility not in registry and (
                not registry.open_intake or registry.get(str(facility)) is not None):
            reason = f"facility {facility!r} is not registered any more (or retired)"
        if reason is not None:
            raise NotRetryable(reason)
        found = await asyncio.to_thread(source.fetch, int(letter["dlq_partition"]),
                                        int(letter["dlq_offset"]))
        if found.get("dead_letter_id") != letter_id:
            raise LetterGone(f"the record at the letter's place on {DLQ_TOPIC} is another "
                             "letter")
    except RetryError as exc:
        record(refused=str(exc))
        raise
    payload = bytes(found["payload"])
    peer = Peer("retry", None, str(facility), f"dead-letter retry by {by}")
    kind = content_kind(payload)
    if kind == "cda":
        receipt = await intake.receive_content(payload, peer, adapt_cda)
    elif kind == "json":
        receipt = await intake.receive_content(payload, peer, adapt_json)
    else:
        receipt = await intake.receive(payload, peer)
    retried = Retried.of(letter_id, receipt, by)
    record(outcome=retried.outcome, duplicate=retried.duplicate, stored=retried.stored,
           error_code=retried.error_code, location=retried.location)
    return retried


class RetryLedger:
    """The last retry of each letter this process made (the audit log keeps them all),
    so every console shows it; bounded, the oldest forgotten first. Read from the
    server's worker threads while a retry puts: under a lock."""

    def __init__(self, size: int = 1000) -> None:
        self._size = size
        self._last: OrderedDict[str, Retried] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, retried: Retried) -> None:
        with self._lock:
            self._last[retried.dead_letter_id] = retried
            self._last.move_to_end(retried.dead_letter_id)
            while len(self._last) > self._size:
                self._last.popitem(last=False)

    def get(self, dead_letter_id: str) -> Retried | None:
        with self._lock:
            return self._last.get(dead_letter_id)

    def accepted(self) -> frozenset[str]:
        """The letters whose last retry became events (``AA``, a resend included): they
        no longer count as failures on the monitor."""
        with self._lock:
            return frozenset(k for k, retried in self._last.items() if retried.outcome == "AA")
