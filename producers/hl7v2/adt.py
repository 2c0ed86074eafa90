"""ADT to canonical ``patient`` and ``encounter`` events (ADR 0001).

One ``patient`` event per message, from PID (event id position ``PAT``), and for
the visit triggers one ``encounter`` event from PV1/PV2 (position ``ENC``) when
the message carries a PV1 with content. A40 (merge) yields one ``patient``
event per PID/MRG pair instead (positions ``PAT1``, ``PAT2``, ...).

The schemas allow fewer actions than HL7 has triggers, so they are mapped:

    trigger  what it is          patient action  encounter action
    A01      admit               admit           admit
    A02      transfer            update          transfer
    A03      discharge           update          discharge
    A04      register            register        register
    A05      pre-admit           register        register
    A08      update              update          update
    A11      cancel admit        update          cancel
    A13      cancel discharge    update          cancel
    A28      add person          register        -
    A31      update person       update          -
    A40      merge               merge           -

``trigger_event`` keeps the trigger itself, so nothing is lost by the mapping.
``occurred_at`` is EVN-6 (event occurred), else for admissions and
registrations PV1-44 and for discharges PV1-45, else EVN-2 (recorded).

Each DG1 segment adds a ``diagnosis`` event (:mod:`producers.hl7v2.diagnosis`,
positions ``DG1<n>``), after the patient and encounter, for every trigger but
A11: the diagnoses of a cancelled admission are not news, and A40 has no DG1.

Anything that makes the message unusable raises ValidationError with the HL7
table 0357 code (100 segment missing, 101 required field missing, 102 data type
error) and a location such as ``PV1[1]-44``; never a value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hutong.errors import ValidationError, shown
from producers.hl7v2.common import (
    CLINICIAN_LINK_KEYS,
    HEADER_KEYS,
    Patients,
    code_or_text,
    person_name,
)
from producers.hl7v2.diagnosis import map_diagnoses
from producers.hl7v2.header import control_id_of, event_header
from producers.hl7v2.message import Message, Segment
from producers.hl7v2.patient import DEFAULT_PROFILE, PatientProfile, map_patient
from producers.hl7v2.types import parse_ts

__all__ = ["ADT_TRIGGERS", "ENCOUNTER_KEYS", "PATIENT_EVENT_KEYS", "map_adt"]

#: Every key of a patient event: the ADR 0001 header, then schemas/patient.avsc.
PATIENT_EVENT_KEYS = (
    *HEADER_KEYS,
    "action", "trigger_event", "merged_source_patient_id", "ethnic_group", "marital_status",
    "nationality", "occupation", "deceased", "deceased_at",
)

#: Every key of an encounter event: the ADR 0001 header, then schemas/encounter.avsc.
ENCOUNTER_KEYS = (
    *HEADER_KEYS,
    "action", "trigger_event", "visit_number", "patient_class", "department_code",
    "department_name", "ward", "room", "bed", "prior_location", "attending_doctor_id",
    "attending_doctor_name", "admit_source", "admit_reason", "admitted_at", "discharged_at",
    "discharge_disposition",
    *CLINICIAN_LINK_KEYS,
)

#: Trigger -> (patient action, encounter action or None when the trigger has no visit).
ADT_TRIGGERS: dict[str, tuple[str, str | None]] = {
    "A01": ("admit", "admit"),
    "A02": ("update", "transfer"),
    "A03": ("update", "discharge"),
    "A04": ("register", "register"),
    "A05": ("register", "register"),
    "A08": ("update", "update"),
    "A11": ("update", "cancel"),
    "A13": ("update", "cancel"),
    "A28": ("register", None),
    "A31": ("update", None),
    "A40": ("merge", None),
}

_ADMIT_TIME_TRIGGERS = frozenset({"A01", "A04"})
_DISCHARGE_TIME_TRIGGERS = frozenset({"A03"})
_INPATIENT_CLASSES = frozenset({"I"})
_DECEASED = {"Y": True, "N": False}
#: Triggers whose DG1 segments give no diagnosis events (see the module docstring).
_NO_DIAGNOSIS_TRIGGERS = frozenset({"A11"})


def _deceased(pid: Segment, warnings: list[str]) -> bool | None:
    flag = pid.get(30).strip().upper()
    if not flag:
        return None
    if flag not in _DECEASED:
        warnings.append(f"{pid.location(30)}: death indicator is not Y or N")
        return None
    return _DECEASED[flag]


def _patient_fields(pid: Segment, warnings: list[str]) -> dict[str, Any]:
    return {
        "ethnic_group": code_or_text(pid, 22),
        "marital_status": code_or_text(pid, 16),
        "nationality": code_or_text(pid, 28),
        "occupation": None,
        "deceased": _deceased(pid, warnings),
        "deceased_at": parse_ts(pid.get(29, 1), pid.location(29)),
    }


def _location_line(seg: Segment, n: int) -> str | None:
    parts = [seg.get(n, c).strip() for c in (1, 2, 3)]
    return "/".join(p for p in parts if p) or None


def _has_visit(pv1: Segment) -> bool:
    """False for a placeholder PV1 (``PV1|1|N``): no visit number, class or location."""
    patient_class = pv1.get(2).strip().upper()
    return bool(pv1.get(19, 1).strip() or pv1.get(3, 1).strip()
                or patient_class not in ("", "N"))


def _encounter_fields(pv1: Segment, pv2: Segment | None) -> dict[str, Any]:
    patient_class = pv1.get(2).strip() or None
    point_of_care = pv1.get(3, 1).strip()
    service_code = pv1.get(10, 1).strip()
    inpatient = (patient_class or "").upper() in _INPATIENT_CLASSES
    if (inpatient and service_code) or not point_of_care:
        department_code = service_code or None  # the ward is in PV1-3, the service in PV1-10
        department_name = pv1.get(10, 2).strip() or None
    else:
        department_code = point_of_care
        department_name = pv1.get(3, 9).strip() or None
    return {
        "visit_number": pv1.get(19, 1).strip() or None,
        "patient_class": patient_class,
        "department_code": department_code,
        "department_name": department_name,
        "ward": (point_of_care or None) if inpatient else None,
        "room": pv1.get(3, 2).strip() or None,
        "bed": pv1.get(3, 3).strip() or None,
        "prior_location": _location_line(pv1, 6),
        "attending_doctor_id": pv1.get(7, 1).strip() or None,
        "attending_doctor_name": person_name(pv1.get(7, 2), pv1.get(7, 3)),
        "admit_source": pv1.get(14, 1).strip() or None,
        "admit_reason": (pv2.get(3, 2).strip() or pv2.get(3, 1).strip() or None)
        if pv2 is not None else None,
        "admitted_at": parse_ts(pv1.get(44, 1), pv1.location(44)),
        "discharged_at": parse_ts(pv1.get(45, 1), pv1.location(45)),
        "discharge_disposition": pv1.get(36, 1).strip() or None,
    }


def _merge_pairs(msg: Message) -> list[tuple[Segment, Segment]]:
    """A40's {PID [PD1] MRG [PV1]} groups, in order."""
    pairs: list[tuple[Segment, Segment]] = []
    pid: Segment | None = None
    for seg in msg:
        if seg.name == "PID":
            if pid is not None:
                raise ValidationError(f"{pid.location()} has no MRG segment after it",
                                      location="MRG", code="100")
            pid = seg
        elif seg.name == "MRG":
            if pid is None:
                raise ValidationError("MRG before any PID", location=seg.location(),
                                      code="100")
            pairs.append((pid, seg))
            pid = None
    if pid is not None:
        raise ValidationError(f"{pid.location()} has no MRG segment after it",
                              location="MRG", code="100")
    return pairs


