"""The ``ClinicalDocument`` header of a WS/T 500 shared document (reference §5.2).

========================  ============================================================
element                   written as
========================  ============================================================
realmCode, typeId         ``CN``; 2.16.840.1.113883.1.3 / :data:`~.oids.TYPE_ID_EXTENSION`
templateId, code, title   the WS/T 500 part (:data:`~.draft.DOC_TYPES`)
id, setId                 root 2.16.156.10011.1.1, extension document id / set id
effectiveTime             from the events (never the current time)
confidentialityCode       ``N``, or ``R`` for a sensitive document (2.16.840.1.113883.5.25)
languageCode              ``zh-CN``
versionNumber             the version
recordTarget/patientRole  ids: EMPI id (hutong-local :data:`~.oids.EMPI_OID`), the
                          facility's patient id (2.16.156.10011.2.5.1.4), 健康卡号 (1.19);
                          addr, telecom; patient: 身份证号 (patient/id, 1.3), name,
                          GB/T 2261.1 sex, birthTime
author                    time; assignedAuthor/id root 1.7 (``UNK`` when no clinician)
custodian                 the facility: representedCustodianOrganization/id root 1.5
participant REF           the ordering clinician (1.4) and department, when known
relatedDocument RPLC      parentDocument id, setId and versionNumber of the version
                          replaced (CDA R2: the previous version of the same set)
componentOf               encompassingEncounter: visit number (就诊流水号 2.5.1.9),
                          admission and discharge times, department (科室 1.26)
========================  ============================================================
"""

from __future__ import annotations

from sinks.docstore.assembly.cda import Node, add, identifier, new_root, timestamp
from sinks.docstore.assembly.draft import Draft, Visit
from sinks.docstore.assembly.events import Record, birth_date, coding, first, text
from sinks.docstore.assembly.oids import (
    AUTHOR_OID,
    CONFIDENTIALITY_SYSTEM,
    DEPARTMENT_OID,
    DOCUMENT_OID,
    DOCUMENT_TYPE_SYSTEM,
    EMPI_OID,
    HEALTH_CARD_OID,
    ID_CARD_OID,
    LOCAL_PATIENT_ID_OID,
    ORGANIZATION_OID,
    SEX_SYSTEM,
    STAFF_OID,
    TYPE_ID_EXTENSION,
    TYPE_ID_ROOT,
    VISIT_OID,
)

__all__ = ["CONFIDENTIALITY_NAMES", "SEX_CODES", "render"]

#: GB/T 2261.1 (reference §3.1): its codes, and HL7 table 0001 codes and words mapped to them.
SEX_CODES = {"0": "未知的性别", "1": "男性", "2": "女性", "9": "未说明的性别"}
_SEX_ALIASES = {"M": "1", "F": "2", "U": "0", "O": "9", "A": "9", "N": "9",
                "男": "1", "女": "2", "男性": "1", "女性": "2", "未知": "0"}

#: ``N`` as the reference names it; ``R`` by its HL7 print name (the reference has none).
CONFIDENTIALITY_NAMES = {"N": "正常访问保密级别", "R": "restricted"}


def _sex(record: Record) -> str | None:
    translated = coding(record, "patient.sex")
    if translated is not None and str(translated["code"]) in SEX_CODES:
        return str(translated["code"])
    sent = text((record.get("patient") or {}).get("sex"))
    if sent is None:
        return None
    return sent if sent in SEX_CODES else _SEX_ALIASES.get(sent.upper())


def _record_target(document: Node, record: Record) -> None:
    patient = record.get("patient") or {}
    role = add(add(document, "recordTarget", typeCode="RCT", contextControlCode="OP"),
               "patientRole", classCode="PAT")
    ids = ((EMPI_OID, text(record.get("empi_id"))),
           (LOCAL_PATIENT_ID_OID, first(record.get("source_patient_id"),
                                        patient.get("source_patient_id"))),
           (HEALTH_CARD_OID, text(patient.get("health_card_number"))))
    written = [add(role, "id", root=root, extension=value) for root, value in ids if value]
    if not written:
        add(role, "id", nullFlavor="UNK")
    if (address := text(patient.get("address"))) is not None:
        add(add(role, "addr"), "streetAddressLine", address)
    if (phone := text(patient.get("phone"))) is not None:
        add(role, "telecom", value=f"tel:{phone}")
    person = add(role, "patient", classCode="PSN", determinerCode="INSTANCE")
    if (id_card := text(patient.get("id_card_number"))) is not None:
        add(person, "id", root=ID_CARD_OID, extension=id_card)
    if (name := text(patient.get("name"))) is not None:
        add(person, "name", name)
    sex = _sex(record)
    if sex is None:
        add(person, "administrativeGenderCode", nullFlavor="UNK")
    else:
        add(person, "administrativeGenderCode", code=sex, codeSystem=SEX_SYSTEM,
            codeSystemName="生理性别代码表(GB/T 2261.1)", displayName=SEX_CODES[sex])
    if (born := birth_date(patient.get("birth_date"))) is not None:
        timestamp(person, "birthTime", born)


