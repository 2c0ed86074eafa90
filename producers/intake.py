"""Where every connector hands a received HL7 v2 message over.

``Intake.receive`` reads the message, checks that the peer may send for the
facility it names, recognises a resend, writes the raw envelope and the events
(or the dead letter) to Kafka, waits for the delivery reports, and only then
builds the acknowledgements (original or enhanced mode, see
:mod:`producers.hl7v2.ackmode`). Nothing is acknowledged that is not durable:
records Kafka did not confirm give AE (original) or CE (enhanced), "resend".

A refused sender (unknown facility, wrong address, certificate naming another
facility) gets AR/CR and an audit record; nothing of its message is stored.

A facility over its rate (``rate_limit``, per facility: each MLLP message, each HTTP
request through :meth:`Intake.admit`) gets AR/CR "resend later" (HTTP 429), counted
under the reason ``rate_limited`` and audited (itself rate-limited per address); nothing
of the message is stored, and every other facility keeps its own allowance.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.facilities import FacilityRegistry, Peer, Refusal
from hutong.audit import AuditLog
from hutong.errors import DeliveryError, HL7Error, ValidationError
from hutong.metrics import Metrics
from hutong.metrics.labels import (
    UNREGISTERED,
    FacilityLabels,
    message_type,
    refusal_reason,
    reject_reason,
)
from hutong.ratelimit import KeyedLimiter
from producers.hl7v2.ack import build_ack, build_ack_for_unparseable
from producers.hl7v2.ackmode import acknowledgements
from producers.hl7v2.adapter import Adapted, Arrival, adapt, internal_error
from producers.kafka import AsyncProducer, OutRecord
from producers.receipts import Accepted, ReceiptLog
from producers.records import checked_size, dead_letter_record, records_for
from schemas.registry import EMBEDDED, Resolver

__all__ = ["Intake", "Receipt"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the connector answers: the ACK frames, in order, and what they mean."""

    #: The application outcome: AA (events), AE (content error or not stored), AR (refused).
    code: str
    acks: tuple[bytes, ...]
    event_ids: tuple[str, ...]
    reason: str | None = None
    #: Kafka confirmed the records (events or dead letter); False for refusals and failures.
    stored: bool = False
    #: A resend of a message already accepted: ACKed again, nothing written.
    duplicate: bool = False
    #: Refused before anything was stored (unauthorised); the audit log has it.
    unauthorised: bool = False
    #: Why there are no events (segment or path, HL7 table 0357 code), when there are none.
    error: HL7Error | None = None

    @property
    def ack(self) -> bytes:
        """The first ACK frame (empty when the sender asked for none)."""
        return self.acks[0] if self.acks else b""


