"""Reading values out of an HL7 V3 (CDA R2) tree by plain paths.

Paths are written without namespace prefixes (``recordTarget/patientRole/id``),
in the ``urn:hl7-org:v3`` namespace, and the same text names the place in
warnings and errors. Values come back stripped; absent, empty and
``nullFlavor`` values are ``""`` or None, never an exception.
"""

from __future__ import annotations

from functools import lru_cache

from producers.cda.xml import Element

__all__ = ["V3", "attr", "find", "findall", "instance_id", "text", "value_of"]

#: The namespace of CDA R2 and every HL7 V3 artefact.
V3 = "urn:hl7-org:v3"


@lru_cache(maxsize=256)
def _qualified(path: str) -> str:
    return "/".join(f"{{{V3}}}{step}" for step in path.split("/"))


def find(element: Element | None, path: str) -> Element | None:
    """The first element at ``path`` under ``element``."""
    if element is None:
        return None
    found: Element | None = element.find(_qualified(path))
    return found


def findall(element: Element | None, path: str) -> list[Element]:
    """Every element at ``path`` under ``element``, in document order."""
    if element is None:
        return []
    return list(element.findall(_qualified(path)))


def attr(element: Element | None, name: str) -> str:
    """The attribute ``name`` of ``element``, stripped; ``""`` when absent."""
    if element is None:
        return ""
    value: str | None = element.get(name)
    return (value or "").strip()


def text(element: Element | None) -> str:
    """All text inside ``element``, stripped; ``""`` when absent or ``nullFlavor``."""
    if element is None or attr(element, "nullFlavor"):
        return ""
    return "".join(element.itertext()).strip()


def value_of(element: Element | None, name: str = "value") -> str:
    """An attribute of a data-type element (``@value``, ``@code``), ``""`` under ``nullFlavor``."""
    if attr(element, "nullFlavor"):
        return ""
    return attr(element, name)


def instance_id(element: Element | None) -> str | None:
    """An II as ``root^extension`` (``root`` alone without an extension); None when empty."""
    if element is None or attr(element, "nullFlavor"):
        return None
    root, extension = attr(element, "root"), attr(element, "extension")
    if not root and not extension:
        return None
    return f"{root}^{extension}" if extension else root
