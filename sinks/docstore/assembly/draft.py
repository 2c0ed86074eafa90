"""What a document kind hands to the header: its type, its people, its visit, its sections.

Each kind module (:mod:`.lab`, :mod:`.imaging`, :mod:`.prescription`,
:mod:`.visit`) turns its records into a :class:`Draft`; :mod:`.header` writes
the ``ClinicalDocument`` around it and :mod:`.document` makes the
:class:`~sinks.docstore.model.Document`.

Document types (reference §5.1): the code is the WS/T 500 C code in codeSystem
2.16.156.10011.2.4 and the templateId is 2.16.156.10011.2.1.1.(20 + part). The
reference gives no LOINC document codes for WS/T 500 documents (their
``ClinicalDocument/code`` is the C code), so none is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sinks.docstore.assembly.cda import Node
from sinks.docstore.assembly.events import Record
from sinks.docstore.model import DocumentKind

__all__ = ["DOC_TYPES", "Author", "DocType", "Draft", "Referrer", "Visit"]


@dataclass(frozen=True, slots=True)
class DocType:
    """One WS/T 500 document type."""

    kind: DocumentKind
    part: int
    name: str

    @property
    def code(self) -> str:
        return f"C{self.part:04d}"

    @property
    def template_id(self) -> str:
        return f"2.16.156.10011.2.1.1.{20 + self.part}"


#: The kinds hutong assembles. Parts 6 and 7 are named 检查记录/检验记录 in the standard's
#: table and 检查报告/检验报告 in its templates (reference §5.1); the report names are used.
DOC_TYPES: dict[DocumentKind, DocType] = {
    "outpatient-record": DocType("outpatient-record", 2, "门(急)诊病历"),
    "prescription": DocType("prescription", 4, "西药处方"),
    "imaging-report": DocType("imaging-report", 6, "检查报告"),
    "lab-report": DocType("lab-report", 7, "检验报告"),
    "discharge-summary": DocType("discharge-summary", 53, "出院小结"),
}


@dataclass(frozen=True, slots=True)
class Author:
    """The document's author (文档创作者): a clinician id, or only an organisation."""

    id: str | None
    name: str | None
    time: datetime | None
    organization: str | None = None


@dataclass(frozen=True, slots=True)
class Referrer:
    """Who asked for what the document reports: an ordering clinician and department."""

    id: str | None
    department: str | None


@dataclass(frozen=True, slots=True)
class Visit:
    """The visit the document belongs to (componentOf/encompassingEncounter)."""

    number: str
    start: datetime | None = None
    end: datetime | None = None
    department_code: str | None = None
    department_name: str | None = None


@dataclass(frozen=True, slots=True)
class Draft:
    """A document before its header: everything but the ids and confidentiality."""

    doc_type: DocType
    effective_time: datetime | None
    #: The record whose patient, EMPI id and facility head the document (the newest used).
    subject: Record
    author: Author
    #: Writes the sections into ``structuredBody`` (the header makes the element).
    body: Callable[[Node], None]
    visit: Visit | None = None
    referrer: Referrer | None = None
    #: The event ids of every record the document was made of, sorted.
    event_ids: tuple[str, ...] = field(default_factory=tuple)
