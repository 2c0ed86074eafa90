"""Pieces several HL7 v2 mappers share: people, visits, order groups, event assembly.

ORM^O01, OML^O21, RDE^O11 and RDS^O13 repeat one shape, an *order group*:

    PID [PD1] [PV1 [PV2]] ...     the patient (and visit) the orders are for
      ORC ......................  one order: control code, numbers, orderer
        [TQ1] OBR|RXE|RXD ...     its detail, up to the next ORC or PID

:func:`orc_groups` cuts a message into those groups; each mapper then asks a
group for the segments it needs (:meth:`OrcGroup.one`, :meth:`OrcGroup.optional`,
:meth:`OrcGroup.first`).
Errors use the HL7 table 0357 codes (100 segment missing or out of order, 102
data type error) and name the place, never a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hutong.errors import ValidationError
from producers.hl7v2.header import event_header
from producers.hl7v2.message import Message, Segment
from producers.hl7v2.patient import DEFAULT_PROFILE, PatientProfile, is_hanzi, map_patient

__all__ = [
    "CLINICIAN_LINK_KEYS",
    "HEADER_KEYS",
    "OrcGroup",
    "Patients",
    "code_or_text",
    "make_event",
    "orc_groups",
    "person_name",
    "provider",
    "visit_number",
    "whole_number",
]

#: The ADR 0001 header keys every canonical event starts with, in schema order.
HEADER_KEYS = (
    "event_id", "event_type", "facility_id", "source_system", "message_control_id",
    "source_patient_id", "empi_id", "occurred_at", "received_at", "patient",
    "quality_warnings", "map_version", "codes", "unmapped",
)
#: The last keys of every event that names a clinician, set by the stream worker
#: (streams.practitioners); None until then.
CLINICIAN_LINK_KEYS = ("practitioner_id", "practitioner_status")


def code_or_text(seg: Segment, n: int) -> str | None:
    """A coded field (CE, CWE, IS) as one value: its code, else its text."""
    return (seg.get(n, 1).strip() or seg.get(n, 2).strip()) or None


def person_name(family: str, given: str) -> str | None:
    """A name from its family and given parts: 李四 joined, "Wang Xiaohong" spaced."""
    family, given = family.strip(), given.strip()
    if is_hanzi(family + given):
        return (family + given) or None
    return f"{family} {given}".strip() or None


def provider(seg: Segment, n: int) -> tuple[str | None, str | None]:
    """An XCN field's first repetition as (id XCN.1, name from XCN.2 and XCN.3)."""
    return seg.get(n, 1).strip() or None, person_name(seg.get(n, 2), seg.get(n, 3))


def visit_number(pv1: Segment | None) -> str | None:
    """PV1-19.1, the facility's visit number (门诊号/住院号)."""
    return (pv1.get(19, 1).strip() or None) if pv1 is not None else None


#: The largest whole number an event field holds (an Avro ``int``).
MAX_WHOLE_NUMBER = 2**31 - 1


def whole_number(seg: Segment, n: int) -> int | None:
    """A field holding a whole number (SI, or NM used as a rank): None when empty; 102 when
    it is not one, or too large for the event field (an Avro ``int``)."""
    text = seg.get(n).strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise ValidationError(f"{seg.name}-{n} is not a whole number", location=seg.location(n),
                              code="102")
    if len(text) > 10 or int(text) > MAX_WHOLE_NUMBER:
        raise ValidationError(f"{seg.name}-{n} is too large (at most {MAX_WHOLE_NUMBER})",
                              location=seg.location(n), code="102")
    return int(text)


class Patients:
    """Each PID segment of a message mapped once (:func:`map_patient`), warnings included.

    Mappers that add events of another type for the same message (diagnoses for an
    ADT) share one instance, so a PID is read, and its warnings found, only once.
    """

    __slots__ = ("_mapped", "profile")

    def __init__(self, profile: PatientProfile = DEFAULT_PROFILE) -> None:
        self.profile = profile
        self._mapped: dict[int, tuple[dict[str, Any], list[str]]] = {}

    def __call__(self, pid: Segment) -> tuple[dict[str, Any], list[str]]:
        """The PatientIdentity dict and the warnings of ``pid``; raises like map_patient."""
        if pid.index not in self._mapped:
            self._mapped[pid.index] = map_patient(pid, self.profile)
        return self._mapped[pid.index]


@dataclass(slots=True)
class OrcGroup:
    """One ORC and the segments after it, up to the next ORC or PID."""

    pid: Segment
    pv1: Segment | None
    orc: Segment
    segments: list[Segment] = field(default_factory=list)

    def first(self, name: str, after: Segment | None = None) -> Segment | None:
        """The first segment called ``name`` in the group (after ``after``, if given)."""
        start = 0 if after is None else self.segments.index(after) + 1
        return next((s for s in self.segments[start:] if s.name == name), None)

    def one(self, name: str) -> Segment:
        """The group's only ``name`` segment; 100 when it is missing or repeated."""
        found = self.optional(name)
        if found is None:
            raise ValidationError(f"order group has no {name} segment",
                                  location=self.orc.location(), code="100")
        return found

    def optional(self, name: str) -> Segment | None:
        """The group's ``name`` segment, or None; 100 when there are two."""
        found = [s for s in self.segments if s.name == name]
        if len(found) > 1:
            raise ValidationError(f"a second {name} in one order group (no ORC before it)",
                                  location=found[1].location(), code="100")
        return found[0] if found else None

    def department(self) -> str | None:
        """The ordering department: ORC-17 (code, else text), else PV1-3.1."""
        point_of_care = self.pv1.get(3, 1).strip() if self.pv1 is not None else ""
        return code_or_text(self.orc, 17) or point_of_care or None


def orc_groups(msg: Message) -> list[OrcGroup]:
    """The ORC order groups of ``msg`` in order, each with its PID and that PID's PV1.

    Raises ValidationError 100 when the message has no PID or no ORC, or an ORC
    comes before any PID.
    """
    if msg.segment("PID") is None:
        raise ValidationError("message has no PID segment", location="PID", code="100")
    if msg.segment("ORC") is None:
        raise ValidationError("message has no ORC segment", location="ORC", code="100")
    pid: Segment | None = None
    pv1: Segment | None = None
    groups: list[OrcGroup] = []
    for seg in msg:
        if seg.name == "PID":
            pid, pv1 = seg, None  # a PID ends the open group
        elif seg.name == "ORC":
            if pid is None:
                raise ValidationError("ORC before any PID", location=seg.location(), code="100")
            groups.append(OrcGroup(pid, pv1, seg))
        elif groups and groups[-1].pid is pid:
            groups[-1].segments.append(seg)
        elif seg.name == "PV1" and pid is not None and pv1 is None:
            pv1 = seg
    return groups


def make_event(msg: Message, keys: Sequence[str], fields: dict[str, Any], *,
               facility_id: str, received_at: datetime, position: str, event_type: str,
               patient: tuple[dict[str, Any], list[str]], occurred_at: datetime | None,
               warnings: Sequence[str] = ()) -> dict[str, Any]:
    """One event: the ADR 0001 header (:func:`event_header`), then ``fields``.

    The keys come out in the order of ``keys`` (the schema's). ``patient`` is what
    :class:`Patients` returns; ``warnings`` are added after the patient's own.
    """
    identity, patient_warnings = patient
    event = event_header(msg, facility_id=facility_id, position=position,
                         event_type=event_type, patient=identity,
                         warnings=[*patient_warnings, *warnings], occurred_at=occurred_at,
                         received_at=received_at)
    event.update(fields)
    return {key: event[key] for key in keys}
