"""A ``document`` event (a CDA a facility sent) to the :class:`Document` stored as received.

The content is stored byte for byte: nothing is re-serialised, so the stored
``content_sha256`` is the sender's. The registry fields are the event's, which
the CDA adapter read from the header (``producers.cda.document``):

=======================  =====================================================
Document field           from the event
=======================  =====================================================
document_id, set_id      ``document_id``, ``set_id`` (root^extension as sent)
type_code, type_name     ``document_type_code``, ``document_type_name`` (else
                         the code itself)
title                    ``title``, else the type name
version_number           ``version_number`` (none sent: 1)
empi_id                  ``empi_id`` (``""`` for an event not yet linked)
custodian_id             ``custodian_id``, else the sending facility
sensitivity              by the document type and the ICD-10 and LOINC codes in
                         it (:func:`.sensitivity.received_categories`)
confidentiality_code     as sent
=======================  =====================================================

AssemblyError when the event has no document id or no content bytes, when
the content's SHA-256 is not the event's ``content_sha256`` (the bytes changed
since the adapter read them, and storing them would break the promise that
what is stored is what was sent), or when an id the store indexes or a type
code is longer than :data:`MAX_ID_LENGTH` characters. Other values are stored
as sent, whatever their length (a confidentiality code ``VERYRESTRICTED``
included): the store's columns are unbounded text.
"""

from __future__ import annotations

import hashlib
from typing import Any

from hutong.errors import HL7Error
from producers.cda.document import DEFAULT_MAX_BYTES
from producers.cda.xml import Element, parse_xml
from sinks.docstore.assembly.events import first, moment
from sinks.docstore.assembly.keys import AssemblyError
from sinks.docstore.assembly.sensitivity import received_categories
from sinks.docstore.model import Document

__all__ = ["MAX_ID_LENGTH", "received"]

#: Longest document id, set id, replaced id and type code taken (characters): well inside
#: what a database index entry holds.
MAX_ID_LENGTH = 512


def _parsed(content: bytes) -> Element | None:
    """The document's tree, to look for sensitive codes; None if it cannot be read.

    The CDA adapter parsed the same bytes with the same parser before the event was made,
    so None does not happen for a real event; the type still decides then.
    """
    try:
        return parse_xml(content, max_bytes=DEFAULT_MAX_BYTES, where="CDA document")
    except HL7Error:
        return None


def received(record: dict[str, Any]) -> Document:
    """The document a ``document`` event carries, stored as received (kind ``received``)."""
    content = record.get("content")
    if not isinstance(content, bytes | bytearray | memoryview):
        raise AssemblyError("document event has no content bytes")
    content = bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    sent_digest = first(record.get("content_sha256"))
    if sent_digest is not None and sent_digest.lower() != digest:
        raise AssemblyError("document event content does not match its content_sha256")
    document_id = first(record.get("document_id"))
    if document_id is None:
        raise AssemblyError("document event has no document_id")
    for field in ("document_id", "set_id", "replaces_document_id", "document_type_code"):
        if len(first(record.get(field)) or "") > MAX_ID_LENGTH:
            raise AssemblyError(f"document event {field} is too long (over {MAX_ID_LENGTH} "
                                "characters)")
    type_code = first(record.get("document_type_code")) or ""
    type_name = first(record.get("document_type_name")) or type_code
    version = record.get("version_number")
    event_id = first(record.get("event_id"))
    return Document(
        document_id=document_id,
        kind="received",
        type_code=type_code,
        type_name=type_name,
        title=first(record.get("title")) or type_name,
        empi_id=first(record.get("empi_id")) or "",
        facility_id=str(record.get("facility_id") or ""),
        content=content,
        content_type=first(record.get("content_type")) or "text/xml",
        content_sha256=digest,
        effective_time=moment(record, "effective_time", "occurred_at"),
        set_id=first(record.get("set_id")),
        version_number=version if isinstance(version, int) else 1,
        replaces_document_id=first(record.get("replaces_document_id")),
        author_id=first(record.get("author_id")),
        custodian_id=first(record.get("custodian_id"), record.get("facility_id")),
        visit_number=first(record.get("visit_number")),
        confidentiality_code=first(record.get("confidentiality_code")),
        sensitivity=received_categories(type_code, _parsed(content)),
        event_ids=(event_id,) if event_id else (),
    )
