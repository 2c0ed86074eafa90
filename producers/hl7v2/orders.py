"""ORM^O01 (v2.3-2.4) and OML^O21 (v2.5+) to canonical ``order`` events (ADR 0001).

One ``order`` event per order group (see :mod:`producers.hl7v2.common`):

    PID [PV1] ................... the patient and the visit the orders are for
      ORC ....................... the order: control code, numbers, orderer
        [TQ1] ................... its timing (v2.5)
        OBR ..................... what is ordered (the test, exam or procedure)
          [SPM] ................. the specimen (v2.5)

Each ORC needs exactly one OBR: the item ordered (OBR-4) is a required field of
the event, and an order detail of another kind (RXO, ODS, ...) is not an
order for a test; both are refused with code 100. The fields:

    order_control        ORC-1, required
    placer/filler no.    ORC-2 / ORC-3, else OBR-2 / OBR-3
    placer_group_number  ORC-4
    order_status         ORC-5
    item_*               OBR-4.1 (required), OBR-4.2, OBR-4.3
    diagnostic_service   OBR-24
    priority             TQ1-9 (v2.5), else ORC-7.6, else OBR-27.6
    specimen_type        SPM-4 (v2.5), else OBR-15.1
    clinical_info        OBR-13
    ordered_at           ORC-9, also the event's occurred_at
    ordering_provider_*  ORC-12, else OBR-16
    ordering_department  ORC-17, else PV1-3.1
    visit_number         PV1-19

The event id position is ``ORC<n>``, ``n`` the ORC's running number in the
message, so replays of the message give the same ids. Anything that makes the
message unusable raises ValidationError with the HL7 table 0357 code (100
segment missing or out of order, 101 required field missing, 102 data type
error) and a location such as ``OBR[2]-4``; never a value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hutong.errors import ValidationError
from producers.hl7v2.common import (
    CLINICIAN_LINK_KEYS,
    HEADER_KEYS,
    OrcGroup,
    Patients,
    make_event,
    orc_groups,
    provider,
    visit_number,
)
from producers.hl7v2.header import control_id_of
from producers.hl7v2.message import Message, Segment
from producers.hl7v2.patient import DEFAULT_PROFILE, PatientProfile
from producers.hl7v2.types import parse_ts

__all__ = ["ORDER_KEYS", "map_order"]

#: Every key of an order event: the ADR 0001 header, then schemas/order.avsc.
ORDER_KEYS = (
    *HEADER_KEYS,
    "order_control", "placer_order_number", "filler_order_number", "placer_group_number",
    "order_status", "item_code", "item_name", "item_system", "diagnostic_service", "priority",
    "specimen_type", "clinical_info", "ordered_at", "ordering_provider_id",
    "ordering_provider_name", "ordering_department", "visit_number",
    *CLINICIAN_LINK_KEYS,
)


def _priority(group: OrcGroup, obr: Segment) -> str | None:
    tq1 = group.first("TQ1")
    from_tq1 = tq1.get(9, 1).strip() if tq1 is not None else ""
    return from_tq1 or group.orc.get(7, 6).strip() or obr.get(27, 6).strip() or None


def _order(group: OrcGroup) -> dict[str, Any]:
    orc, obr, spm = group.orc, group.one("OBR"), group.first("SPM")
    control = orc.get(1).strip()
    if not control:
        raise ValidationError("ORC-1 order control is empty", location=orc.location(1),
                              code="101")
    item = obr.get(4, 1).strip()
    if not item:
        raise ValidationError("OBR-4 universal service identifier is empty",
                              location=obr.location(4), code="101")
    if spm is not None:
        specimen = spm.get(4, 1) or spm.get(4, 2)
    else:
        specimen = obr.get(15, 1, sub=1) or obr.get(15, 1, sub=2)
    provider_id, provider_name = provider(orc, 12)
    if provider_id is None and provider_name is None:
        provider_id, provider_name = provider(obr, 16)
    return {
        "order_control": control,
        "placer_order_number": orc.get(2).strip() or obr.get(2).strip() or None,
        "filler_order_number": orc.get(3).strip() or obr.get(3).strip() or None,
        "placer_group_number": orc.get(4).strip() or None,
        "order_status": orc.get(5).strip() or None,
        "item_code": item,
        "item_name": obr.get(4, 2).strip() or None,
        "item_system": obr.get(4, 3).strip() or None,
        "diagnostic_service": obr.get(24).strip() or None,
        "priority": _priority(group, obr),
        "specimen_type": specimen.strip() or None,
        "clinical_info": obr.repetition_text(13).strip() or None,
        "ordered_at": parse_ts(orc.get(9, 1), orc.location(9)),
        "ordering_provider_id": provider_id,
        "ordering_provider_name": provider_name,
        "ordering_department": group.department(),
        "visit_number": visit_number(group.pv1),
    }


def map_order(
    msg: Message, *, facility_id: str, received_at: datetime,
    profile: PatientProfile = DEFAULT_PROFILE,
) -> list[dict[str, Any]]:
    """One ``order`` event dict per ORC/OBR order group of an ORM^O01 or OML^O21.

    ``facility_id`` is the authenticated facility (or MSH-4.1); ``received_at``
    must be timezone aware. Raises ValidationError when the message cannot give
    complete events; then it yields none at all.
    """
    control_id_of(msg, received_at)
    patients = Patients(profile)
    events: list[dict[str, Any]] = []
    for group in orc_groups(msg):
        fields = _order(group)
        events.append(make_event(
            msg, ORDER_KEYS, fields, facility_id=facility_id, received_at=received_at,
            position=f"ORC{group.orc.index}", event_type="order", patient=patients(group.pid),
            occurred_at=fields["ordered_at"]))
    return events
