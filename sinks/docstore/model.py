"""What the document store holds: a shared document with its registry metadata.

`Document` is the contract between document assembly (`sinks.docstore.assembly`,
pure: events in, CDA out) and the store (`sinks.docstore.store`, SQLite or
PostgreSQL). Assembly is deterministic: the same events give the same bytes, so
the same ``content_sha256``, which is what makes a redelivery a no-op.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["CDA_MEDIA_TYPE", "SENSITIVE_CATEGORIES", "Document", "DocumentKind", "Part"]

CDA_MEDIA_TYPE = "application/hl7-cda+xml"

#: Documents made here, by the events they are made of; ``received``: a CDA sent to the hub.
DocumentKind = Literal["lab-report", "imaging-report", "prescription", "outpatient-record",
                       "discharge-summary", "received"]

#: One event a document is made of: its schema name (``lab-result``) and decoded record.
Part = tuple[str, dict[str, Any]]

#: Categories whose documents need the ``sensitive`` role and leave only de-identified.
SENSITIVE_CATEGORIES = frozenset({"infectious-disease", "mental-health"})


@dataclass(frozen=True, slots=True)
class Document:
    """One version of one shared document (共享文档)."""

    document_id: str
    kind: DocumentKind
    type_code: str  # WS/T 500 C00xx
    type_name: str
    title: str
    empi_id: str
    facility_id: str
    content: bytes
    content_type: str
    content_sha256: str
    effective_time: dt.datetime | None = None
    set_id: str | None = None
    version_number: int = 1
    replaces_document_id: str | None = None
    author_id: str | None = None
    custodian_id: str | None = None
    visit_number: str | None = None
    confidentiality_code: str | None = None
    #: Subset of SENSITIVE_CATEGORIES that applies.
    sensitivity: frozenset[str] = field(default_factory=frozenset)
    #: The events the document was made of (one for a received CDA).
    event_ids: tuple[str, ...] = ()
