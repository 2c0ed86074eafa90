"""检查报告 (WS/T 500 part 6, C0006) from the ``imaging-report`` events of one study.

A group holds every report of one accession number, so a corrected report
joins the earlier one; the document shows the newest (by ``reported_at``,
then ``study_at``, ``occurred_at``, ``received_at``) and names all of them in
its event ids; of reports equally new, a corrected one (``C``) wins over a final
one (``F``), which wins over any other. While the newest is not final (status
``P``, ``I``, ``O``, ``R``, ``S``, as for lab results) there is no document yet:
None.

One section, 检查 (LOINC 30954-2 STUDIES SUMMARY, reference §5.2), with one
``observation`` for the examination:

======================  ==============================================================
report field            written as
======================  ==============================================================
procedure_code, _name   ``code`` (as sent; no national code system for examinations)
accession_number        ``id``, root 检查报告单号 2.16.156.10011.1.32; placer number 1.24
report_status           ``statusCode`` (as lab results: final and corrected completed)
study_at                ``effectiveTime``
critical_finding        ``interpretationCode`` ``AA`` (critically abnormal, HL7 table 0078)
modality                ``methodCode`` in the DICOM modality codes (1.2.840.10008.2.16.4)
body_part               ``targetSiteCode/originalText`` (as sent)
report_text             DE04.50.131.00 检查报告结果-客观所见
impression              DE04.50.132.00 检查报告结果-主观提示
performing_department   ``performer``'s organisation
======================  ==============================================================

The reference lists no data elements for imaging; DE04.50.131.00 and
DE04.50.132.00 are those of the C0006 template the reference was compiled from
(``1415749952/findCdaDiffient`` ``06.检查记录.xml``). The radiologist is the
author. The imaging-report schema carries no visit number, so there is no
``componentOf``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sinks.docstore.assembly.cda import (
    Node,
    add,
    data_element,
    identifier,
    section,
    timestamp,
    value,
)
from sinks.docstore.assembly.draft import DOC_TYPES, Author, Draft
from sinks.docstore.assembly.events import NEVER, Record, first, moment, subject_of
from sinks.docstore.assembly.lab import is_pending, status_code
from sinks.docstore.assembly.oids import (
    DICOM_MODALITY_SYSTEM,
    HL7_ABNORMAL_FLAGS,
    IMAGING_REPORT_OID,
    REQUISITION_OID,
)

__all__ = ["REPORT_TIMES", "draft"]

#: Which time dates a report, first present wins.
REPORT_TIMES = ("reported_at", "study_at", "occurred_at")
#: Of reports equally new, the higher rank is the newer.
_STATUS_RANK = {"C": 2, "F": 1}


def _newest(records: list[Record]) -> Record:
    def key(record: Record) -> tuple[datetime, int, datetime, str]:
        status = str(record.get("report_status") or "").strip().upper()
        return (moment(record, *REPORT_TIMES) or NEVER, _STATUS_RANK.get(status, 0),
                moment(record, "received_at") or NEVER, str(record.get("event_id")))
    return max(records, key=key)


def _lines(report: Record) -> list[str]:
    labelled = (("检查项目", first(report.get("procedure_name"), report.get("procedure_code"))),
                ("检查类型", first(report.get("modality"))),
                ("检查部位", first(report.get("body_part"))),
                ("检查所见", first(report.get("report_text"))),
                ("诊断意见", first(report.get("impression"))),
                ("危急值", "是" if report.get("critical_finding") else None))
    return [f"{label}: {text}" for label, text in labelled if text]


def _examination(studies: Node, report: Record) -> None:
    observation = add(add(studies, "entry"), "observation", classCode="OBS", moodCode="EVN")
    if (accession := first(report.get("accession_number"))) is not None:
        identifier(observation, IMAGING_REPORT_OID, accession)
    if (placer := first(report.get("placer_order_number"))) is not None:
        identifier(observation, REQUISITION_OID, placer)
    add(observation, "code", code=first(report.get("procedure_code")),
        displayName=first(report.get("procedure_name")))
    if (status := status_code(report.get("report_status"))) is not None:
        add(observation, "statusCode", code=status)
    timestamp(observation, "effectiveTime", moment(report, "study_at"))
    if report.get("critical_finding"):
        add(observation, "interpretationCode", code="AA", codeSystem=HL7_ABNORMAL_FLAGS,
            codeSystemName="HL7 Table 0078", displayName="critically abnormal")
    if (modality := first(report.get("modality"))) is not None:
        add(observation, "methodCode", code=modality.upper(), codeSystem=DICOM_MODALITY_SYSTEM,
            codeSystemName="DCM")
    if (body_part := first(report.get("body_part"))) is not None:
        add(add(observation, "targetSiteCode"), "originalText", body_part)
    if (department := first(report.get("performing_department"))) is not None:
        entity = add(add(observation, "performer"), "assignedEntity")
        add(entity, "id", nullFlavor="UNK")
        add(add(entity, "representedOrganization"), "name", department)
    for code, display, field in (("DE04.50.131.00", "检查报告结果-客观所见", "report_text"),
                                 ("DE04.50.132.00", "检查报告结果-主观提示", "impression")):
        if (sent := first(report.get(field))) is not None:
            related = add(observation, "entryRelationship", typeCode="COMP")
            value(data_element(related, code, display), "ST", sent)


def _body(report: Record) -> Callable[[Node], None]:
    def write(body: Node) -> None:
        studies = section(body, "30954-2", "STUDIES SUMMARY", "检查报告", _lines(report))
        _examination(studies, report)
    return write


def draft(records: list[Record]) -> Draft | None:
    """The imaging report of the newest of these reports; None without any or when pending."""
    if not records:
        return None
    report = _newest(records)
    if is_pending(report, "report_status"):
        return None
    effective = moment(report, *REPORT_TIMES, "received_at")
    return Draft(
        doc_type=DOC_TYPES["imaging-report"],
        effective_time=effective,
        subject=subject_of(records),
        author=Author(first(report.get("radiologist_id")), first(report.get("radiologist_name")),
                      moment(report, "reported_at") or effective,
                      first(report.get("performing_department"))),
        body=_body(report),
        event_ids=tuple(sorted(str(record["event_id"]) for record in records)),
    )
