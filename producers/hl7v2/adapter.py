"""HL7 v2 bytes in, the records to write and the ACK to give out: pure logic.

``adapt`` turns one received message into an :class:`Adapted`: the raw
envelope, the canonical events, or a dead letter naming why there are none.
Nothing here touches a socket or Kafka; :mod:`producers.intake` does that.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hutong.errors import HL7Error, ValidationError, shown
from producers.hl7v2.adt import ADT_TRIGGERS, map_adt
from producers.hl7v2.charset import decode_message
from producers.hl7v2.imaging import map_mdm_t02, map_oru
from producers.hl7v2.message import Message
from producers.hl7v2.orders import map_order
from producers.hl7v2.patient import DEFAULT_PROFILE, PatientProfile
from producers.hl7v2.pharmacy import map_medication
from producers.ids import event_id, raw_key

__all__ = ["MAPPERS", "Adapted", "Arrival", "adapt", "envelope", "internal_error"]

Mapper = Callable[..., list[dict[str, Any]]]

#: (message type, trigger event) -> (label for metrics, mapper to canonical events). A mapper
#: returns events of any types; each carries its ``event_type``, which picks its topic.
MAPPERS: dict[tuple[str, str], tuple[str, Mapper]] = {
    ("ORU", "R01"): ("oru", map_oru),
    ("MDM", "T02"): ("imaging-report", map_mdm_t02),
    **{("ADT", trigger): ("adt", map_adt) for trigger in ADT_TRIGGERS},
    ("ORM", "O01"): ("order", map_order),
    ("OML", "O21"): ("order", map_order),
    ("RDE", "O11"): ("medication", map_medication),
    ("RDS", "O13"): ("medication", map_medication),
}


@dataclass(frozen=True, slots=True)
class Arrival:
    """What came in, before anything was read from it."""

    payload: bytes
    transport: str  # mllp | http | file
    received_at: datetime
    remote_address: str | None = None


@dataclass(slots=True)
class Adapted:
    """The result of reading one message."""

    arrival: Arrival
    message: Message | None = None
    text: str = ""
    charset: str | None = None
    facility_id: str | None = None
    control_id: str = ""
    event_type: str | None = None
    envelope: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    error: HL7Error | None = None
    #: "AA" when the events can be written, "AE" for content errors, "AR" for rejections.
    code: str = "AA"
    #: What arrived: hl7v2 (answered with ACKs), cda or json (answered over HTTP).
    content_type: str = "hl7v2"

    def fail(self, error: HL7Error, code: str) -> None:
        """Record why this message produces no events."""
        self.error, self.code = error, code

    @property
    def key(self) -> str | None:
        if self.facility_id is None:
            return None
        return raw_key(self.facility_id, self.control_id)

    def dead_letter(self) -> dict[str, Any]:
        """The dead-letter record for a message that produced no events."""
        assert self.error is not None  # noqa: S101 - callers check .error first
        # Same message bytes from the same sender -> same letter: a resend does not double it.
        digest = hashlib.sha256(self.arrival.payload).hexdigest()
        seed = f"{self.key or ''}|{digest}"
        return {
            "dead_letter_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "hutong:dlq:" + seed)),
            "stage": "producer",
            "reason": self.error.reason,
            "error_code": self.error.code,
            "location": self.error.location,
            "facility_id": self.facility_id,
            "source_topic": None,
            "source_partition": None,
            "source_offset": None,
            "original_key": self.key.encode() if self.key else None,
            "payload": self.arrival.payload,
            "failed_at": self.arrival.received_at,
        }


def envelope(adapted: Adapted) -> dict[str, Any]:
    """The raw envelope of an adapted arrival whose facility is known."""
    arrival = adapted.arrival
    assert adapted.facility_id is not None  # noqa: S101
    return {
        "event_id": event_id(adapted.facility_id, adapted.control_id, "raw"),
        "facility_id": adapted.facility_id,
        "transport": arrival.transport,
        "content_type": adapted.content_type,
        "message_control_id": adapted.control_id,
        "remote_address": arrival.remote_address,
        "received_at": arrival.received_at,
        "charset": adapted.charset,
        "payload": arrival.payload,
    }


ProfileLookup = Callable[[str], PatientProfile]


def _default_profile(facility_id: str) -> PatientProfile:
    return DEFAULT_PROFILE


def adapt(arrival: Arrival, profile_for: ProfileLookup = _default_profile) -> Adapted:
    """Read one HL7 v2 message into envelope and events, or into a reason why not.

    ``profile_for`` gives the sending facility's conventions (where it puts the ID
    card number, which PID-5 component holds the name).

    Never raises: a bug met while reading a message becomes an AE with HL7 error 207
    (application internal error) and a dead letter, never a dropped connection.
    """
    adapted = Adapted(arrival=arrival)
    try:
        return _adapt(adapted, profile_for)
    except Exception as exc:
        adapted.events = []
        adapted.fail(internal_error(exc), "AE" if adapted.message is not None else "AR")
        return adapted


def internal_error(exc: Exception) -> HL7Error:
    """An unexpected failure as an HL7 error naming its kind, not the data that caused it."""
    return HL7Error(f"internal error while processing the message ({type(exc).__name__})",
                    code="207")


def _adapt(adapted: Adapted, profile_for: ProfileLookup) -> Adapted:
    arrival = adapted.arrival
    try:
        adapted.text, adapted.charset = decode_message(arrival.payload)
        message = Message.parse(adapted.text, charset=adapted.charset)
    except HL7Error as exc:
        adapted.error, adapted.code = exc, "AR"
        return adapted
    adapted.message = message
    adapted.control_id = message.control_id
    facility = message.sending_facility
    if not facility:
        adapted.error = ValidationError("MSH-4 sending facility is empty", location="MSH-4",
                                        code="101")
        adapted.code = "AR"
        return adapted
    if not adapted.control_id:
        adapted.error = ValidationError("MSH-10 message control id is empty",
                                        location="MSH-10", code="101")
        adapted.code = "AR"
        return adapted
    adapted.facility_id = facility
    adapted.envelope = envelope(adapted)
    mapping = MAPPERS.get((message.message_type, message.trigger))
    if mapping is None:
        adapted.error = ValidationError(
            f"message type {shown(f'{message.message_type}^{message.trigger}')} is not "
            "supported",
            location="MSH-9", code="200")
        adapted.code = "AR"
        return adapted
    adapted.event_type, mapper = mapping
    try:
        adapted.events = mapper(message, facility_id=facility, received_at=arrival.received_at,
                                profile=profile_for(facility))
    except HL7Error as exc:
        adapted.error, adapted.code = exc, "AE"
    return adapted
