"""RDE^O11 and RDS^O13 to canonical ``medication`` events (ADR 0001).

One ``medication`` event per order group (see :mod:`producers.hl7v2.common`):

    PID [PV1] ................... the patient and the visit
      ORC ....................... the order: control code, numbers, prescriber
        [TQ1] [RXO {RXR}] ....... the order as placed (v2.5 TQ1: its timing)
        RXE {TQ1} {RXR} ......... the pharmacy's encoding: drug, dose, timing (RDE)
        RXD {RXR} ............... what was dispensed (RDS; RXE before it optional)

RDE gives action ``prescribe``, or ``cancel`` when ORC-1 stops the order (CA,
DC, OC requests; CR, DR, OD notices); RDS gives ``dispense``. The fields:

    field                prescribe / cancel (RDE)    dispense (RDS)
    drug_*               RXE-2.1 (required) .2 .3    RXD-2.1 (required) .2 .3
    dose, dose_unit      RXE-3, RXE-5                RXE-3, RXE-5 when RXE is sent
    dosage_form          RXE-6                       RXD-6, else RXE-6
    quantity, _unit      RXE-10, RXE-11              RXD-4, RXD-5
    prescription_number  RXE-15                      RXD-7, else RXE-15
    dispensed_at         -                           RXD-3
    route                RXR-1 of the first RXR after RXE (RXD), else the group's first
    frequency            TQ1-3 (v2.5), else RXE-1.2, else ORC-7.2 (the repeat pattern)
    duration             TQ1-6 (quantity and unit, "7d"), else RXE-1.3, else ORC-7.3
    order_control, placer/filler no.   ORC-1, ORC-2, ORC-3
    prescribed_at        ORC-9
    prescriber_*         ORC-12
    department           ORC-17, else PV1-3.1
    visit_number         PV1-19

The TQ1 read is the first after RXE, else the group's first. ``occurred_at`` is
dispensed_at, else prescribed_at. ``duration_days`` is :func:`duration_days` of
the duration. The event id position is ``ORC<n>``, ``n`` the ORC's running
number in the message.

Anything that makes the message unusable raises ValidationError with the HL7
table 0357 code (100 segment missing or out of order, 101 required field
missing, 102 data type error, 200 not RDE or RDS) and a location such as
``RXE[1]-3``; never a value.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from hutong.errors import ValidationError, shown
from producers.hl7v2.common import (
    CLINICIAN_LINK_KEYS,
    HEADER_KEYS,
    OrcGroup,
    Patients,
    code_or_text,
    make_event,
    orc_groups,
    provider,
    visit_number,
)
from producers.hl7v2.header import control_id_of
from producers.hl7v2.message import Message, Segment
from producers.hl7v2.patient import DEFAULT_PROFILE, PatientProfile
from producers.hl7v2.types import parse_nm, parse_ts

__all__ = ["CANCEL_CONTROLS", "MEDICATION_KEYS", "duration_days", "map_medication"]

#: Every key of a medication event: the ADR 0001 header, then schemas/medication.avsc.
MEDICATION_KEYS = (
    *HEADER_KEYS,
    "action", "order_control", "placer_order_number", "filler_order_number",
    "prescription_number", "drug_code", "drug_name", "drug_system", "dose", "dose_unit",
    "dosage_form", "route", "frequency", "duration", "duration_days", "quantity",
    "quantity_unit", "prescribed_at", "dispensed_at", "prescriber_id", "prescriber_name",
    "department", "visit_number",
    *CLINICIAN_LINK_KEYS,
)

#: ORC-1 codes (HL7 table 0119) that make an RDE a cancellation: cancel, discontinue
#: and order-cancelled requests, and their "as requested" / "discontinued" notices.
CANCEL_CONTROLS = frozenset({"CA", "CR", "DC", "DR", "OC", "OD"})

_DAYS = re.compile(r"D(\d{1,4})|(\d{1,4})(?:D|DAYS?|天|日)?", re.ASCII | re.IGNORECASE)


def duration_days(duration: str | None) -> int | None:
    """The number of days ``duration`` says, or None when it does not read as days.

    Understood, ignoring case and spaces: ``D7`` (the HL7 TQ duration form, D then
    the days), ``7D``, ``7 days``, ``7天``, ``7日`` and a bare ``7``, all 7 days;
    up to four digits. Anything else is None, not converted: other units (``W2``,
    ``2wk``, ``H12``, ``1月``), ``INDEF``, fractions (``1.5``), ranges (``5-7``)
    and numbers in words (``七天``, ``一周``).
    """
    if duration is None:
        return None
    match = _DAYS.fullmatch("".join(duration.split()))
    if match is None:
        return None
    return int(match.group(1) or match.group(2))


def _timing(group: OrcGroup, rxe: Segment | None) -> tuple[str | None, str | None]:
    """(frequency, duration) as sent: TQ1, else the TQ field RXE-1, else ORC-7."""
    tq1 = (group.first("TQ1", after=rxe) if rxe is not None else None) or group.first("TQ1")
    frequency = duration = ""
    if tq1 is not None:
        frequency = (tq1.get(3, 1, sub=1) or tq1.get(3, 1, sub=2)).strip()
        if amount := tq1.get(6, 1).strip():
            duration = amount + (tq1.get(6, 2, sub=1) or tq1.get(6, 2, sub=2)).strip()
    for seg, n in ((rxe, 1), (group.orc, 7)):
        if seg is not None:  # TQ.2 interval (its RI.1 repeat pattern), TQ.3 duration
            frequency = frequency or seg.get(n, 2).strip()
            duration = duration or seg.get(n, 3).strip()
    return frequency or None, duration or None


def _drug(seg: Segment) -> dict[str, Any]:
    code = seg.get(2, 1).strip()
    if not code:
        raise ValidationError(f"{seg.name}-2 give code is empty", location=seg.location(2),
                              code="101")
    return {"drug_code": code, "drug_name": seg.get(2, 2).strip() or None,
            "drug_system": seg.get(2, 3).strip() or None}


def _prescribed(rxe: Segment) -> dict[str, Any]:
    """The fields an RXE gives where a dispense would take RXD's."""
    return {
        **_drug(rxe),
        "dosage_form": code_or_text(rxe, 6),
        "quantity": parse_nm(rxe.get(10), rxe.location(10)),
        "quantity_unit": code_or_text(rxe, 11),
        "prescription_number": rxe.get(15).strip() or None,
        "dispensed_at": None,
    }


