"""The part every canonical event from an HL7 v2 message shares (ADR 0001 header)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hutong.errors import ValidationError
from producers.hl7v2.message import Message
from producers.ids import event_id

__all__ = ["control_id_of", "event_header"]


def control_id_of(msg: Message, received_at: datetime) -> str:
    """MSH-10, checked, for a mapper about to build events; ``received_at`` must be aware."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone aware")
    if not msg.control_id:
        raise ValidationError("MSH-10 message control id is empty", location="MSH-10",
                              code="101")
    return msg.control_id


def event_header(msg: Message, *, facility_id: str, position: str, event_type: str,
                 patient: dict[str, Any], warnings: list[str], occurred_at: datetime | None,
                 received_at: datetime) -> dict[str, Any]:
    """The ADR 0001 header of one event; ``position`` makes its id unique in the message."""
    return {
        "event_id": event_id(facility_id, msg.control_id, position),
        "event_type": event_type,
        "facility_id": facility_id,
        "source_system": msg.sending_application or None,
        "message_control_id": msg.control_id,
        "source_patient_id": patient["source_patient_id"],
        "empi_id": None,
        "occurred_at": occurred_at,
        "received_at": received_at,
        "patient": {**patient, "identifiers": [dict(i) for i in patient["identifiers"]]},
        "quality_warnings": list(warnings),
        "map_version": None,
        "codes": [],
        "unmapped": [],
        "practitioner_id": None,
        "practitioner_status": None,
    }