def _occurred_at(msg: Message, trigger: str, visit: dict[str, Any] | None) -> datetime | None:
    evn = msg.segment("EVN")
    if evn is not None and (at := parse_ts(evn.get(6, 1), evn.location(6))):
        return at
    if visit is not None:
        if trigger in _ADMIT_TIME_TRIGGERS and visit["admitted_at"]:
            return visit["admitted_at"]  # type: ignore[no-any-return]
        if trigger in _DISCHARGE_TIME_TRIGGERS and visit["discharged_at"]:
            return visit["discharged_at"]  # type: ignore[no-any-return]
    return parse_ts(evn.get(2, 1), evn.location(2)) if evn is not None else None


def map_adt(
    msg: Message, *, facility_id: str, received_at: datetime,
    profile: PatientProfile = DEFAULT_PROFILE,
) -> list[dict[str, Any]]:
    """The ``patient`` (and ``encounter``, ``diagnosis``) event dicts of an ADT message.

    ``facility_id`` is the authenticated facility (or MSH-4.1); ``received_at``
    must be timezone aware. Raises ValidationError when the message cannot give
    complete events; then it yields none at all.
    """
    control_id_of(msg, received_at)
    trigger = msg.trigger.strip().upper()
    if trigger not in ADT_TRIGGERS:
        named = shown(trigger) if trigger else "(empty)"
        raise ValidationError(f"ADT trigger {named} is not supported", location="MSH-9",
                              code="200")
    patient_action, encounter_action = ADT_TRIGGERS[trigger]
    pid = msg.segment("PID")
    if pid is None:
        raise ValidationError("message has no PID segment", location="PID", code="100")

    def header(position: str, event_type: str, patient: dict[str, Any], warnings: list[str],
               occurred_at: datetime | None) -> dict[str, Any]:
        event = event_header(msg, facility_id=facility_id, position=position,
                             event_type=event_type, patient=patient, warnings=warnings,
                             occurred_at=occurred_at, received_at=received_at)
        event["action"] = patient_action if event_type == "patient" else encounter_action
        event["trigger_event"] = trigger
        return event

    if trigger == "A40":
        occurred_at = _occurred_at(msg, trigger, None)
        events = []
        for n, (survivor, mrg) in enumerate(_merge_pairs(msg), start=1):
            merged = mrg.get(1, 1).strip()
            if not merged:
                raise ValidationError("MRG-1 prior patient identifier is empty",
                                      location=mrg.location(1), code="101")
            patient, warnings = map_patient(survivor, profile)
            event = header(f"PAT{n}", "patient", patient, warnings, occurred_at)
            event.update(_patient_fields(survivor, event["quality_warnings"]))
            event["merged_source_patient_id"] = merged
            events.append({key: event[key] for key in PATIENT_EVENT_KEYS})
        return events

    patients = Patients(profile)
    patient, warnings = patients(pid)
    pv1 = msg.segment("PV1")
    visit = None
    if encounter_action is not None and pv1 is not None and _has_visit(pv1):
        visit = _encounter_fields(pv1, msg.segment("PV2"))
    occurred_at = _occurred_at(msg, trigger, visit)
    person = header("PAT", "patient", patient, warnings, occurred_at)
    person.update(_patient_fields(pid, person["quality_warnings"]))
    person["merged_source_patient_id"] = None
    events = [{key: person[key] for key in PATIENT_EVENT_KEYS}]
    if visit is not None:
        encounter = header("ENC", "encounter", patient, warnings, occurred_at)
        encounter.update(visit)
        events.append({key: encounter[key] for key in ENCOUNTER_KEYS})
    if trigger not in _NO_DIAGNOSIS_TRIGGERS:
        events += map_diagnoses(msg, facility_id=facility_id, received_at=received_at,
                                patients=patients)
    return events
