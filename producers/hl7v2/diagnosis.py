"""DG1 segments to canonical ``diagnosis`` events (ADR 0001): one event per DG1.

DG1 travels in ADT (A01, A03, A04, A08, ...), in orders and in other messages;
:func:`map_diagnoses` reads it wherever it stands, so any mapper can add the
diagnoses of its message to its own events. Each DG1 belongs to the nearest PID
before it, and takes its visit number from that PID's first PV1:

    field              from
    set_id             DG1-1 (empty: None)
    diagnosis_code     DG1-3.1, required (ICD-10 / GB/T 14396 as a rule)
    diagnosis_name     DG1-3.2, else DG1-4 (the v2.3 description)
    diagnosis_system   DG1-3.3
    diagnosis_type     DG1-6: A admitting, W working, F final, or a local code
    priority           DG1-15: 1 is the principal diagnosis
    diagnosed_at       DG1-5, also the event's occurred_at
    clinician_*        DG1-16, first repetition
    visit_number       PV1-19

A DG1 whose action code (DG1-21, v2.5) is D, delete, still becomes an event (the
schema has no action field), with a quality warning saying so.

The event id position is ``DG1<n>``, ``n`` the DG1's running number in the
message. A DG1 that cannot give a complete event raises ValidationError with the
HL7 table 0357 code (100 segment out of order, 101 required field missing, 102
data type error) and a location such as ``DG1[2]-3``; never a value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hutong.errors import ValidationError
from producers.hl7v2.common import (
    CLINICIAN_LINK_KEYS,
    HEADER_KEYS,
    Patients,
    code_or_text,
    make_event,
    provider,
    visit_number,
    whole_number,
)
from producers.hl7v2.header import control_id_of
from producers.hl7v2.message import Message, Segment
from producers.hl7v2.patient import DEFAULT_PROFILE, PatientProfile
from producers.hl7v2.types import parse_ts

__all__ = ["DIAGNOSIS_KEYS", "map_diagnoses"]

#: Every key of a diagnosis event: the ADR 0001 header, then schemas/diagnosis.avsc.
DIAGNOSIS_KEYS = (
    *HEADER_KEYS,
    "set_id", "diagnosis_code", "diagnosis_system", "diagnosis_name", "diagnosis_type",
    "priority", "diagnosed_at", "clinician_id", "clinician_name", "visit_number",
    *CLINICIAN_LINK_KEYS,
)


def _diagnosis(dg1: Segment, warnings: list[str]) -> dict[str, Any]:
    code = dg1.get(3, 1).strip()
    if not code:
        raise ValidationError("DG1-3 diagnosis code is empty", location=dg1.location(3),
                              code="101")
    if dg1.get(21).strip().upper() == "D":
        warnings.append(f"{dg1.location(21)}: diagnosis action is D (delete)")
    clinician_id, clinician_name = provider(dg1, 16)
    return {
        "set_id": whole_number(dg1, 1),
        "diagnosis_code": code,
        "diagnosis_system": dg1.get(3, 3).strip() or None,
        "diagnosis_name": dg1.get(3, 2).strip() or dg1.get(4).strip() or None,
        "diagnosis_type": code_or_text(dg1, 6),
        "priority": whole_number(dg1, 15),
        "diagnosed_at": parse_ts(dg1.get(5, 1), dg1.location(5)),
        "clinician_id": clinician_id,
        "clinician_name": clinician_name,
    }


def map_diagnoses(
    msg: Message, *, facility_id: str, received_at: datetime,
    profile: PatientProfile = DEFAULT_PROFILE, patients: Patients | None = None,
) -> list[dict[str, Any]]:
    """One ``diagnosis`` event dict per DG1 segment of ``msg``; [] when it has none.

    A mapper adding the diagnoses of its message passes its own ``patients``, so
    each PID is mapped once (``profile`` is then not used). ``received_at`` must be
    timezone aware. Raises ValidationError when a DG1 cannot give a complete
    event; then it yields none at all.
    """
    control_id_of(msg, received_at)
    patients = patients if patients is not None else Patients(profile)
    events: list[dict[str, Any]] = []
    pid: Segment | None = None
    pv1: Segment | None = None
    for seg in msg:
        if seg.name == "PID":
            pid, pv1 = seg, None
        elif seg.name == "PV1" and pv1 is None:
            pv1 = seg
        elif seg.name == "DG1":
            if pid is None:
                raise ValidationError("DG1 before any PID", location=seg.location(),
                                      code="100")
            warnings: list[str] = []
            fields = _diagnosis(seg, warnings)
            fields["visit_number"] = visit_number(pv1)
            events.append(make_event(
                msg, DIAGNOSIS_KEYS, fields, facility_id=facility_id, received_at=received_at,
                position=f"DG1{seg.index}", event_type="diagnosis", patient=patients(pid),
                occurred_at=fields["diagnosed_at"], warnings=warnings))
    return events
