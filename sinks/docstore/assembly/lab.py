"""检验报告 (WS/T 500 part 7, C0007) from the ``lab-result`` events of one report.

One section, 实验室检查 (LOINC 30954-2, reference §5.2), with an ``organizer``
per ordered panel and in it an ``observation`` per result, in OBX order:

=========================  ==========================================================
result field               written as
=========================  ==========================================================
test_code, test_name,      observation ``code``: the test as sent (WS/T 500 leaves the
test_system; codes         item's code system open, §5.2), with the LOINC code
                           translation gave as a ``translation``
result_status              ``statusCode``
observed_at                ``effectiveTime``
value / value_numeric      ``value`` REAL when it reads as a number, else ST
abnormal_flags             ``interpretationCode`` each, HL7 table 0078 (§8)
performing_lab             ``performer``'s organisation
unit                       data element DE04.30.016.00 检验定量结果计量单位 (§5.2)
standard_value/_unit       DE04.30.015.00 检验定量结果, PQ in the hub's standard unit
specimen_type, _collected  DE04.50.134.00 标本类别, ``low`` = collection time (§5.2)
reference_range            ``referenceRange/observationRange/text``
placer/filler number       organizer ids: 电子申请单编号 (1.24), 检验报告单号 (1.33)
=========================  ==========================================================

A group is one order (:mod:`.keys`), so it collects every message the LIS sent
about it: preliminary results, the final ones, corrections. Each test (code and
system) shows its latest report: the results of the newest message naming it
(:func:`current_results`; newest by ``received_at``, the order the LIS reported
in, then a corrected ``C`` over a final ``F`` over any other status, then
``observed_at`` and the control id), so a correction in a new message makes a
new version of the report rather than a second report.

A report is a document once it is final: None while any current result is
pending (OBX-11 ``I``, ``O``, ``P``, ``R``, ``S``: :data:`PENDING_STATUSES`);
results marked deleted or wrong (``D``, ``W``) are left out. A result with no
status counts as final (many LIS leave OBX-11 empty). When every current result
is deleted or wrong, the report is withdrawn (:func:`withdrawn`); a result
pending again is not a withdrawal: the report stands until the new one is final.

The LIS event names no reporting clinician, so the author is the performing
laboratory (``id`` ``UNK``); the ordering clinician and department are the
header's ``REF`` participant.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import groupby
from typing import Any

from sinks.docstore.assembly.cda import (
    Node,
    add,
    data_element,
    decimal_text,
    identifier,
    section,
    timestamp,
    value,
)
from sinks.docstore.assembly.draft import DOC_TYPES, Author, Draft, Referrer, Visit
from sinks.docstore.assembly.events import (
    NEVER,
    Record,
    coding,
    first,
    latest_time,
    moment,
    number,
    subject_of,
)
from sinks.docstore.assembly.oids import (
    HL7_ABNORMAL_FLAGS,
    LAB_REPORT_OID,
    LOINC_SYSTEM,
    REQUISITION_OID,
)

__all__ = ["DROPPED_STATUSES", "LOINC_NAMES", "PENDING_STATUSES", "current_results", "draft",
           "is_pending", "loinc_of", "status_code", "withdrawn"]

#: Values of ``test_system`` (upper case) that mean LOINC (HL7 table 0396 ``LN``).
LOINC_NAMES = frozenset({"LN", "LOINC", LOINC_SYSTEM})

#: HL7 table 0085 result statuses of a report not yet final: pending, order detail,
#: preliminary, not verified, partial.
PENDING_STATUSES = frozenset({"I", "O", "P", "R", "S"})
#: Result statuses that withdraw a result: deleted, wrong.
DROPPED_STATUSES = frozenset({"D", "W"})

_STATUS = {"F": "completed", "C": "completed", "U": "completed", "X": "cancelled",
           "D": "nullified", "W": "nullified"}


def status_code(result_status: str | None) -> str | None:
    """ActStatus of an OBX-11 result status: final and corrected are completed, others active."""
    if not result_status:
        return None
    return _STATUS.get(result_status.strip().upper(), "active")


def _status(record: Record, field: str) -> str:
    return str(record.get(field) or "").strip().upper()


def is_pending(record: Record, field: str = "result_status") -> bool:
    """Whether a result (or report: ``field="report_status"``) is not yet final."""
    return _status(record, field) in PENDING_STATUSES


def loinc_of(record: Record) -> str | None:
    """The result's LOINC code: the translated one, else the code as sent if sent as LOINC."""
    translated = coding(record, "test_code")
    if translated is not None and str(translated.get("system", "")).upper() == "LOINC":
        return str(translated["code"])
    if str(record.get("test_system") or "").strip().upper() in LOINC_NAMES:
        return first(record.get("test_code"))
    return None


