"""Who the clinician an event names is, by the practitioner registry (pure).

Every clinical event names at most one clinician by the facility's id for them;
:func:`link_practitioner` looks that id up in the registry
(:class:`~hutong.registry.practitioners.PractitionerIndex`: the facility's staff
id first, else a practising-certificate number) and gives the event its
``practitioner_id`` and ``practitioner_status``:

===============  ====================  ===========
event type       the clinician's id    role
===============  ====================  ===========
encounter        attending_doctor_id   attending
lab-result       ordering_provider_id  ordering
imaging-report   radiologist_id        radiologist
order            ordering_provider_id  ordering
medication       prescriber_id         prescriber
diagnosis        clinician_id          diagnosing
document         author_id             author
===============  ====================  ===========

A clinician the registry does not know is never a reason to drop the event: it
goes on with ``practitioner_status`` ``unknown`` and an :class:`UnknownPractitioner`
for ``hutong.registry.unknown-practitioners``, counted per batch like unmapped
codes, so the registry's keepers see whom to add. A registered practitioner since
retired is linked and marked ``retired``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from hutong.registry.practitioners import PractitionerIndex

__all__ = ["CLINICIAN_FIELDS", "UnknownPractitioner", "link_practitioner"]

#: event type -> (the clinician's id field, their name field or None, their role).
CLINICIAN_FIELDS: dict[str, tuple[str, str | None, str]] = {
    "encounter": ("attending_doctor_id", "attending_doctor_name", "attending"),
    "lab-result": ("ordering_provider_id", None, "ordering"),
    "imaging-report": ("radiologist_id", "radiologist_name", "radiologist"),
    "order": ("ordering_provider_id", "ordering_provider_name", "ordering"),
    "medication": ("prescriber_id", "prescriber_name", "prescriber"),
    "diagnosis": ("clinician_id", "clinician_name", "diagnosing"),
    "document": ("author_id", "author_name", "author"),
}


class UnknownPractitioner(NamedTuple):
    """A clinician an event named whom the registry does not know (a tuple: the stage makes
    one per event naming an unknown clinician, and counts it by its hash)."""

    facility_id: str
    local_id: str
    name: str | None
    role: str
    event_type: str

    @property
    def topic_key(self) -> bytes:
        """The key on ``hutong.registry.unknown-practitioners``: ``facility|staff id``."""
        return f"{self.facility_id}|{self.local_id}".encode()

    def to_record(self, *, count: int, first_seen: datetime,
                  last_seen: datetime) -> dict[str, Any]:
        """The ``hutong.UnknownPractitioner`` record once counted."""
        return {"facility_id": self.facility_id, "local_id": self.local_id, "name": self.name,
                "role": self.role, "event_type": self.event_type, "count": count,
                "first_seen": first_seen, "last_seen": last_seen}


def link_practitioner(event: dict[str, Any], index: PractitionerIndex
                      ) -> UnknownPractitioner | None:
    """Set ``practitioner_id`` and ``practitioner_status`` on ``event`` (in place); the
    clinician to record as unknown, if the registry does not know them."""
    fields = CLINICIAN_FIELDS.get(event.get("event_type", ""))
    given = event.get(fields[0]) if fields else None
    if fields is None or not isinstance(given, str) or not given.strip():
        event["practitioner_id"] = event["practitioner_status"] = None
        return None
    found = index.find(event["facility_id"], given)
    if found is not None:
        record, _ = found
        event["practitioner_id"] = record.practitioner_id
        event["practitioner_status"] = "known" if record.active else "retired"
        return None
    event["practitioner_id"] = None
    event["practitioner_status"] = "unknown"
    _, name_field, role = fields
    name = event.get(name_field) if name_field else None
    return UnknownPractitioner(event["facility_id"], given, name if isinstance(name, str)
                               else None, role, event["event_type"])
