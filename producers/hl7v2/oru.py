"""ORU^R01 to canonical ``lab-result`` events (ADR 0001): one event per OBX.

The segments are walked once, in order, into groups:

    PID ......................... one patient (a message may carry several)
      [ORC] OBR ................. one order / panel
        OBX {OBX} ............... its results (NTE and others ignored for now)
        [SPM {OBX}] ............. the specimen (v2.5; OBR-15 before); the OBX
                                  about the specimen become events too

:func:`order_groups` does that walk; :mod:`producers.hl7v2.imaging` reads the
same groups as imaging reports.

An OBX's event id is ``event_id(facility, MSH-10, "OBX<n>")`` with ``n`` its
running number in the message, so replays of the message give the same ids.

Anything that makes the message unusable raises ValidationError with the HL7
table 0357 code (100 segment missing or out of order, 101 required field
missing, 102 data type error) and a location such as ``OBX[3]-5``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hutong.errors import ValidationError
from producers.hl7v2.common import (
    CLINICIAN_LINK_KEYS,
    Patients,
    make_event,
    provider,
    visit_number,
    whole_number,
)
from producers.hl7v2.header import control_id_of
from producers.hl7v2.message import Message, Segment
from producers.hl7v2.patient import DEFAULT_PROFILE, PatientProfile
from producers.hl7v2.types import parse_nm, parse_ts

__all__ = ["LAB_RESULT_KEYS", "OrderGroup", "map_oru_r01", "obx_value", "order_groups"]

#: Every key of a lab-result event: the ADR 0001 header, then the lab-result fields.
LAB_RESULT_KEYS = (
    "event_id", "event_type", "facility_id", "source_system", "message_control_id",
    "source_patient_id", "empi_id", "occurred_at", "received_at", "patient",
    "quality_warnings", "map_version", "codes", "unmapped",
    "set_id", "placer_order_number", "filler_order_number", "panel_code", "panel_name",
    "specimen_type", "specimen_collected_at", "test_code", "test_name", "test_system",
    "value_type", "value", "value_numeric", "unit", "reference_range", "abnormal_flags",
    "result_status", "observed_at", "performing_lab", "standard_value", "standard_unit",
    "ordering_provider_id", "ordering_department", "visit_number", "patient_class",
    *CLINICIAN_LINK_KEYS,
)

_TEXT_TYPES = frozenset({"ST", "TX", "FT"})
_CODED_TYPES = frozenset({"CE", "CWE", "CNE", "CF"})
_SN_COMPARATORS = frozenset({"", "=", ">", "<", ">=", "<=", "<>"})
#: "10^9/L" sent without escaping its caret: split into components "10" and "9/L".
_SPLIT_POWER_UNIT = re.compile(r"\d+/", re.ASCII)


@dataclass(slots=True)
class OrderGroup:
    """One OBR with its patient, its ORC and the segments that follow it."""

    pid: Segment
    orc: Segment | None
    obr: Segment
    #: The visit segment after the PID, when the message has one.
    pv1: Segment | None = None
    results: list[Segment] = field(default_factory=list)
    spm: Segment | None = None
    #: The other segments after the OBR, before the next PID, ORC or OBR (NTE, ZDS, ...).
    extra: list[Segment] = field(default_factory=list)


def order_groups(msg: Message) -> list[OrderGroup]:
    """The PID / [ORC] OBR / OBX groups of an ORU^R01, each with at least one OBX.

    Raises ValidationError (100) for a missing PID or OBR, an OBR before any PID, an
    OBX outside a group or an OBR without OBX.
    """
    if msg.segment("PID") is None:
        raise ValidationError("message has no PID segment", location="PID", code="100")
    if msg.segment("OBR") is None:
        raise ValidationError("message has no OBR segment", location="OBR", code="100")
    pid = orc = pv1 = None
    orders: list[OrderGroup] = []
    for seg in msg:
        if seg.name == "PID":
            pid, orc, pv1 = seg, None, None
        elif seg.name == "PV1" and pid is not None and not (orders and orders[-1].pid is pid):
            pv1 = seg
        elif seg.name == "ORC":
            orc = seg
        elif seg.name == "OBR":
            if pid is None:
                raise ValidationError("OBR before any PID", location=seg.location(), code="100")
            orders.append(OrderGroup(pid, orc, seg, pv1))
            orc = None
        elif seg.name == "OBX":
            if not orders or orders[-1].pid is not pid:
                raise ValidationError("OBX outside an order group (no OBR before it)",
                                      location=seg.location(), code="100")
            orders[-1].results.append(seg)
        elif seg.name == "SPM" and orders and orders[-1].spm is None:
            orders[-1].spm = seg
        elif orders and orders[-1].pid is pid and orc is None:
            orders[-1].extra.append(seg)
    for order in orders:
        if not order.results:
            raise ValidationError("order has no OBX result segment",
                                  location=order.obr.location(), code="100")
    return orders


def _order_fields(order: OrderGroup, obr_time: datetime | None) -> dict[str, Any]:
    """The fields every result of an order shares: OBR (ORC as fallback) and specimen."""
    obr, orc, spm = order.obr, order.orc, order.spm
    if spm is not None:
        specimen = spm.get(4, 1) or spm.get(4, 2)
        collected_at = parse_ts(spm.get(17, 1), spm.location(17))
    else:  # OBR-7 is the specimen collection time for specimen-based results
        specimen = obr.get(15, 1, sub=1) or obr.get(15, 1, sub=2)
        collected_at = obr_time
    pv1 = order.pv1
    ordering = provider(orc, 12)[0] if orc is not None else None
    return {
        "ordering_provider_id": ordering or provider(obr, 16)[0],
        "ordering_department": ((pv1.get(3, 1).strip() if pv1 is not None else "")
                                or (orc.get(17, 1).strip() if orc is not None else "")
                                or None),
        "visit_number": visit_number(pv1),
        "patient_class": (pv1.get(2).strip() or None) if pv1 is not None else None,
        "placer_order_number": obr.get(2) or (orc.get(2) if orc else "") or None,
        "filler_order_number": obr.get(3) or (orc.get(3) if orc else "") or None,
        "panel_code": obr.get(4, 1) or None,
        "panel_name": obr.get(4, 2) or None,
        "specimen_type": specimen or None,
        "specimen_collected_at": collected_at,
    }


def _sn(obx: Segment) -> tuple[str, float | None]:
    comparator, first, separator, second = (obx.get(5, i).strip() for i in (1, 2, 3, 4))
    where = obx.location(5)
    if comparator not in _SN_COMPARATORS:
        raise ValidationError("SN comparator must be one of > < >= <= = <>", location=where,
                              code="102")
    number = parse_nm(first, where)
    parse_nm(second, where)
    text = comparator + first + separator + second
    simple = comparator in ("", "=") and not separator and not second
    return text, number if simple else None


def obx_value(obx: Segment, value_type: str) -> tuple[str | None, float | None]:
    """OBX-5 as text, and as a number for NM and plain SN values."""
    reps = obx.repetitions(5)
    if not reps:
        return None, None
    if value_type == "NM":
        text = obx.get(5).strip()
        return text or None, parse_nm(text, obx.location(5))
    if value_type == "SN":
        text, number = _sn(obx)
        return text or None, number
    lines: list[str] = []
    for rep in range(1, len(reps) + 1):
        if value_type in _CODED_TYPES:
            lines.append(obx.get(5, 2, rep) or obx.get(5, 1, rep))
        else:
            lines.append(obx.repetition_text(5, rep))
    text = "\n".join(lines)
    return text if text.strip() else None, None


def _unit(obx: Segment, warnings: list[str]) -> str | None:
    code, text = obx.get(6, 1).strip(), obx.get(6, 2).strip()
    if code == "10" and _SPLIT_POWER_UNIT.match(text):
        warnings.append(f"{obx.location(6)}: unit has an unescaped '^' (read as 10^{text})")
        return f"10^{text}"
    return code or text or None


def _result(obx: Segment, position: int, warnings: list[str]) -> dict[str, Any]:
    """The fields of one OBX; ``position`` stands in for an empty OBX-1."""
    value_type = obx.get(2).strip().upper()
    if not value_type and obx.field(5):
        raise ValidationError("OBX-2 value type is empty but OBX-5 holds a value",
                              location=obx.location(2), code="101")
    test_code = obx.get(3, 1).strip()
    if not test_code:
        raise ValidationError("OBX-3 observation identifier is empty",
                              location=obx.location(3), code="101")
    set_id = whole_number(obx, 1)
    value, numeric = obx_value(obx, value_type)
    return {
        "set_id": position if set_id is None else set_id,
        "test_code": test_code,
        "test_name": obx.get(3, 2) or None,
        "test_system": obx.get(3, 3) or None,
        "value_type": value_type,
        "value": value,
        "value_numeric": numeric,
        "unit": _unit(obx, warnings),
        "reference_range": obx.get(7).strip() or None,
        "abnormal_flags": [f for r in range(1, len(obx.repetitions(8)) + 1)
                           if (f := obx.get(8, 1, r).strip())],
        "result_status": obx.get(11).strip() or None,
        "observed_at": parse_ts(obx.get(14, 1), obx.location(14)),
        "performing_lab": obx.get(23, 1) or obx.get(15, 1) or obx.get(15, 2) or None,
        "standard_value": None,
        "standard_unit": None,
    }


def map_oru_r01(
    msg: Message, *, facility_id: str, received_at: datetime,
    profile: PatientProfile = DEFAULT_PROFILE,
) -> list[dict[str, Any]]:
    """One ``lab-result`` event dict per OBX of an ORU^R01 message.

    ``facility_id`` is the authenticated facility (or MSH-4.1); ``received_at``
    must be timezone aware. Raises ValidationError when the message cannot give
    complete events; then it yields none at all.
    """
    control_id_of(msg, received_at)
    events: list[dict[str, Any]] = []
    patients = Patients(profile)
    for order in order_groups(msg):
        patient = patients(order.pid)
        obr_time = parse_ts(order.obr.get(7, 1), order.obr.location(7))
        shared = _order_fields(order, obr_time)
        for position, obx in enumerate(order.results, start=1):
            warnings: list[str] = []
            result = _result(obx, position, warnings)
            events.append(make_event(
                msg, LAB_RESULT_KEYS, {**shared, **result}, facility_id=facility_id,
                received_at=received_at, position=f"OBX{obx.index}", event_type="lab-result",
                patient=patient, occurred_at=result["observed_at"] or obr_time,
                warnings=warnings))
    return events
