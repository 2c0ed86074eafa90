"""A CDA with the patient's identity taken out, for a sensitive document leaving the hub.

What changes (every other element, the clinical sections included, stays):

======================================  ==============================================
where                                   what
======================================  ==============================================
``recordTarget`` (all of it but         every ``id``, ``name``, ``addr`` and ``telecom``
``providerOrganization``)               becomes an empty element with nullFlavor ``MSK``;
                                        ``birthTime`` keeps only the year; a guardian
                                        inside it is covered the same way; so is any
                                        element not known to identify nobody (a
                                        facility's own ``<mobile>``), see
                                        ``_KEPT_IN_TARGET``
``participant/associatedEntity``,       person names, ``addr`` and ``telecom`` masked;
``informant/relatedEntity``             ids too, except for a ``REF`` participant (the
                                        ordering clinician)
``componentOf/encompassingEncounter``   its ``id`` (the visit number, 就诊流水号, which
                                        the facility links to the patient) masked
every text and attribute value          the patient's name, id numbers, phone numbers
                                        and address as they stood in ``recordTarget``
                                        are replaced by ``***`` wherever else they
                                        occur (free text such as a report may name
                                        the patient); names of two characters or
                                        more, other values of four or more
======================================  ==============================================

Comments and processing instructions are dropped (the safe parser drops them).
The input is read by :func:`producers.cda.xml.parse_xml` (no DOCTYPE, no
entities, no network, bounded size and depth); HL7Error when it cannot be read,
AssemblyError when its root is not a ``ClinicalDocument`` in ``urn:hl7-org:v3``.
"""

from __future__ import annotations

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from producers.cda.document import DEFAULT_MAX_BYTES
from producers.cda.xml import Element, parse_xml
from sinks.docstore.assembly.cda import V3
from sinks.docstore.assembly.keys import AssemblyError

__all__ = ["MASK", "deidentify"]

#: What replaces an identifying value found in text.
MASK = "***"

_IDENTITY_TAGS = frozenset({"id", "name", "addr", "telecom"})
_CONTACT_TAGS = frozenset({"name", "addr", "telecom"})
#: What ``recordTarget`` keeps besides the masked identity: its structure, and codes that
#: identify nobody. Any other element there is masked like an identity element.
_KEPT_IN_TARGET = frozenset({
    "recordTarget", "patientRole", "patient", "guardian", "guardianPerson",
    "guardianOrganization", "birthplace", "place", "languageCommunication",
    "administrativeGenderCode", "birthTime", "maritalStatusCode", "ethnicGroupCode",
    "raceCode", "religiousAffiliationCode", "languageCode", "modeCode", "proficiencyLevelCode",
    "preferenceInd", "deceasedInd", "age", "patientType", "patienttypeCode", "code",
})


def _q(tag: str) -> str:
    return f"{{{V3}}}{tag}"


def _local(element: Element) -> str:
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _inside(element: Element, stop: Element, tag: str) -> bool:
    """Whether ``element`` lies under a ``tag`` element below ``stop``."""
    parent = element.getparent()
    while parent is not None and parent is not stop:
        if _local(parent) == tag:
            return True
        parent = parent.getparent()
    return False


def _remember(element: Element, found: set[str]) -> None:
    """Note the identifying values of ``element``: its text (whole, and its parts joined
    without and with spaces), its ``extension``, its ``value`` without a URL scheme."""
    parts = [part.strip() for part in element.itertext() if part.strip()]
    value = (element.get("value") or "").strip()
    scheme, colon, rest = value.partition(":")
    pieces = [*parts, "".join(parts), " ".join(parts), element.get("extension") or "",
              rest if colon and scheme.isalpha() else value]
    for piece in pieces:
        minimum = 2 if _local(element) == "name" else 4
        if len(piece) >= minimum:
            found.add(piece)


def _mask(element: Element) -> None:
    for child in list(element):
        element.remove(child)
    element.attrib.clear()
    element.text = None
    element.set("nullFlavor", "MSK")


def _attached(element: Element, target: Element) -> bool:
    """Whether ``element`` is still under ``target`` (not inside an element masked before)."""
    parent = element.getparent()
    while parent is not None and parent is not target:
        parent = parent.getparent()
    return parent is target or element is target


def _record_targets(document: Element, found: set[str]) -> None:
    for target in document.iter(_q("recordTarget")):
        for element in list(target.iter()):
            if not _attached(element, target) or _inside(element, target,
                                                         "providerOrganization"):
                continue
            local = _local(element)
            if local in _IDENTITY_TAGS or (local not in _KEPT_IN_TARGET and isinstance(
                    element.tag, str) and local != "providerOrganization"):
                _remember(element, found)
                _mask(element)
            elif local == "birthTime" and element.get("value"):
                element.set("value", str(element.get("value"))[:4])


def _contacts(document: Element, found: set[str]) -> None:
    for path, keep_ids in (("participant/associatedEntity", True),
                           ("informant/relatedEntity", False)):
        for entity in document.iterfind("/".join(_q(step) for step in path.split("/"))):
            participant = entity.getparent()
            referrer = keep_ids and participant is not None and participant.get("typeCode") == "REF"
            for element in list(entity.iter()):
                if _inside(element, entity, "scopingOrganization"):
                    continue
                local = _local(element)
                masked = local in _CONTACT_TAGS or (local == "id" and not referrer)
                if masked and element is not entity and not _inside(element, entity, "name"):
                    _remember(element, found)
                    _mask(element)


def _encounters(document: Element, found: set[str]) -> None:
    path = "/".join(_q(step) for step in ("componentOf", "encompassingEncounter", "id"))
    for element in document.iterfind(path):
        _remember(element, found)
        _mask(element)


def _scrub(document: Element, found: set[str]) -> None:
    values = sorted(found, key=lambda piece: (-len(piece), piece))

    def clean(text: str | None) -> str | None:
        if not text:
            return text
        for piece in values:
            text = text.replace(piece, MASK)
        return text
    for element in document.iter():
        element.text, element.tail = clean(element.text), clean(element.tail)
        for name, setting in element.attrib.items():
            if name != "nullFlavor":
                element.set(name, clean(setting) or "")


def deidentify(content: bytes) -> bytes:
    """``content`` (a CDA document) with the patient's identity removed (see above)."""
    document = parse_xml(content, max_bytes=DEFAULT_MAX_BYTES, where="CDA document")
    if document.tag != _q("ClinicalDocument"):
        raise AssemblyError("cannot de-identify: the root element is not ClinicalDocument "
                            f"in {V3}")
    found: set[str] = set()
    _record_targets(document, found)
    _contacts(document, found)
    _encounters(document, found)
    _scrub(document, found)
    written: bytes = etree.tostring(document, xml_declaration=True, encoding="UTF-8")
    return written
