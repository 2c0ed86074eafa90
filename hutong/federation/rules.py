"""What leaves for the upstream platform, and in what form (pure).

A district hub reports standardized events up to the city platform (数据规范上报).
The federation file says which event types leave, and rules say which events
leave de-identified or not at all, by the codes they carry: an ICD-10 range for
infectious disease or mental health, a LOINC code for an HIV test, an event type.

A code pattern is one of:

``A00-B99``
    an ICD-10 range, by category (the first three characters): ``A15.001`` is in
    ``A00-B99``; ``B20-B24`` takes HIV disease.
``F*``
    a prefix.
``56888-1``
    one code exactly.

An event matches a rule when its type is among the rule's ``event_types`` (any
type if none are given), its facility among the rule's ``facilities`` (any if
none), and, if the rule names codes, one of the event's codes matches: the
standard codes translation gave (``codes``) and the facility's own
(``diagnosis_code``, ``test_code``, ``drug_code``, ``procedure_code``,
``item_code``, ``panel_code``). The first rule that matches decides:
``withhold`` keeps the event home, ``deidentify`` sends it without who the
patient is (:func:`deidentified`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.catalog import EVENT_TYPES

__all__ = ["DROPPED", "KEPT", "PSEUDONYMISED", "CodePattern", "Decision", "Rule", "decide",
           "deidentified", "event_codes"]

#: The facility's own coded fields that rules also look at.
_LOCAL_CODE_FIELDS = ("diagnosis_code", "test_code", "drug_code", "procedure_code", "item_code",
                      "panel_code")
_CATEGORY = re.compile(r"^[A-Z][0-9]{2}$")


@dataclass(frozen=True, slots=True)
class CodePattern:
    """One code pattern of a rule (see the module's doc)."""

    text: str

    def __post_init__(self) -> None:
        low, _, high = self.text.partition("-")
        if "-" in self.text and _CATEGORY.match(low) and not _CATEGORY.match(high):
            raise ValueError(f"code range {self.text!r}: both ends must be ICD-10 categories "
                             "(a letter and two digits, as A00-B99)")

    def matches(self, code: str) -> bool:
        code = code.strip().upper()
        pattern = self.text.upper()
        if pattern.endswith("*"):
            return code.startswith(pattern[:-1])
        low, dash, high = pattern.partition("-")
        if dash and _CATEGORY.match(low) and _CATEGORY.match(high):
            return low <= code[:3] <= high and bool(_CATEGORY.match(code[:3]))
        return code == pattern


class Rule(BaseModel):
    """Events that leave de-identified, or not at all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, description="Named in metrics and logs.")
    action: Literal["deidentify", "withhold"] = "deidentify"
    event_types: tuple[str, ...] = Field(default=(), description="Any type if empty.")
    codes: tuple[str, ...] = Field(default=(), description="Code patterns; any event of the "
                                   "types if empty.")
    facilities: tuple[str, ...] = Field(default=(), description=(
        "Only events of these facilities (a psychiatric hospital, a 传染病医院: all their "
        "events); any facility if empty."))

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event type(s) {', '.join(unknown)}; the types are "
                             f"{', '.join(EVENT_TYPES)}")
        return value

    @field_validator("codes")
    @classmethod
    def _codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            CodePattern(text)  # raises on a malformed range
        return value

    def matches(self, event: dict[str, Any]) -> bool:
        if self.event_types and event.get("event_type") not in self.event_types:
            return False
        if self.facilities and event.get("facility_id") not in self.facilities:
            return False
        if not self.codes:
            return True
        patterns = [CodePattern(text) for text in self.codes]
        return any(p.matches(code) for code in event_codes(event) for p in patterns)


Decision = tuple[Literal["send", "deidentify", "withhold"], str | None]


def event_codes(event: dict[str, Any]) -> list[str]:
    """Every code an event carries: its standard codes, then the facility's own."""
    codes = [c["code"] for c in event.get("codes") or () if c.get("code")]
    codes += [event[f] for f in _LOCAL_CODE_FIELDS if isinstance(event.get(f), str)]
    return codes


def decide(event: dict[str, Any], rules: Sequence[Rule]) -> Decision:
    """What happens to ``event``: sent as it is, de-identified, or withheld; and the rule."""
    for rule in rules:
        if rule.matches(event):
            return rule.action, rule.name
    return "send", None


#: Ids that tie a de-identified event to the identified ones of the same message, visit,
#: order or document (the sender's): each becomes a keyed pseudonym.
PSEUDONYMISED = frozenset({
    "source_patient_id", "message_control_id", "visit_number", "placer_order_number",
    "filler_order_number", "placer_group_number", "accession_number", "study_instance_uid",
    "prescription_number", "document_id", "replaces_document_id", "merged_source_patient_id"})
#: Free text that may name the patient, and where they lay: dropped.
DROPPED = frozenset({"report_text", "impression", "clinical_info", "admit_reason", "title",
                     "ward", "room", "bed", "prior_location"})
#: Everything else an event schema holds, kept (coded, numeric, or about the clinician or
#: the facility); times are kept to the day. A test walks every event schema: a new field
#: must be put in one of the three.
KEPT = frozenset({
    "event_id", "event_type", "facility_id", "source_system", "empi_id", "occurred_at",
    "received_at", "patient", "quality_warnings", "map_version", "codes", "unmapped",
    "practitioner_id", "practitioner_status", "action", "trigger_event", "patient_class",
    "department_code", "department_name", "attending_doctor_id", "attending_doctor_name",
    "admit_source", "admitted_at", "discharged_at", "discharge_disposition", "set_id",
    "panel_code", "panel_name", "specimen_type", "specimen_collected_at", "test_code",
    "test_name", "test_system", "value_type", "value", "value_numeric", "unit",
    "reference_range", "abnormal_flags", "result_status", "observed_at", "performing_lab",
    "standard_value", "standard_unit", "ordering_provider_id", "ordering_department",
    "modality", "procedure_code", "procedure_name", "body_part", "study_at", "reported_at",
    "report_status", "critical_finding", "radiologist_id", "radiologist_name",
    "performing_department", "order_control", "order_status", "item_code", "item_name",
    "item_system", "diagnostic_service", "priority", "ordered_at", "ordering_provider_name",
    "drug_code", "drug_name", "drug_system", "dose", "dose_unit", "dosage_form", "route",
    "frequency", "duration", "duration_days", "quantity", "quantity_unit", "prescribed_at",
    "dispensed_at", "prescriber_id", "prescriber_name", "department", "diagnosis_code",
    "diagnosis_system", "diagnosis_name", "diagnosis_type", "diagnosed_at", "clinician_id",
    "clinician_name", "document_type_code", "document_type_name", "document_code",
    "effective_time", "confidentiality_code", "version_number", "author_id", "author_name",
    "custodian_id", "custodian_name", "content_type", "content", "content_sha256",
    "ethnic_group", "marital_status", "nationality", "occupation", "deceased", "deceased_at"})
_CHINA = timezone(timedelta(hours=8))


def _day(moment: datetime) -> datetime:
    """The start of ``moment``'s day in China time: the exact time of an event would tie
    it to the identified events of the same message."""
    local = moment.astimezone(_CHINA)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def deidentified(event: dict[str, Any], pseudonymise: Callable[[str], str],
                 rule: str) -> dict[str, Any]:
    """``event`` without who the patient is (a new dict).

    Names, ID card and health card numbers, phone, address and birth date are dropped,
    and the EMPI id; the facility's patient id and every id that ties the event to others
    of the same message, visit, order or document (:data:`PSEUDONYMISED`) become keyed
    pseudonyms (the same id, the same pseudonym: the upstream can count people and
    visits without knowing them); free text and bed location (:data:`DROPPED`) are
    dropped, a text result too (a number stays); times are kept to the day; a document's
    content is withheld (its metadata goes). The event says so in its quality warnings.
    """
    out: dict[str, Any] = {}
    for name, value in event.items():
        if name in PSEUDONYMISED:
            out[name] = pseudonymise(value) if isinstance(value, str) and value else value
        elif name in DROPPED:
            out[name] = None
        elif isinstance(value, datetime):
            out[name] = _day(value)
        else:
            out[name] = value
    patient = dict(event["patient"])
    patient_id = out["source_patient_id"]
    patient.update(source_patient_id=patient_id, name=None, id_card_number=None,
                   health_card_number=None, phone=None, address=None, birth_date=None,
                   identifiers=[{"value": patient_id, "type": "PSEUDONYM", "authority": None}])
    out.update(patient=patient, empi_id=None,
               quality_warnings=[*event.get("quality_warnings", ()),
                                 f"de-identified for the upstream platform ({rule})"])
    if event.get("value_numeric") is None and "value" in event:
        out["value"] = None  # text results may name anyone
    if event.get("event_type") == "document":
        out.update(content=b"", content_type="text/plain",
                   content_sha256=hashlib.sha256(b"").hexdigest())
    return out