def _dispensed(rxd: Segment, rxe: Segment | None) -> dict[str, Any]:
    """The same fields from RXD, with the RXE (when sent) for what RXD leaves empty."""
    encoded = _prescribed(rxe) if rxe is not None else {}
    return {
        **_drug(rxd),
        "dosage_form": code_or_text(rxd, 6) or encoded.get("dosage_form"),
        "quantity": parse_nm(rxd.get(4), rxd.location(4)),
        "quantity_unit": code_or_text(rxd, 5),
        "prescription_number": rxd.get(7).strip() or encoded.get("prescription_number"),
        "dispensed_at": parse_ts(rxd.get(3, 1), rxd.location(3)),
    }


def _medication(group: OrcGroup, dispense: bool) -> dict[str, Any]:
    orc = group.orc
    control = orc.get(1).strip()
    if dispense:
        rxe, drug = group.optional("RXE"), group.one("RXD")
        action, supplied = "dispense", _dispensed(drug, rxe)
    else:
        rxe = drug = group.one("RXE")
        action = "cancel" if control.upper() in CANCEL_CONTROLS else "prescribe"
        supplied = _prescribed(rxe)
    route = group.first("RXR", after=drug) or group.first("RXR")
    frequency, duration = _timing(group, rxe)
    prescriber_id, prescriber_name = provider(orc, 12)
    return {
        **supplied,
        "action": action,
        "order_control": control or None,
        "placer_order_number": orc.get(2).strip() or None,
        "filler_order_number": orc.get(3).strip() or None,
        "dose": parse_nm(rxe.get(3), rxe.location(3)) if rxe is not None else None,
        "dose_unit": code_or_text(rxe, 5) if rxe is not None else None,
        "route": code_or_text(route, 1) if route is not None else None,
        "frequency": frequency,
        "duration": duration,
        "duration_days": duration_days(duration),
        "prescribed_at": parse_ts(orc.get(9, 1), orc.location(9)),
        "prescriber_id": prescriber_id,
        "prescriber_name": prescriber_name,
        "department": group.department(),
        "visit_number": visit_number(group.pv1),
    }


def map_medication(
    msg: Message, *, facility_id: str, received_at: datetime,
    profile: PatientProfile = DEFAULT_PROFILE,
) -> list[dict[str, Any]]:
    """One ``medication`` event dict per order group of an RDE^O11 or RDS^O13.

    ``facility_id`` is the authenticated facility (or MSH-4.1); ``received_at``
    must be timezone aware. Raises ValidationError when the message cannot give
    complete events; then it yields none at all.
    """
    control_id_of(msg, received_at)
    kind = msg.message_type.strip().upper()
    if kind not in ("RDE", "RDS"):
        named = shown(kind) if kind else "(empty)"
        raise ValidationError(f"message type {named} is not RDE or RDS", location="MSH-9",
                              code="200")
    patients = Patients(profile)
    events: list[dict[str, Any]] = []
    for group in orc_groups(msg):
        fields = _medication(group, dispense=kind == "RDS")
        events.append(make_event(
            msg, MEDICATION_KEYS, fields, facility_id=facility_id, received_at=received_at,
            position=f"ORC{group.orc.index}", event_type="medication",
            patient=patients(group.pid),
            occurred_at=fields["dispensed_at"] or fields["prescribed_at"]))
    return events