def _test_code(observation: Node, record: Record) -> None:
    sent_as_loinc = str(record.get("test_system") or "").strip().upper() in LOINC_NAMES
    code = add(observation, "code", code=first(record.get("test_code")),
               codeSystem=LOINC_SYSTEM if sent_as_loinc else None,
               codeSystemName="LOINC" if sent_as_loinc else first(record.get("test_system")),
               displayName=first(record.get("test_name")))
    translated = coding(record, "test_code")
    if translated is not None and not sent_as_loinc and (loinc := loinc_of(record)):
        add(code, "translation", code=loinc, codeSystem=LOINC_SYSTEM, codeSystemName="LOINC",
            displayName=first(translated.get("display")))


def _result(organizer: Node, record: Record) -> None:
    observation = add(add(organizer, "component"), "observation", classCode="OBS",
                      moodCode="EVN")
    _test_code(observation, record)
    if (status := status_code(record.get("result_status"))) is not None:
        add(observation, "statusCode", code=status)
    timestamp(observation, "effectiveTime", record.get("observed_at"))
    numeric = number(record.get("value_numeric"))
    if numeric is not None:
        value(observation, "REAL", value=decimal_text(numeric))
    elif (sent := first(record.get("value"))) is not None:
        value(observation, "ST", sent)
    for flag in record.get("abnormal_flags") or ():
        if first(flag):
            add(observation, "interpretationCode", code=str(flag).strip(),
                codeSystem=HL7_ABNORMAL_FLAGS, codeSystemName="HL7 Table 0078")
    if (lab := first(record.get("performing_lab"))) is not None:
        entity = add(add(observation, "performer"), "assignedEntity")
        add(entity, "id", nullFlavor="UNK")
        add(add(entity, "representedOrganization"), "name", lab)
    if (unit := first(record.get("unit"))) is not None:
        related = add(observation, "entryRelationship", typeCode="COMP")
        value(data_element(related, "DE04.30.016.00", "检验定量结果计量单位"), "ST", unit)
    standard = number(record.get("standard_value"))
    if standard is not None:
        related = add(observation, "entryRelationship", typeCode="COMP")
        value(data_element(related, "DE04.30.015.00", "检验定量结果"), "PQ",
              value=decimal_text(standard), unit=first(record.get("standard_unit")) or "1")
    specimen, collected = first(record.get("specimen_type")), record.get("specimen_collected_at")
    if specimen is not None or collected is not None:
        element = data_element(add(observation, "entryRelationship", typeCode="COMP"),
                               "DE04.50.134.00", "标本类别")
        timestamp(add(element, "effectiveTime"), "low", collected)
        if specimen is not None:
            value(element, "ST", specimen)
    if (reference := first(record.get("reference_range"))) is not None:
        add(add(add(observation, "referenceRange"), "observationRange"), "text", reference)


