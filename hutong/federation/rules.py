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
type if none are given) and, if the rule names codes, one of the event's codes
matches: the standard codes translation gave (``codes``) and the facility's own
(``diagnosis_code``, ``test_code``, ``drug_code``, ``procedure_code``). The first
rule that matches decides: ``withhold`` keeps the event home, ``deidentify``
sends it without who the patient is (:func:`deidentified`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.catalog import EVENT_TYPES

__all__ = ["CodePattern", "Decision", "Rule", "decide", "deidentified", "event_codes"]

#: The facility's own coded fields that rules also look at.
_LOCAL_CODE_FIELDS = ("diagnosis_code", "test_code", "drug_code", "procedure_code")
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


def deidentified(event: dict[str, Any], pseudonymise: Callable[[str], str],
                 rule: str) -> dict[str, Any]:
    """``event`` without who the patient is (a new dict).

    Names, ID card and health card numbers, phone, address and birth date are
    dropped; the facility's patient ids become keyed pseudonyms (the same patient,
    the same pseudonym, so the upstream can count people without knowing them);
    the EMPI id is dropped; a document's content is withheld (it names the
    patient), its metadata kept. The event says so in its quality warnings.
    """
    out = dict(event)
    patient = dict(event["patient"])
    patient_id = pseudonymise(patient["source_patient_id"])
    patient.update(source_patient_id=patient_id, name=None, id_card_number=None,
                   health_card_number=None, phone=None, address=None, birth_date=None,
                   identifiers=[{"value": patient_id, "type": "PSEUDONYM", "authority": None}])
    out.update(patient=patient, source_patient_id=patient_id, empi_id=None,
               quality_warnings=[*event.get("quality_warnings", ()),
                                 f"de-identified for the upstream platform ({rule})"])
    if event.get("event_type") == "document":
        out.update(content=b"", content_type="text/plain",
                   content_sha256=hashlib.sha256(b"").hexdigest())
    if event.get("event_type") == "patient":
        out.update(merged_source_patient_id=pseudonymise(event["merged_source_patient_id"])
                   if event.get("merged_source_patient_id") else None)
    return out