class Intake:
    """Authorise, adapt, write durably, acknowledge."""

    def __init__(self, producer: AsyncProducer, metrics: Metrics, ids: Resolver = EMBEDDED, *,
                 registry: FacilityRegistry | None = None, receipts: ReceiptLog | None = None,
                 audit: AuditLog | None = None, audit_limit: KeyedLimiter | None = None,
                 rate_limit: KeyedLimiter | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._producer = producer
        self._ids = ids
        self._metrics = metrics
        self._registry = registry if registry is not None else FacilityRegistry(
            open_intake=True)
        self._receipts = receipts
        self._audit = audit
        # Refusals are recorded per source address at most 20 at once and 1/s after
        # that, so a hostile peer cannot fill the disk; the next record counts the rest.
        self._audit_limit = audit_limit if audit_limit is not None else KeyedLimiter(
            rate=1.0, burst=20)
        self._rate_limit = rate_limit
        self._clock = clock
        self._facility = FacilityLabels(self._registry, open_intake=self._registry.open_intake)
        self._ack_ids = itertools.count(1)
        self._in_flight: dict[tuple[str, str], asyncio.Event] = {}

    async def receive(self, payload: bytes, peer: Peer) -> Receipt:
        """An HL7 v2 message: its receipt carries the ACK frames the sender is owed."""
        started = time.perf_counter()
        arrival = Arrival(payload, peer.transport, self._clock(), peer.address)
        adapted = adapt(arrival, self._registry.profile)
        message = adapted.message
        refusal = self._authorise(adapted, peer)
        if refusal is not None:
            return self._refused(adapted, peer, refusal, started)
        if _is_ack(adapted):
            # A sender's commit ACK to our application ACK: nothing to store or answer.
            return Receipt("AA", (), (), stored=True)
        if peer.transport in ("mllp", "mllps"):  # HTTP requests are counted at the door
            reason = self._over_rate(peer, peer.facility_id or adapted.facility_id)
            if reason is not None:
                return self._throttled(adapted, peer, reason, started)
        digest = message.content_digest() if message is not None else ""
        return await self._accept(adapted, digest, started)

    async def receive_content(self, payload: bytes, peer: Peer,
                              read: Callable[[Adapted], Adapted]) -> Receipt:
        """A document or JSON submission from an authenticated facility (HTTP, files).

        ``read`` fills the Adapted (content type, control id, envelope, events or
        error) and must not raise for bad input. No ACK frames: the caller answers.
        """
        started = time.perf_counter()
        adapted = Adapted(arrival=Arrival(payload, peer.transport, self._clock(), peer.address),
                          facility_id=peer.facility_id)
        if peer.facility_id is None:
            return self._refused(adapted, peer, Refusal("no authenticated facility"), started)
        try:
            read(adapted)
        except Exception as exc:
            adapted.events = []
            adapted.fail(internal_error(exc), "AE")
        if adapted.envelope is None:  # unreadable before it named itself: dead letter only
            return await self._store(adapted, started)
        return await self._accept(adapted, hashlib.sha256(payload).hexdigest(), started)

    async def _accept(self, adapted: Adapted, digest: str, started: float) -> Receipt:
        """Store unless it is a resend; refuse a control id reused for other content."""
        if adapted.error is not None or self._receipts is None or adapted.facility_id is None:
            return await self._store(adapted, started)
        control = adapted.control_id if adapted.content_type == "hl7v2" else (
            f"{adapted.content_type}:{adapted.control_id}")
        key = (adapted.facility_id, control)
        async with self._exclusive(key):
            previous = self._receipts.get(*key)
            if previous is not None and previous.digest == digest:
                return self._resent(adapted, previous, started)
            if previous is not None:
                adapted.events = []
                where = "MSH-10" if adapted.content_type == "hl7v2" else "id"
                adapted.fail(ValidationError(
                    "message control id already used by this facility for a different "
                    "message", location=where, code="205"), "AR")
            receipt = await self._store(adapted, started)
            if receipt.code == "AA":
                self._receipts.put(*key, Accepted(digest, receipt.event_ids))
            return receipt

    async def refuse(self, head: bytes, peer: Peer, error: HL7Error, *,
                     kind: str = "framing") -> Receipt:
        """Answer AR to input refused before it was read (oversize or stalled frame).

        A dead letter keeps ``head``, the first bytes, not the whole input; from a
        sender no registered facility may use, only an audit record is kept. ``kind``
        is the metrics' reason: ``oversize`` or ``framing``.
        """
        started = time.perf_counter()
        adapted = Adapted(arrival=Arrival(head, peer.transport, self._clock(), peer.address))
        adapted.fail(error, "AR")
        if not self._registry.may_connect(peer):
            return self._refused(adapted, peer, Refusal(error.reason), started)
        stored = await self._send(dead_letter_record(adapted, self._ids), adapted)
        self._count(adapted, "AR", started, kind, facility=peer.facility_id)
        return Receipt("AR", self._acks(adapted, "AR", error.reason, stored=stored), (),
                       error.reason, stored=stored)

    def admit(self, peer: Peer) -> str | None:
        """Take one request of ``peer``'s facility from its rate allowance (HTTP ingest);
        None when it may go on, else why not (recorded: metric and audit)."""
        reason = self._over_rate(peer, peer.facility_id)
        if reason is not None:
            self.refuse_connection(peer, reason, status=429)
        return reason

    def _over_rate(self, peer: Peer, facility: str | None) -> str | None:
        limiter = self._rate_limit
        if limiter is None or facility is None or limiter.allow(facility):
            return None
        return (f"rate limit: facility {facility!r} sends more than {limiter.rate:g} messages "
                f"per second; resend later")

    def _throttled(self, adapted: Adapted, peer: Peer, reason: str,
                   started: float) -> Receipt:
        """AR (CR in enhanced mode) "resend later"; counted and audited, nothing stored."""
        if self._record("intake.throttled", peer, credential=peer.credential,
                        facility=adapted.facility_id, reason=reason):
            log.warning("%s message from %s refused: %s", peer.transport,
                        peer.address or "-", reason)
        self._count(adapted, "AR", started, "rate_limited",
                    facility=peer.facility_id or adapted.facility_id)
        error = HL7Error(reason, location="MSH-4", code="207")
        adapted.events = []
        adapted.fail(error, "AR")
        return Receipt("AR", self._acks(adapted, "AR", reason, stored=False), (), reason,
                       error=error)

    async def receive_forwarded(self, peer: Peer, records: Sequence[OutRecord]) -> None:
        """Events a platform below forwarded (federation), written once Kafka confirmed
        them (raises DeliveryError otherwise); counted and audited per batch."""
        await self._producer.send(records)
        self._metrics.federation_received.labels(peer.facility_id or "-").inc(len(records))
        if self._audit is not None:
            self._audit.record("federation.receive", transport=peer.transport,
                               address=peer.address, facility=peer.facility_id,
                               events=len(records))

    def refuse_connection(self, peer: Peer, reason: str, **details: object) -> None:
        """Record input turned away before any message was read: a failed TLS handshake,
        an unknown API key, an oversized or empty HTTP body."""
        self._metrics.refusal(self._facility(peer.facility_id),
                              refusal_reason(details.get("status")))
        if peer.facility_id is not None:
            details.update(facility=peer.facility_id, credential=peer.credential)
        if self._record("connection.refused", peer, reason=reason, **details):
            log.warning("%s connection from %s refused: %s", peer.transport,
                        peer.address or "-", reason)

    def _record(self, action: str, peer: Peer, **details: object) -> bool:
        """Audit a refusal unless this address is over its rate; False when left out."""
        key = (peer.transport, peer.address)
        if not self._audit_limit.allow(key):
            self._metrics.audit_suppressed.labels(action).inc()
            return False
        if self._audit is not None:
            left_out = self._audit_limit.take_denied(key)
            self._audit.record(action, transport=peer.transport, address=peer.address,
                               **details, **({"left_out": left_out} if left_out else {}))
        return True

    def _authorise(self, adapted: Adapted, peer: Peer) -> Refusal | None:
        if adapted.facility_id is not None:
            return self._registry.authorize(adapted.facility_id, peer)
        if not self._registry.may_connect(peer):  # unreadable, from nobody we know
            return Refusal(adapted.error.reason if adapted.error else "unreadable message")
        return None

    def _refused(self, adapted: Adapted, peer: Peer, refusal: Refusal,
                 started: float) -> Receipt:
        """AR (CR in enhanced mode) and an audit record; nothing of the message stored."""
        if self._record("intake.refused", peer, credential=peer.credential,
                        facility=adapted.facility_id, control_id=adapted.control_id or None,
                        reason=refusal.reason):
            log.warning("%s message from %s refused: %s", peer.transport,
                        peer.address or "-", refusal.reason)
        self._metrics.refused.labels(peer.transport).inc()
        # Counted under the facility the connection proved, never the one MSH-4 claims:
        # a stranger claiming a real facility must not raise that facility's error rate.
        self._count(adapted, "AR", started, "unauthorised",
                    facility=peer.facility_id or UNREGISTERED)
        error = HL7Error(f"not authorised: {refusal.reason}", location="MSH-4", code="207")
        adapted.events = []
        adapted.fail(error, "AR")
        return Receipt("AR", self._acks(adapted, "AR", error.reason, stored=False), (),
                       error.reason, unauthorised=True, error=error)

    def _resent(self, adapted: Adapted, previous: Accepted, started: float) -> Receipt:
        log.info("%s message %s from %s is a resend: ACKed again, not stored twice",
                 adapted.arrival.transport, adapted.control_id, adapted.facility_id)
        self._metrics.resends.labels(adapted.arrival.transport).inc()
        self._count(adapted, "AA", started, None)
        return Receipt("AA", self._acks(adapted, "AA", None, stored=True), previous.event_ids,
                       stored=True, duplicate=True)

    async def _store(self, adapted: Adapted, started: float) -> Receipt:
        records = self._records(adapted)
        code = adapted.code
        reason = str(adapted.error) if adapted.error else None
        stored = await self._send(records, adapted)
        if not stored:
            code, reason = "AE", "message could not be stored; resend it"
        acks = self._acks(adapted, code, reason, stored=stored)
        transport = adapted.arrival.transport
        error = adapted.error
        self._count(adapted, code, started, reject_reason(
            code, stored=stored, error_code=error.code if error else None,
            error_text=error.reason if error else "",
            readable=adapted.message is not None or adapted.content_type != "hl7v2"),
            events=len(adapted.events) if code == "AA" else 0)
        if adapted.error is not None:
            log.info("%s message rejected (%s) at %s: %s", transport, code,
                     adapted.error.location or "-", adapted.error.reason)
        ids = tuple(e["event_id"] for e in adapted.events) if code == "AA" else ()
        return Receipt(code, acks, ids, reason, stored=stored, error=adapted.error)

    def _count(self, adapted: Adapted, code: str, started: float, reason: str | None, *,
               facility: str | None = None, events: int = 0) -> None:
        """One answered message in the metrics (`hutong.metrics.labels` bounds the labels)."""
        message = adapted.message
        self._metrics.message(
            transport=adapted.arrival.transport,
            facility=self._facility(facility or adapted.facility_id),
            message_type=message_type(adapted.content_type,
                                      message.message_type if message is not None else None),
            event_type=adapted.event_type or "unknown", outcome=code, reason=reason,
            size=len(adapted.arrival.payload), events=events,
            seconds=time.perf_counter() - started)

    async def _send(self, records: list[OutRecord], adapted: Adapted) -> bool:
        try:
            await self._producer.send(records)
        except DeliveryError as exc:
            log.warning("%s message from %s not stored: %s", adapted.arrival.transport,
                        adapted.facility_id or "unknown facility", exc)
            return False
        if adapted.error is not None:
            self._metrics.dead_letters.labels("producer").inc()
        return True

    @asynccontextmanager
    async def _exclusive(self, key: tuple[str, str]) -> AsyncIterator[None]:
        """One message per (facility, control id) at a time, so two copies sent at once on
        two connections are not both taken for the first."""
        while (busy := self._in_flight.get(key)) is not None:
            await busy.wait()
        done = self._in_flight[key] = asyncio.Event()
        try:
            yield
        finally:
            del self._in_flight[key]
            done.set()

    def _records(self, adapted: Adapted) -> list[OutRecord]:
        """The records to write; an event that does not fit its schema, or a record too large
        for Kafka, fails the message."""
        if adapted.error is None:
            try:
                return checked_size(records_for(adapted, self._ids))
            except HL7Error as exc:  # too large to store: the reason says so
                adapted.events = []
                adapted.fail(exc, "AE")
            except Exception as exc:
                adapted.events = []
                adapted.fail(internal_error(exc), "AE")
        return dead_letter_record(adapted, self._ids)

    def _acks(self, adapted: Adapted, outcome: str, reason: str | None, *,
              stored: bool) -> tuple[bytes, ...]:
        """Every ACK frame the sender is owed, encoded in its character set."""
        if adapted.content_type != "hl7v2" or _is_ack(adapted):
            return ()  # an ACK is never answered, not even a refused one
        now = self._clock()
        frames: list[bytes] = []
        mode = self._registry.ack_mode(adapted.facility_id)
        for code in acknowledgements(adapted.message, outcome, stored=stored, mode=mode):
            control_id = f"ACK{next(self._ack_ids):010d}"
            error = adapted.error if code not in ("AA", "CA") else None
            text = reason if code not in ("AA", "CA") else None
            if adapted.message is None:
                raw = adapted.text or adapted.arrival.payload.decode("latin-1")
                ack = build_ack_for_unparseable(raw, code, error, control_id, now)
            else:
                ack = build_ack(adapted.message, code, text=text or "", error=error,
                                control_id=control_id, now=now)
            frames.append(ack.encode(adapted.charset or "utf-8", errors="replace"))
        return tuple(frames)


def _is_ack(adapted: Adapted) -> bool:
    return adapted.message is not None and adapted.message.message_type == "ACK"