def _line(record: Record) -> str:
    name = first(record.get("test_name"), record.get("test_code")) or ""
    shown = " ".join(part for part in (first(record.get("value")), first(record.get("unit")))
                     if part)
    reference = first(record.get("reference_range"))
    flags = ",".join(str(flag).strip() for flag in record.get("abnormal_flags") or ()
                     if first(flag))
    return "".join((f"{name}: {shown}", f" (参考范围 {reference})" if reference else "",
                    f" [{flags}]" if flags else ""))


def _panel(record: Record) -> tuple[str, str, str, str]:
    placer, filler, code, name = (str(record.get(field) or "") for field in (
        "placer_order_number", "filler_order_number", "panel_code", "panel_name"))
    return placer, filler, code, name


def _body(results: list[Record]) -> Callable[[Node], None]:
    def write(body: Node) -> None:
        studies = section(body, "30954-2", "STUDIES SUMMARY", "实验室检查",
                          [_line(record) for record in results])
        for (placer, filler, code, name), panel in groupby(
                sorted(results, key=lambda r: (_panel(r), _position(r))), key=_panel):
            organizer = add(add(studies, "entry"), "organizer", classCode="CLUSTER",
                            moodCode="EVN")
            if placer:
                identifier(organizer, REQUISITION_OID, placer)
            if filler:
                identifier(organizer, LAB_REPORT_OID, filler)
            if code or name:
                add(organizer, "code", code=code or None, displayName=name or None)
            add(organizer, "statusCode", code="completed")
            for record in panel:
                _result(organizer, record)
    return write


def _position(record: Record) -> tuple[int, str]:
    position = record.get("set_id")
    return (position if isinstance(position, int) else 0, str(record.get("event_id")))


#: Of reports received at the same time, the higher rank is the newer.
_STATUS_RANK = {"C": 2, "F": 1}


def _test(record: Record) -> tuple[str, str]:
    return (str(record.get("test_code") or "").strip().upper(),
            str(record.get("test_system") or "").strip().upper())


def _message(record: Record) -> str:
    return str(record.get("message_control_id") or record.get("event_id") or "")


def _reported(record: Record) -> tuple[Any, ...]:
    return (moment(record, "received_at") or NEVER,
            _STATUS_RANK.get(_status(record, "result_status"), 0),
            moment(record, "observed_at") or NEVER, _message(record), str(record.get("event_id")))


def current_results(records: list[Record]) -> list[Record]:
    """Each test's latest report: the results of the newest message naming the test."""
    latest: dict[tuple[str, str], Record] = {}
    for record in records:
        test = _test(record)
        if test not in latest or _reported(record) > _reported(latest[test]):
            latest[test] = record
    return [record for record in records if _message(record) == _message(latest[_test(record)])]


def withdrawn(records: list[Record]) -> bool:
    """Whether the report is withdrawn: every current result deleted or wrong."""
    results = current_results(records)
    return bool(results) and all(_status(record, "result_status") in DROPPED_STATUSES
                                 for record in results)


def draft(records: list[Record]) -> Draft | None:
    """The lab report of these results; None without any, or while one is pending."""
    current = current_results(records)
    if any(is_pending(record) for record in current):
        return None
    results = sorted((record for record in current
                      if _status(record, "result_status") not in DROPPED_STATUSES),
                     key=_position)
    if not results:
        return None
    effective = latest_time(results, "observed_at", "occurred_at")
    visit_number = first(*(record.get("visit_number") for record in results))
    department = first(*(record.get("ordering_department") for record in results))
    return Draft(
        doc_type=DOC_TYPES["lab-report"],
        effective_time=effective,
        subject=subject_of(results),
        author=Author(None, None, effective,
                      first(*(record.get("performing_lab") for record in results))),
        body=_body(results),
        visit=Visit(visit_number, department_name=department) if visit_number else None,
        referrer=Referrer(first(*(record.get("ordering_provider_id") for record in results)),
                          department),
        event_ids=tuple(sorted(str(record["event_id"]) for record in results)),
    )
