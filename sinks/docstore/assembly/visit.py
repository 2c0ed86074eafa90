"""门(急)诊病历 (C0002) and 出院小结 (C0053) from a visit's ``encounter`` and ``diagnosis`` events.

The visit's state is the encounter events folded oldest first (by
``occurred_at``, then ``received_at``): each sets the fields it carries; a
``discharge`` (or a ``discharged_at``) marks the visit discharged; a ``cancel``
of trigger A13 (cancel discharge), or any cancel after a discharge, takes the
discharge back; any other cancel (A11, cancel admit) takes back the latest
admit or register: the visit returns to its state before it (an emergency
visit whose admission was cancelled is the emergency visit again), or, when
there was none, is cancelled until a later admit or register. Which document,
if any:

=================================  =============================================
state                              document
=================================  =============================================
no encounter yet; cancelled        None
patient class O or E               门(急)诊病历 C0002
patient class I, discharged        出院小结 C0053
patient class I, not discharged    None (not yet)
any other class (P, B, R, ...)     None
no diagnosis yet                   None: both documents exist to carry them
=================================  =============================================

The two are documents of their own (a set each, :mod:`.keys`): an emergency
visit that becomes an admission keeps its 门(急)诊病历 as last written, and its
出院小结 is a new document, not a version of it. What no longer stands is
withdrawn (:func:`withdrawn`): both documents when the visit is cancelled (A11
with nothing before it), the 出院小结 when the stay is no longer a discharged
inpatient stay (A13).

Diagnoses: one per diagnosis type and code (the newest by ``diagnosed_at``
wins, as ADT messages repeat a visit's DG1s), principal first (priority 1),
then by priority, type and code. Each is an observation DE05.01.024.00 诊断代码
whose value is the ICD-10 code translation gave (codeSystem
2.16.156.10011.2.3.3.11), or the code as sent, with its system's name only,
when translation gave none.

Sections (LOINC, reference §5.2): 门(急)诊病历: Diagnosis 29548-5. 出院小结:
Hospital course 8648-8 (admission and discharge, department, reason for the
visit, discharge disposition), Admission Dx 46241-6 (type ``A``/入院), and
Discharge Dx 11535-2 (the others); an empty section is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sinks.docstore.assembly.cda import (
    Node,
    add,
    data_element,
    section,
    time_text,
    timestamp,
    value,
)
from sinks.docstore.assembly.draft import DOC_TYPES, Author, Draft, Visit
from sinks.docstore.assembly.events import (
    Record,
    chronological,
    coding,
    first,
    latest_time,
    moment,
    subject_of,
)
from sinks.docstore.assembly.oids import ICD10_SYSTEM
from sinks.docstore.model import DocumentKind

__all__ = ["diagnoses_of", "draft", "icd10_of", "visit_state", "withdrawn"]

_STATE_FIELDS = ("patient_class", "department_code", "department_name", "ward",
                 "attending_doctor_id", "attending_doctor_name", "admit_reason", "admitted_at",
                 "discharged_at", "discharge_disposition")
_OUTPATIENT = frozenset({"O", "E"})


def visit_state(encounters: list[Record]) -> Record | None:
    """The visit folded from its encounters (see above); None without any or when cancelled."""
    state: Record = {"discharged": False}
    before: list[Record] = []  # the state before each admit or register not taken back
    cancelled = not encounters
    for encounter in chronological(encounters, "occurred_at"):
        action = str(encounter.get("action") or "").strip().lower()
        if action == "cancel":
            if encounter.get("trigger_event") == "A13" or state["discharged"]:
                state.update(discharged=False, discharged_at=None)
            elif before:
                state = before.pop()
                cancelled = not state.get("patient_class")
            else:
                cancelled = True
            continue
        if action in ("admit", "register"):
            before.append(dict(state))
            cancelled = False
        state.update({name: encounter[name] for name in _STATE_FIELDS
                      if encounter.get(name) is not None})
        if action == "discharge" or encounter.get("discharged_at") is not None:
            state["discharged"] = True
    return None if cancelled else state


def withdrawn(encounters: list[Record]) -> frozenset[DocumentKind]:
    """The kinds of document that no longer stand: both when the visit is cancelled, the
    discharge summary when the stay is not (or no longer) a discharged inpatient stay."""
    if not encounters:
        return frozenset()
    state = visit_state(encounters)
    if state is None:
        return frozenset({"outpatient-record", "discharge-summary"})
    inpatient = str(state.get("patient_class") or "").strip().upper() == "I"
    return frozenset() if inpatient and state["discharged"] else frozenset({"discharge-summary"})


def icd10_of(diagnosis: Record) -> tuple[str, bool]:
    """The diagnosis code and whether it is ICD-10 (translated) rather than as sent."""
    translated = coding(diagnosis, "diagnosis_code")
    if translated is not None:
        return str(translated["code"]), True
    return first(diagnosis.get("diagnosis_code")) or "", False


def _is_admission(diagnosis: Record) -> bool:
    kind = first(diagnosis.get("diagnosis_type")) or ""
    return kind.upper() == "A" or "入院" in kind


def diagnoses_of(records: list[Record]) -> list[Record]:
    """One diagnosis per type and code, the newest; principal first, then priority, type, code."""
    kept: dict[tuple[str, str], Record] = {}
    for record in chronological(records, "diagnosed_at", "occurred_at"):
        kept[(first(record.get("diagnosis_type")) or "", icd10_of(record)[0])] = record

    def rank(record: Record) -> tuple[bool, int, str, str]:
        priority = record.get("priority")
        return (not isinstance(priority, int), priority if isinstance(priority, int) else 0,
                first(record.get("diagnosis_type")) or "", icd10_of(record)[0])
    return sorted(kept.values(), key=rank)


def _diagnosis(parent: Node, diagnosis: Record) -> None:
    observation = data_element(add(parent, "entry"), "DE05.01.024.00", "诊断代码")
    timestamp(observation, "effectiveTime", moment(diagnosis, "diagnosed_at"))
    code, translated = icd10_of(diagnosis)
    coded = value(observation, "CD", code=code or None,
                  codeSystem=ICD10_SYSTEM if translated else None,
                  codeSystemName="ICD-10" if translated
                  else first(diagnosis.get("diagnosis_system")),
                  displayName=first(diagnosis.get("diagnosis_name")))
    sent = first(diagnosis.get("diagnosis_code"))
    if translated and sent is not None and sent != code:
        add(coded, "translation", code=sent,
            codeSystemName=first(diagnosis.get("diagnosis_system")))
    if (kind := first(diagnosis.get("diagnosis_type"))) is not None:
        related = add(observation, "entryRelationship", typeCode="COMP")
        value(data_element(related, None, "诊断类别"), "ST", kind)
    if isinstance(priority := diagnosis.get("priority"), int):
        related = add(observation, "entryRelationship", typeCode="COMP")
        value(data_element(related, None, "诊断顺位"), "INT", value=str(priority))


def _diagnosis_line(diagnosis: Record) -> str:
    code = icd10_of(diagnosis)[0]
    name = first(diagnosis.get("diagnosis_name"))
    return f"{name} ({code})" if name else code


def _diagnoses(body: Node, loinc: str, display: str, title: str,
               diagnoses: list[Record]) -> None:
    if diagnoses:
        element = section(body, loinc, display, title, map(_diagnosis_line, diagnoses))
        for diagnosis in diagnoses:
            _diagnosis(element, diagnosis)


def _course(body: Node, state: Record) -> None:
    def when(field: str) -> str | None:
        moment_ = state.get(field)
        return time_text(moment_) if isinstance(moment_, datetime) else None
    labelled = (("入院时间", when("admitted_at")), ("出院时间", when("discharged_at")),
                ("科室", first(state.get("department_name"), state.get("department_code"))),
                ("入院原因", first(state.get("admit_reason"))),
                ("离院方式", first(state.get("discharge_disposition"))))
    element = section(body, "8648-8", "HOSPITAL COURSE", "住院过程",
                      [f"{label}: {text}" for label, text in labelled if text])
    for label, field in (("入院原因", "admit_reason"), ("离院方式", "discharge_disposition")):
        if (sent := first(state.get(field))) is not None:
            value(data_element(add(element, "entry"), None, label), "ST", sent)


def _body(discharge: bool, state: Record, diagnoses: list[Record]) -> Callable[[Node], None]:
    def write(body: Node) -> None:
        if not discharge:
            _diagnoses(body, "29548-5", "Diagnosis", "诊断", diagnoses)
            return
        _course(body, state)
        _diagnoses(body, "46241-6", "HOSPITAL ADMISSION DX", "入院诊断",
                   [d for d in diagnoses if _is_admission(d)])
        _diagnoses(body, "11535-2", "HOSPITAL DISCHARGE DX", "出院诊断",
                   [d for d in diagnoses if not _is_admission(d)])
    return write


def _author(state: Record, principal: Record, effective: datetime | None) -> Author:
    """The attending doctor, else the clinician of the principal diagnosis."""
    department = first(state.get("department_name"))
    if (attending := first(state.get("attending_doctor_id"))) is not None:
        return Author(attending, first(state.get("attending_doctor_name")), effective, department)
    return Author(first(principal.get("clinician_id")), first(principal.get("clinician_name")),
                  effective, department)


def draft(visit_number: str, encounters: list[Record], diagnosis_records: list[Record]
          ) -> Draft | None:
    """The visit's outpatient record or discharge summary, or None when not (yet) one."""
    state = visit_state(encounters)
    diagnoses = diagnoses_of(diagnosis_records)
    if state is None or not diagnoses:
        return None
    patient_class = str(state.get("patient_class") or "").strip().upper()
    discharge = patient_class == "I"
    if not (patient_class in _OUTPATIENT or (discharge and state["discharged"])):
        return None
    effective = (moment(state, "discharged_at") if discharge else None) or latest_time(
        [*encounters, *diagnosis_records], "occurred_at", "diagnosed_at")
    principal = diagnoses[0]
    return Draft(
        doc_type=DOC_TYPES["discharge-summary" if discharge else "outpatient-record"],
        effective_time=effective,
        subject=subject_of([*encounters, *diagnosis_records]),
        author=_author(state, principal, effective),
        body=_body(discharge, state, diagnoses),
        visit=Visit(visit_number, moment(state, "admitted_at"),
                    moment(state, "discharged_at") if discharge else None,
                    first(state.get("department_code")), first(state.get("department_name"))),
        event_ids=tuple(sorted(str(r["event_id"]) for r in [*encounters, *diagnosis_records])),
    )