def _author(document: Node, draft: Draft) -> None:
    author = add(document, "author", typeCode="AUT", contextControlCode="OP")
    timestamp(author, "time", draft.author.time or draft.effective_time)
    assigned = add(author, "assignedAuthor", classCode="ASSIGNED")
    identifier(assigned, AUTHOR_OID, draft.author.id)
    if draft.author.name:
        add(add(assigned, "assignedPerson"), "name", draft.author.name)
    if draft.author.organization:
        add(add(assigned, "representedOrganization"), "name", draft.author.organization)


def _custodian(document: Node, facility_id: str) -> None:
    organization = add(add(add(document, "custodian", typeCode="CST"), "assignedCustodian",
                           classCode="ASSIGNED"),
                       "representedCustodianOrganization", classCode="ORG",
                       determinerCode="INSTANCE")
    identifier(organization, ORGANIZATION_OID, facility_id)


def _referrer(document: Node, draft: Draft) -> None:
    if draft.referrer is None or not (draft.referrer.id or draft.referrer.department):
        return
    entity = add(add(document, "participant", typeCode="REF"), "associatedEntity",
                 classCode="PROV")
    identifier(entity, STAFF_OID, draft.referrer.id)
    if draft.referrer.department:
        add(add(entity, "scopingOrganization"), "name", draft.referrer.department)


def _replaces(document: Node, replaces_document_id: str | None, set_id: str,
              version_number: int) -> None:
    """The version replaced: always the previous one of the same set."""
    if replaces_document_id is None:
        return
    parent = add(add(document, "relatedDocument", typeCode="RPLC"), "parentDocument")
    add(parent, "id", root=DOCUMENT_OID, extension=replaces_document_id)
    add(parent, "setId", root=DOCUMENT_OID, extension=set_id)
    add(parent, "versionNumber", value=str(version_number - 1))


def _visit(document: Node, visit: Visit | None) -> None:
    if visit is None:
        return
    encounter = add(add(document, "componentOf"), "encompassingEncounter")
    add(encounter, "id", root=VISIT_OID, extension=visit.number)
    if visit.start is None and visit.end is None:
        add(encounter, "effectiveTime", nullFlavor="UNK")
    else:
        period = add(encounter, "effectiveTime")
        for tag, when in (("low", visit.start), ("high", visit.end)):
            if when is not None:
                timestamp(period, tag, when)
    if visit.department_code or visit.department_name:
        organization = add(add(add(encounter, "location"), "healthCareFacility"),
                           "serviceProviderOrganization")
        if visit.department_code:
            add(organization, "id", root=DEPARTMENT_OID, extension=visit.department_code)
        if visit.department_name:
            add(organization, "name", visit.department_name)


def render(draft: Draft, *, document_id: str, set_id: str, version_number: int,
           replaces_document_id: str | None, confidentiality: str) -> Node:
    """The whole ``ClinicalDocument``: this header, then the draft's structuredBody."""
    doc_type, subject = draft.doc_type, draft.subject
    document = new_root("ClinicalDocument")
    add(document, "realmCode", code="CN")
    add(document, "typeId", root=TYPE_ID_ROOT, extension=TYPE_ID_EXTENSION)
    add(document, "templateId", root=doc_type.template_id)
    add(document, "id", root=DOCUMENT_OID, extension=document_id)
    add(document, "code", code=doc_type.code, codeSystem=DOCUMENT_TYPE_SYSTEM,
        codeSystemName="卫生信息共享文档规范编码体系", displayName=doc_type.name)
    add(document, "title", doc_type.name)
    timestamp(document, "effectiveTime", draft.effective_time)
    add(document, "confidentialityCode", code=confidentiality, codeSystem=CONFIDENTIALITY_SYSTEM,
        codeSystemName="Confidentiality", displayName=CONFIDENTIALITY_NAMES[confidentiality])
    add(document, "languageCode", code="zh-CN")
    add(document, "setId", root=DOCUMENT_OID, extension=set_id)
    add(document, "versionNumber", value=str(version_number))
    _record_target(document, subject)
    _author(document, draft)
    _custodian(document, str(subject.get("facility_id") or ""))
    _referrer(document, draft)
    _replaces(document, replaces_document_id, set_id, version_number)
    _visit(document, draft.visit)
    draft.body(add(add(document, "component"), "structuredBody"))
    return document
