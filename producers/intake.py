"""Where every connector hands a received HL7 v2 message over.

``Intake.receive`` adapts the message, writes the raw envelope and the events
(or the dead letter) to Kafka, waits for the delivery reports, and only then
builds the ACK. A message whose records Kafka did not confirm gets AE with
"resend": nothing was acknowledged that is not durable.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from hutong.errors import DeliveryError, HL7Error
from hutong.metrics import Metrics
from producers.hl7v2.ack import build_ack, build_ack_for_unparseable
from producers.hl7v2.adapter import Adapted, Arrival, adapt, internal_error
from producers.kafka import AsyncProducer, OutRecord
from producers.records import dead_letter_record, records_for
from schemas.registry import EMBEDDED, Resolver

__all__ = ["Intake", "Receipt"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the connector answers: the ACK bytes and what they mean."""

    code: str
    ack: bytes
    event_ids: tuple[str, ...]
    reason: str | None = None


class Intake:
    """Adapt, write durably, acknowledge."""

    def __init__(self, producer: AsyncProducer, metrics: Metrics, ids: Resolver = EMBEDDED,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._producer = producer
        self._ids = ids
        self._metrics = metrics
        self._clock = clock
        self._ack_ids = itertools.count(1)

    async def receive(self, payload: bytes, transport: str, remote: str | None = None) -> Receipt:
        started = time.perf_counter()
        arrival = Arrival(payload, transport, self._clock(), remote)
        adapted = adapt(arrival)
        records = self._records(adapted)
        code = adapted.code
        reason = str(adapted.error) if adapted.error else None
        try:
            await self._producer.send(records)
            if adapted.error is not None:
                self._metrics.dead_letters.labels("producer").inc()
        except DeliveryError as exc:
            log.warning("%s message from %s not stored: %s", transport,
                        adapted.facility_id or "unknown facility", exc)
            code, reason = "AE", "message could not be stored; resend it"
        ack = self._ack(adapted, code, reason)
        self._metrics.observe_message(
            transport, adapted.event_type or "unknown", code, time.perf_counter() - started)
        if adapted.error is not None:
            log.info("%s message rejected (%s) at %s: %s", transport, code,
                     adapted.error.location or "-", adapted.error.reason)
        ids = tuple(e["event_id"] for e in adapted.events) if code == "AA" else ()
        return Receipt(code, ack, ids, reason)

    async def refuse(self, head: bytes, transport: str, remote: str | None,
                     error: HL7Error) -> Receipt:
        """Answer AR to input refused before it was read (oversize or stalled frame); record it.

        The dead letter keeps ``head``, the first bytes, not the whole input.
        """
        adapted = Adapted(arrival=Arrival(head, transport, self._clock(), remote))
        adapted.fail(error, "AR")
        try:
            await self._producer.send(dead_letter_record(adapted, self._ids))
            self._metrics.dead_letters.labels("producer").inc()
        except DeliveryError as exc:
            log.warning("dead letter of refused %s input not stored: %s", transport, exc)
        self._metrics.observe_message(transport, "unknown", "AR", 0.0)
        return Receipt("AR", self._ack(adapted, "AR", error.reason), (), error.reason)

    def _records(self, adapted: Adapted) -> list[OutRecord]:
        """The records to write; an event that does not fit its schema fails the message."""
        if adapted.error is None:
            try:
                return records_for(adapted, self._ids)
            except Exception as exc:
                adapted.events = []
                adapted.fail(internal_error(exc), "AE")
        return dead_letter_record(adapted, self._ids)

    def _ack(self, adapted: Adapted, code: str, reason: str | None) -> bytes:
        control_id = f"ACK{next(self._ack_ids):010d}"
        now = self._clock()
        if adapted.message is None:
            text = build_ack_for_unparseable(adapted.text or adapted.arrival.payload.decode(
                "latin-1"), code, adapted.error, control_id, now)
        else:
            text = build_ack(adapted.message, code, text=reason or "", error=adapted.error
                             if code != "AA" else None, control_id=control_id, now=now)
        return text.encode(adapted.charset or "utf-8", errors="replace")
