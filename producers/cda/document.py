"""A CDA R2 shared document (WS/T 500, WS/T 483) to one canonical ``document`` event.

The XML is read by :func:`producers.cda.xml.parse_xml` (bounded, no DOCTYPE);
the event keeps the bytes exactly as received in ``content``. The mapping, every
path under ``ClinicalDocument`` in the ``urn:hl7-org:v3`` namespace:

================================  ===================================================
event field                       from
================================  ===================================================
document_id, message_control_id   ``id`` as root^extension (required, 101)
document_type_code                ``code@code`` when its codeSystem is
                                  2.16.156.10011.2.4 (or it has none and the code is
                                  a known type); else the WS/T 500 ``templateId``;
                                  else refused (101 none, 103 unknown): see doctypes
document_type_name                the type's name from :mod:`producers.cda.doctypes`
document_code                     ``code@code`` as sent (in WS/T 500 the C code itself)
title                             ``title``
effective_time, occurred_at       ``effectiveTime@value`` (required: 101; bad: 102);
                                  no offset means Asia/Shanghai
confidentiality_code              ``confidentialityCode@code``
set_id                            ``setId`` as root^extension
version_number                    ``versionNumber@value`` (not an integer: warning)
replaces_document_id              ``relatedDocument[@typeCode="RPLC"]/parentDocument/
                                  id`` as root^extension: the version this one replaces
author_id, author_name            first ``author/assignedAuthor``: ``id@extension``,
                                  ``assignedPerson/name``
custodian_id, custodian_name      ``custodian/assignedCustodian/
                                  representedCustodianOrganization``: ``id@extension``
                                  (often a GB 32100 code), ``name``
visit_number                      ``componentOf/encompassingEncounter/id@extension``
patient, source_patient_id        ``recordTarget/patientRole``: see
                                  :mod:`producers.cda.patient`
================================  ===================================================

The header is the ADR 0001 header HL7-derived events have: the event id is
``ids.event_id(facility, document id, "DOC")``, so a resent document gets the
same id and sinks collapse the copies; a new version has a new document id.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from hutong.errors import ValidationError
from producers.cda.doctypes import DOCUMENT_TYPE_SYSTEM, DOCUMENT_TYPES, type_of_template
from producers.cda.paths import V3, attr, find, findall, instance_id, text, value_of
from producers.cda.patient import map_record_target
from producers.cda.xml import Element, parse_xml
from producers.hl7v2.common import CLINICIAN_LINK_KEYS
from producers.hl7v2.types import parse_ts
from producers.ids import event_id

__all__ = ["DEFAULT_MAX_BYTES", "DOCUMENT_KEYS", "EVENT_POSITION", "map_cda"]

#: Largest CDA accepted; documents embedding a scanned PDF run to a few MB.
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
#: The position part of the event id: a document yields one event.
EVENT_POSITION = "DOC"

#: The fields of a ``document`` event after the ADR 0001 header, in schema order.
DOCUMENT_KEYS = ("document_id", "document_type_code", "document_type_name", "document_code",
                 "title", "effective_time", "confidentiality_code", "set_id", "version_number",
                 "replaces_document_id",
                 "author_id", "author_name", "custodian_id", "custodian_name", "visit_number",
                 "content_type", "content", "content_sha256", *CLINICIAN_LINK_KEYS)

_ROOT = f"{{{V3}}}ClinicalDocument"
_INT = re.compile(r"[+-]?\d{1,10}", re.ASCII)
_INT_RANGE = range(-(2**31), 2**31)


def _document_element(payload: bytes, max_bytes: int) -> Element:
    root = parse_xml(payload, max_bytes=max_bytes, where="CDA document")
    if root.tag == _ROOT:
        return root
    if isinstance(root.tag, str) and root.tag.endswith("}ClinicalDocument"):
        reason = f"ClinicalDocument is not in the {V3} namespace"
    else:
        reason = f"root element is not ClinicalDocument (in {V3})"
    raise ValidationError(reason, location="ClinicalDocument", code="100")


def _document_type(document: Element, warnings: list[str]) -> str:
    element = find(document, "code")
    code, system = value_of(element, "code"), attr(element, "codeSystem")
    by_template = next((kind for t in findall(document, "templateId")
                        if (kind := type_of_template(attr(t, "root")))), None)
    if code and (system == DOCUMENT_TYPE_SYSTEM or (not system and code in DOCUMENT_TYPES)):
        if code not in DOCUMENT_TYPES:
            warnings.append("ClinicalDocument/code: document type is not in the WS/T 500 or "
                            "WS/T 483 tables")
        elif by_template and by_template != code:
            warnings.append(f"ClinicalDocument/templateId: names document type {by_template}, "
                            f"the code says {code}")
        return code
    if by_template:
        return by_template
    if code:
        raise ValidationError(f"document type unknown: code is not in codeSystem "
                              f"{DOCUMENT_TYPE_SYSTEM} and no templateId is a WS/T 500 one",
                              location="ClinicalDocument/code", code="103")
    raise ValidationError("document type missing: no code and no WS/T 500 templateId",
                          location="ClinicalDocument/code", code="101")


def _effective_time(document: Element) -> datetime:
    where = "ClinicalDocument/effectiveTime/@value"
    moment = parse_ts(value_of(find(document, "effectiveTime")), where)
    if moment is None:
        raise ValidationError("document has no effectiveTime", location=where, code="101")
    return moment


def _replaced(document: Element) -> str | None:
    """The id of the document a replacement version (relatedDocument RPLC) supersedes."""
    for related in findall(document, "relatedDocument"):
        if attr(related, "typeCode") == "RPLC":
            return instance_id(find(related, "parentDocument/id"))
    return None


def _version(document: Element, warnings: list[str]) -> int | None:
    raw = value_of(find(document, "versionNumber"))
    if not raw:
        return None
    if _INT.fullmatch(raw) and int(raw) in _INT_RANGE:
        return int(raw)
    warnings.append("ClinicalDocument/versionNumber: version number is not a 32-bit integer")
    return None


def _extension(element: Element | None) -> str | None:
    return value_of(element, "extension") or None


def map_cda(payload: bytes, *, facility_id: str, received_at: datetime,
            source_system: str | None = None,
            max_bytes: int = DEFAULT_MAX_BYTES) -> list[dict[str, Any]]:
    """The ``document`` event of one CDA document, in a list like the HL7 v2 mappers return.

    Raises HL7Error for XML that cannot or may not be read (too large, DOCTYPE, too deep, not
    well-formed) and ValidationError for a document lacking what the event needs (100: not a
    ClinicalDocument; 101: no id, patient id, type or effectiveTime; 102: a bad timestamp; 103:
    an unknown document type). ``received_at`` must be timezone aware.
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone aware")
    content = bytes(payload)
    document = _document_element(content, max_bytes)
    document_id = instance_id(find(document, "id"))
    if document_id is None:
        raise ValidationError("document has no id", location="ClinicalDocument/id", code="101")
    warnings: list[str] = []
    type_code = _document_type(document, warnings)
    effective = _effective_time(document)
    version = _version(document, warnings)
    patient, patient_warnings = map_record_target(document)
    warnings.extend(patient_warnings)
    author = find(document, "author/assignedAuthor")
    custodian = find(document,
                     "custodian/assignedCustodian/representedCustodianOrganization")
    event: dict[str, Any] = {
        "event_id": event_id(facility_id, document_id, EVENT_POSITION),
        "event_type": "document",
        "facility_id": facility_id,
        "source_system": source_system,
        "message_control_id": document_id,
        "source_patient_id": patient["source_patient_id"],
        "empi_id": None,
        "occurred_at": effective,
        "received_at": received_at,
        "patient": patient,
        "quality_warnings": warnings,
        "map_version": None,
        "codes": [],
        "unmapped": [],
        "document_id": document_id,
        "document_type_code": type_code,
        "document_type_name": DOCUMENT_TYPES.get(type_code),
        "document_code": value_of(find(document, "code"), "code") or None,
        "title": text(find(document, "title")) or None,
        "effective_time": effective,
        "confidentiality_code": value_of(find(document, "confidentialityCode"), "code") or None,
        "set_id": instance_id(find(document, "setId")),
        "version_number": version,
        "replaces_document_id": _replaced(document),
        "author_id": _extension(find(author, "id")),
        "author_name": text(find(author, "assignedPerson/name")) or None,
        "custodian_id": _extension(find(custodian, "id")),
        "custodian_name": text(find(custodian, "name")) or None,
        "visit_number": _extension(find(document, "componentOf/encompassingEncounter/id")),
        "content_type": "text/xml",
        "content": content,
        "content_sha256": hashlib.sha256(content).hexdigest(),
        "practitioner_id": None,
        "practitioner_status": None,
    }
    return [event]
