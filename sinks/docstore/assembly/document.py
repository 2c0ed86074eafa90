"""Assembling a group's parts into a :class:`~sinks.docstore.model.Document`.

:func:`assemble` picks the kind from the group key's prefix, lets the kind's
module draft the body (None when the parts are not yet enough), writes the
header around it and serialises it. It is a pure function of its arguments:
the same parts, in any order and with repeats, give byte-identical content;
the current time and random ids are never used.

A document also needs the patient's EMPI id (every ``hutong.std.*`` event has
one): parts none of which is linked give None, as not yet enough.

The registry metadata (EMPI id, facility, author, visit number) is what the
CDA says: without the characters XML 1.0 forbids (:func:`~.cda.xml_text`).

``confidentialityCode`` is ``R`` when :func:`~.sensitivity.sensitivity` finds a
sensitive category in the group's parts, else ``N``.

:func:`withdrawn` says which kinds of document the group's parts no longer
support (every prescription line cancelled, every lab result deleted or wrong, a
visit cancelled, a discharge taken back): a stored current version of such a
kind is withdrawn by the store. "Not yet" (results pending, a stay not yet
discharged) is not a withdrawal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sinks.docstore.assembly import imaging, lab, prescription, visit
from sinks.docstore.assembly.cda import serialize, xml_text
from sinks.docstore.assembly.draft import Draft
from sinks.docstore.assembly.events import first, records_of, text
from sinks.docstore.assembly.header import render
from sinks.docstore.assembly.keys import AssemblyError, document_id_of, prefix_of, set_id_of
from sinks.docstore.assembly.sensitivity import sensitivity
from sinks.docstore.model import CDA_MEDIA_TYPE, Document, DocumentKind, Part

__all__ = ["GROUP_SCHEMAS", "assemble", "withdrawn"]

#: The schemas whose parts each kind of group is made of; other parts are ignored.
GROUP_SCHEMAS = {"lab": ("lab-result",), "imaging": ("imaging-report",), "rx": ("medication",),
                 "visit": ("encounter", "diagnosis")}


def _draft(prefix: str, parts: Sequence[Part]) -> Draft | None:
    if prefix == "lab":
        return lab.draft(records_of(parts, "lab-result"))
    if prefix == "imaging":
        return imaging.draft(records_of(parts, "imaging-report"))
    if prefix == "rx":
        return prescription.draft(records_of(parts, "medication"))
    encounters, diagnoses = records_of(parts, "encounter"), records_of(parts, "diagnosis")
    number = first(*(record.get("visit_number") for record in [*encounters, *diagnoses]))
    return None if number is None else visit.draft(number, encounters, diagnoses)


def assemble(group_key: str, parts: Sequence[Part], *, version_number: int = 1,
             replaces_document_id: str | None = None) -> Document | None:
    """The document of a group (a key from :func:`~.keys.group_keys`), or None when the
    parts are not yet enough for one.

    ``set_id`` is derived from ``group_key`` and the kind of document the parts make;
    ``document_id`` is the set id for version 1, ``{set_id}-v{n}`` for version n;
    ``replaces_document_id`` (version n-1 of the same set) goes into the CDA as
    ``relatedDocument typeCode="RPLC"``. AssemblyError for a key that is not a group key,
    a version below 1, or a version 1 that replaces something.
    """
    prefix = prefix_of(group_key)
    if version_number < 1:
        raise AssemblyError(f"version_number must be 1 or more, got {version_number}")
    if replaces_document_id is not None and version_number < 2:
        raise AssemblyError("a version that replaces another must be version 2 or more")
    relevant = [(name, record) for name, record in parts if name in GROUP_SCHEMAS[prefix]]
    draft = _draft(prefix, relevant)
    if draft is None:
        return None
    set_id = set_id_of(group_key, draft.doc_type.kind)
    document_id = document_id_of(set_id, version_number)
    empi_id = text(draft.subject.get("empi_id"))
    if empi_id is None:
        return None
    categories = sensitivity(relevant)
    confidentiality = "R" if categories else "N"
    content = serialize(render(draft, document_id=document_id, set_id=set_id,
                               version_number=version_number,
                               replaces_document_id=replaces_document_id,
                               confidentiality=confidentiality))
    facility_id = xml_text(str(draft.subject.get("facility_id") or ""))
    return Document(
        document_id=document_id,
        kind=draft.doc_type.kind,
        type_code=draft.doc_type.code,
        type_name=draft.doc_type.name,
        title=draft.doc_type.name,
        empi_id=xml_text(empi_id),
        facility_id=facility_id,
        content=content,
        content_type=CDA_MEDIA_TYPE,
        content_sha256=hashlib.sha256(content).hexdigest(),
        effective_time=draft.effective_time,
        set_id=set_id,
        version_number=version_number,
        replaces_document_id=replaces_document_id,
        author_id=xml_text(draft.author.id) if draft.author.id else None,
        custodian_id=facility_id or None,
        visit_number=xml_text(draft.visit.number) if draft.visit else None,
        confidentiality_code=confidentiality,
        sensitivity=categories,
        event_ids=draft.event_ids,
    )


def withdrawn(group_key: str, parts: Sequence[Part]) -> frozenset[DocumentKind]:
    """The kinds of document the group's parts no longer support (see the module)."""
    prefix = prefix_of(group_key)
    if prefix == "rx":
        gone = prescription.withdrawn(records_of(parts, "medication"))
        return frozenset({"prescription"}) if gone else frozenset()
    if prefix == "lab":
        gone = lab.withdrawn(records_of(parts, "lab-result"))
        return frozenset({"lab-report"}) if gone else frozenset()
    if prefix == "visit":
        return visit.withdrawn(records_of(parts, "encounter"))
    return frozenset()
